"""The real server process: health, CORS, origin checks, and configuration errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import websockets
from django.http import HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.test import RequestFactory
from django.urls import get_resolver
from websockets.exceptions import InvalidStatus

from tests.support.live import DAPHNE, ROOT, TEST_API_KEY, LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def get(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers), response.read()


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    """Status, headers and body of any answer, error statuses included."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def json_error(headers, body: bytes) -> dict[str, str]:
    """The body of a JSON error answer, checked to be one."""
    assert headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert set(data) == {"code", "message"} and data["message"]
    assert "Traceback" not in data["message"] and "/" not in data["message"]
    return data


def test_health_reports_status_without_secrets(backend: LiveServer) -> None:
    status, headers, body = get(backend.http_url + "/health")

    data = json.loads(body)
    assert status == 200
    assert data["status"] == "ok"
    assert set(data) >= {
        "version",
        "uptimeSeconds",
        "activeSessions",
        "workspaceRootWritable",
        "modelConfigured",
    }
    assert data["modelConfigured"] is True and data["workspaceRootWritable"] is True
    assert data["redis"] == "not configured" and data["database"] == "ok"
    # One process without Redis owns what it runs (the backend is shared: some may run).
    assert data["ownedSessions"] == data["activeSessions"] and isinstance(data["serverId"], str)
    assert TEST_API_KEY not in body.decode()
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_health_has_cors_headers_for_the_frontend_origin_only(backend: LiveServer) -> None:
    _, allowed, _ = get(backend.http_url + "/health", {"Origin": "http://localhost:2500"})
    _, foreign, _ = get(backend.http_url + "/health", {"Origin": "http://evil.example"})

    assert {k.lower(): v for k, v in allowed.items()}["access-control-allow-origin"] == (
        "http://localhost:2500"
    )
    assert "access-control-allow-origin" not in {k.lower() for k in foreign}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_health_answers_other_methods_405_in_json(backend: LiveServer, method: str) -> None:
    status, headers, body = fetch(backend.http_url + "/health", method)

    assert status == 405
    assert json_error(headers, body)["code"] == "METHOD_NOT_ALLOWED"
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unknown_address_answers_404_in_json(backend: LiveServer, method: str) -> None:
    status, headers, body = fetch(backend.http_url + "/no/such/page", method)

    assert status == 404
    assert json_error(headers, body)["code"] == "NOT_FOUND"


def test_a_host_not_allowed_answers_400_in_json(backend: LiveServer) -> None:
    status, headers, body = fetch(backend.http_url + "/health", headers={"Host": "evil.example"})

    assert status == 400
    assert json_error(headers, body)["code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "BAD_REQUEST"), (403, "FORBIDDEN"), (404, "NOT_FOUND"), (500, "INTERNAL")],
)
def test_django_error_handlers_answer_json(status: int, code: str) -> None:
    # A live server cannot be made to fail on purpose; the handlers it would use are these.
    handler = get_resolver().resolve_error_handler(status)
    request = RequestFactory().get("/anything")

    response = handler(request) if status == 500 else handler(request, Exception("x"))

    assert response.status_code == status
    assert json_error(response, response.content)["code"] == code


def test_a_csrf_failure_answers_403_in_json() -> None:
    # Every view of this server is exempt (none reads a cookie); a view that is not
    # would still refuse a cross-site POST in JSON.
    def view(request):
        return HttpResponse("reached")

    request = RequestFactory().post("/anything", {"a": "b"})
    response = CsrfViewMiddleware(view).process_view(request, view, (), {})

    assert response is not None and response.status_code == 403
    assert json_error(response, response.content)["code"] == "FORBIDDEN"


async def test_websocket_from_the_frontend_origin_is_accepted(backend: LiveServer) -> None:
    async with websockets.connect(backend.ws_url, origin="http://localhost:2500") as ws:
        await ws.send(json.dumps({"type": "init", "sessionId": "origin-ok"}))
        assert json.loads(await ws.recv())["type"] == "ready"


async def test_websocket_from_a_foreign_origin_is_refused(backend: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(backend.ws_url, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_unknown_websocket_path_is_refused(backend: LiveServer) -> None:
    with pytest.raises((InvalidStatus, websockets.exceptions.ConnectionClosed)):
        async with websockets.connect(backend.ws_url.replace("/ws/chat", "/ws/other")) as ws:
            await ws.recv()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("WORKSPACE_CLEANUP_HOURS", "-1"),
        ("WORKSPACE_MAX_FILES", "many"),
        ("DEBUG", "maybe"),
        ("LOG_FORMAT", "xml"),
        ("CORS_ORIGIN", "localhost:2500"),
    ],
)
def test_invalid_setting_stops_start_up_with_one_line(tmp_path, name: str, value: str) -> None:
    env = {"PATH": os.environ["PATH"], "WORKSPACE_ROOT": str(tmp_path), name: value}

    result = subprocess.run(
        [str(DAPHNE), "-p", "1", "dashboard_ai.asgi:application"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Invalid configuration: {name} ")
    assert "Traceback" not in result.stderr


def test_manage_py_check_passes_with_defaults(tmp_path) -> None:
    env = {"PATH": os.environ["PATH"], "WORKSPACE_ROOT": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
