"""The console page (/console/) in a real browser: Debian's Chromium driven by Playwright,
against daphne, the real SDK and CLI and the scripted model.

One server and one browser for the module; each test has a fresh browser context, so a fresh
localStorage and a new random session id. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from scripted_model.scripts import _LONG_TEXT, APP_TSX
from tests.support.live import ROOT, LiveServer, server_env
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "test-output" / "console.png"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory, shared_model) -> Iterator[LiveServer]:
    """A backend whose CORS_ORIGIN holds its own origin, which the console's socket carries."""
    data = tmp_path_factory.mktemp("console")
    port = free_port()
    env = server_env(data, shared_model.url, CORS_ORIGIN=f"http://127.0.0.1:{port}")
    server = LiveServer(data=data, env=env, port=port)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, console_server: LiveServer) -> Iterator[Page]:
    """The console, open on a new session; fails the test on any script error or CSP report."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(f"{console_server.http_url}/console/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")
    yield page
    context.close()
    assert problems == []


def session_of(page: Page) -> str:
    return page.input_value("#session-id")


def workspace_file(server: LiveServer, page: Page, path: str) -> str:
    return (server.data / "workspaces" / session_of(page) / path).read_text()


def send(page: Page, message: str) -> None:
    page.fill("#message", message)
    page.click("#send")


def last_turn(page: Page):
    return page.locator(".turn[data-client-message-id]").last


def test_the_page_is_served_with_its_policy_and_revalidated(console_server: LiveServer) -> None:
    with urllib.request.urlopen(f"{console_server.http_url}/console/", timeout=5) as response:
        headers = response.headers
        assert response.status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-cache"
        etag = headers["ETag"]
    request = urllib.request.Request(
        f"{console_server.http_url}/console/console.js", headers={"If-None-Match": etag}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert "/client/dashboard-ai-client.js" in response.read().decode()


def test_a_message_streams_text_and_a_changed_file(page: Page, console_server: LiveServer) -> None:
    page.click("#load-demo")
    expect(page.locator("#file-list")).to_contain_text("data/sales.csv")
    send(page, "Build me a dashboard [script:write_app]")

    turn = last_turn(page)
    expect(turn).to_have_attribute("data-outcome", "complete")
    answer = turn.locator(".answer").inner_text()
    # The text after the Write call is the model's next message: its own paragraph.
    assert answer == (
        "I'll create a small React component in src/App.tsx.\n\n"
        "Done: src/App.tsx holds a counter component."
    )
    assert turn.locator(".outcome").inner_text().startswith("complete in ")
    tool = page.locator("#tools li").last
    expect(tool).to_have_attribute("data-state", "done")
    assert tool.inner_text().startswith("Write src/App.tsx")
    change = page.locator('.change[data-path="src/App.tsx"]')
    assert change.locator("h3").inner_text() == "src/App.tsx (changed, by Claude)"
    added = change.locator(".add").all_inner_texts()
    removed = change.locator(".del").all_inner_texts()
    assert "+       <h1>Hello from the scripted model</h1>\n" in added
    assert "-       <h1>Sales</h1>\n" in removed
    assert workspace_file(console_server, page, "src/App.tsx") == APP_TSX
    sent = page.locator('.change[data-path="data/sales.csv"] h3').inner_text()
    assert sent == "data/sales.csv (created, yours, sent)"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_stop_during_a_slow_turn_ends_it_stopped(page: Page) -> None:
    send(page, "talk [script:long_text]")
    turn = last_turn(page)
    expect(turn.locator(".answer")).to_contain_text("word010")
    assert turn.get_attribute("data-outcome") is None  # still streaming

    page.click("#stop")

    expect(turn).to_have_attribute("data-outcome", "stopped", timeout=10_000)
    assert turn.locator(".outcome").inner_text().startswith("stopped in ")
    assert not turn.locator(".answer").inner_text().endswith("word399.")


def test_a_socket_killed_mid_turn_ends_with_the_whole_text_once(page: Page) -> None:
    # A function body, not an expression: Playwright calls a function an expression evaluates
    # to, and on() returns its unsubscribe function.
    page.evaluate(
        """() => {
            window.states = [];
            window.dashboardConsole.client.on("connection", (e) => window.states.push(e.state));
        }"""
    )
    send(page, "talk [script:long_text]")
    turn = last_turn(page)
    expect(turn.locator(".answer")).to_contain_text("word050")

    # The library's socket, closed under it as a network drop would (a private field: the
    # library offers no way to drop a socket without closing the client for good).
    page.evaluate("window.dashboardConsole.client._socket.close()")

    expect(turn).to_have_attribute("data-outcome", "complete", timeout=20_000)
    assert turn.locator(".answer").inner_text() == _LONG_TEXT
    states = page.evaluate("window.states")
    assert states[:3] == ["reconnecting", "connecting", "open"]
    expect(page.locator("#connection")).to_have_attribute("data-state", "open")


def test_undo_restores_the_file(page: Page, console_server: LiveServer) -> None:
    page.click("#load-demo")
    send(page, "Build me a dashboard [script:write_app]")
    expect(last_turn(page)).to_have_attribute("data-outcome", "complete")
    assert workspace_file(console_server, page, "src/App.tsx") == APP_TSX

    page.click("#undo")

    expect(page.locator(".turn.undone")).to_have_text("Undid 1 turn(s).")
    change = page.locator('.change[data-path="src/App.tsx"]')
    assert change.locator("h3").inner_text() == "src/App.tsx (changed, undo)"
    assert "+       <h1>Sales</h1>\n" in change.locator(".add").all_inner_texts()
    restored = workspace_file(console_server, page, "src/App.tsx")
    assert "<h1>Sales</h1>" in restored and "scripted model" not in restored


def test_undo_with_nothing_to_undo_shows_the_error_code(page: Page) -> None:
    page.click("#undo")
    expect(page.locator("#transcript .error")).to_have_attribute("data-code", "NOTHING_TO_UNDO")
