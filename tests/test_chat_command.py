"""``manage.py chat``: the terminal client against a live server, and its local path check."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from chat.terminal_client import UnsafePath, checked_path, folder_files, write_changes
from scripted_model.scripts import APP_TSX
from tests.support.live import ROOT, LiveServer

CSV = "month,revenue\nJan,10\nFeb,20\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


def command_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment of the command's own, with nothing of the server's or this machine's."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DATA_DIR": str(home / "var"),
        "WORKSPACE_ROOT": str(home / "workspaces"),
        "DATABASE_URL": f"sqlite:///{home / 'db.sqlite3'}",
        "CHAT_AUTH_TOKEN": "",
        **extra,
    }


def chat_command(*args: str) -> list[str]:
    return [sys.executable, "manage.py", "chat", *args]


def run_chat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chat_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_turn_streams_and_its_changed_file_lands_in_out(
    backend: LiveServer, session_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "dashboard"
    (source / "data").mkdir(parents=True)
    (source / "data/sales.csv").write_text(CSV)
    (source / "public").mkdir()
    (source / "public/logo.png").write_bytes(PNG)
    out = tmp_path / "out"

    done = run_chat(
        command_env(tmp_path / "home"),
        "--session", session_id, "--url", backend.ws_url,
        "--files", str(source), "--out", str(out),
        "make it [script:write_app]",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "I'll create a small React component in src/App.tsx." in done.stdout
    assert "Done: src/App.tsx holds a counter component." in done.stdout
    assert "> Write src/App.tsx\n" in done.stdout
    assert "< Write done: Wrote src/App.tsx\n" in done.stdout
    assert "complete in " in done.stdout and " output tokens, $" in done.stdout
    assert f"wrote {out / 'src/App.tsx'}" in done.stdout
    assert (out / "src/App.tsx").read_text() == APP_TSX
    assert [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()] == ["src/App.tsx"]
    workspace = backend.data / "workspaces" / session_id
    assert (workspace / "data/sales.csv").read_text() == CSV
    assert (workspace / "public/logo.png").read_bytes() == PNG


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_without_out_the_files_go_back_into_the_files_folder(
    backend: LiveServer, session_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "dashboard"
    source.mkdir()
    (source / "sales.csv").write_text(CSV)

    done = run_chat(
        command_env(tmp_path / "home"),
        "--session", session_id, "--url", backend.ws_url, "--files", str(source),
        "make it [script:write_app]",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert (source / "src/App.tsx").read_text() == APP_TSX
    assert (source / "sales.csv").read_text() == CSV


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_an_error_frame_exits_non_zero_with_its_code(backend: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "out"

    done = run_chat(
        command_env(tmp_path / "home"),
        "--session", "not a valid id!", "--url", backend.ws_url, "--out", str(out), "hello",
    )  # fmt: skip

    assert done.returncode != 0
    assert "INVALID_SESSION_ID" in done.stderr
    assert not out.exists()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_server_nobody_listens_on_exits_non_zero(tmp_path: Path) -> None:
    from tests.support.ports import free_port

    done = run_chat(
        command_env(tmp_path / "home"),
        "--session", "s1", "--url", f"ws://127.0.0.1:{free_port()}/ws/chat", "hello",
    )  # fmt: skip

    assert done.returncode != 0
    assert "cannot connect to ws://127.0.0.1:" in done.stderr


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_the_token_comes_from_chat_auth_token_and_a_missing_one_is_unauthorized(
    own_server, session_id: str, tmp_path: Path
) -> None:
    with own_server(CHAT_AUTH_TOKEN="terminal-token-0123456789") as server:
        args = ("--session", session_id, "--url", server.ws_url, "--out", str(tmp_path / "out"))
        refused = run_chat(command_env(tmp_path / "home"), *args, "hi [script:echo]")
        allowed = run_chat(
            command_env(tmp_path / "home", CHAT_AUTH_TOKEN="terminal-token-0123456789"),
            *args,
            "hi [script:echo]",
        )

    assert refused.returncode != 0
    assert "UNAUTHORIZED" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr
    assert "complete in " in allowed.stdout


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_ctrl_c_stops_the_turn_and_waits_for_its_end(
    backend: LiveServer, session_id: str, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        chat_command(
            "--session", session_id, "--url", backend.ws_url, "--out", str(tmp_path / "out"),
            "talk [script:long_text]",
        ),
        cwd=ROOT, env=command_env(tmp_path / "home"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    first = ""
    while "word" not in first and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 1)[0]:
            first += os.read(process.stdout.fileno(), 4096).decode()
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=60)

    assert "word" in first
    assert process.returncode == 0, errors
    assert "stopping the turn" in rest
    assert "stopped in " in rest
    assert "word399." not in first + rest


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../x", "a/./b", "a//b", "", "a/\0"])
def test_a_path_that_could_leave_the_folder_is_refused(path: str) -> None:
    with pytest.raises(UnsafePath):
        checked_path(path)


def test_a_plain_relative_path_is_kept() -> None:
    assert checked_path("src/components/Chart.tsx").as_posix() == "src/components/Chart.tsx"


def test_a_refused_path_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        write_changes(tmp_path, {"ok.txt": "ok", "../escape.txt": "no"}, [])

    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)

    with pytest.raises(UnsafePath):
        write_changes(out, {"link/x.txt": "no"}, [])

    assert list(elsewhere.iterdir()) == []


def test_files_go_out_as_text_or_base64_and_come_back_as_bytes(tmp_path: Path) -> None:
    source, out = tmp_path / "source", tmp_path / "out"
    (source / "img").mkdir(parents=True)
    (source / "a.txt").write_text("caf\u00e9\n")
    (source / "img/logo.png").write_bytes(PNG)
    (out / "gone").mkdir(parents=True)
    (out / "gone/old.txt").write_text("old")

    files = folder_files(source)
    write_changes(out, files, ["gone/old.txt"])

    assert files["a.txt"] == "caf\u00e9\n"
    assert files["img/logo.png"] == {"content": "iVBORw0KGgoAAAANSUhEUv/+", "encoding": "base64"}
    assert (out / "a.txt").read_text() == "caf\u00e9\n"
    assert (out / "img/logo.png").read_bytes() == PNG
    assert not (out / "gone/old.txt").exists()


def test_files_that_are_not_a_folder_are_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("chat", "hello", session="s1", files=tmp_path / "missing")
