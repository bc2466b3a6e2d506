"""Operator logs (structlog): JSON lines or text with structured fields, no secret ever
written, and one connection id on every line about a socket."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import re
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import RequestFactory

from chat.consumers import ChatConsumer
from tests.support.live import ChatClient

SECRET = "sk-ant-LEAKCANARY-logging-0123456789"

Emit = Callable[..., str]


def formatter_of(fmt: str) -> logging.Formatter:
    """The formatter ``LOGGING`` configures for ``LOG_FORMAT=fmt``, built as dictConfig does."""
    config = dict(django_settings.LOGGING["formatters"][fmt])
    formatter = logging.config.DictConfigurator({}).configure_custom(config)
    assert isinstance(formatter, logging.Formatter)
    return formatter


@pytest.fixture(params=["json", "text"])
def log_format(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emit() -> Iterator[Emit]:
    """Log through a real logger to a handler with the configured formatter: the output."""
    logger = logging.getLogger("dashboard_ai.test")
    logger.propagate, logger.level = False, logging.DEBUG
    stream = io.StringIO()

    def log(fmt: str, level: int, msg: str, *args: object, **kwargs: object) -> str:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter_of(fmt))
        logger.addHandler(handler)
        try:
            stream.seek(0), stream.truncate()
            logger.log(level, msg, *args, **kwargs)  # type: ignore[arg-type]
            return stream.getvalue()
        finally:
            logger.removeHandler(handler)

    yield log
    logger.propagate, logger.level = True, logging.NOTSET


def test_json_is_one_object_a_line_with_the_extra_fields_as_keys(emit: Emit) -> None:
    out = emit(
        "json",
        logging.INFO,
        "connection %s",
        "opened",
        extra={"client": "127.0.0.1:5", "closeCode": 1000, "tools": ["Read", "Edit"]},
    )

    assert out.endswith("\n") and out.count("\n") == 1
    entry = json.loads(out)
    assert list(entry)[:4] == ["time", "level", "logger", "message"]
    assert entry["message"] == "connection opened"
    assert entry["level"] == "info" and entry["logger"] == "dashboard_ai.test"
    assert entry["client"] == "127.0.0.1:5" and entry["closeCode"] == 1000
    assert entry["tools"] == ["Read", "Edit"]
    assert datetime.fromisoformat(entry["time"]).utcoffset().total_seconds() == 0
    assert set(entry) == {"time", "level", "logger", "message", "client", "closeCode", "tools"}


def test_json_levels_and_values_it_cannot_encode(emit: Emit) -> None:
    warning = json.loads(emit("json", logging.WARNING, "w", extra={"path": object()}))
    error = json.loads(emit("json", logging.ERROR, "e"))

    assert warning["level"] == "warning" and warning["path"].startswith("<object object")
    assert error["level"] == "error" and "exception" not in error


def test_json_puts_the_traceback_in_one_exception_key(emit: Emit) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        out = emit("json", logging.ERROR, "frame handling failed", exc_info=True)

    assert out.count("\n") == 1
    entry = json.loads(out)
    assert entry["message"] == "frame handling failed"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("RuntimeError: boom")


def test_text_is_a_line_with_level_message_logger_and_fields(emit: Emit) -> None:
    out = emit("text", logging.WARNING, "connection closed", extra={"closeCode": 1000})

    assert out.count("\n") == 1
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[warning\s*\] connection closed ", out)
    assert "[dashboard_ai.test]" in out and "closeCode=1000" in out


def test_text_shows_the_traceback_below_the_line(emit: Emit) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        out = emit("text", logging.ERROR, "frame handling failed", exc_info=True)

    first, rest = out.split("\n", 1)
    assert "frame handling failed" in first
    assert "Traceback (most recent call last):" in rest and "RuntimeError: boom" in rest


def test_attributes_another_formatter_set_first_are_not_fields() -> None:
    """A handler before ours with a plain Formatter (caplog's, say) sets ``message`` and
    ``asctime`` on the record: they are not passed on as fields of their own."""
    record = logging.makeLogRecord({"name": "x", "msg": "hello %s", "args": ("you",), "a": 1})
    logging.Formatter("%(asctime)s %(message)s").format(record)

    entry = json.loads(formatter_of("json").format(record))

    assert entry["message"] == "hello you"
    assert set(entry) == {"time", "level", "logger", "message", "a"}


def test_secrets_are_redacted_from_message_fields_and_tracebacks(
    settings, emit: Emit, log_format: str
) -> None:
    settings.ANTHROPIC_API_KEY = SECRET

    class Holder:
        def __str__(self) -> str:
            return f"holds {SECRET}"

        __repr__ = __str__

    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        out = emit(
            log_format,
            logging.ERROR,
            "key is %s",
            SECRET,
            exc_info=True,
            extra={
                "header": f"Bearer {SECRET}",
                "nested": {"list": [f"x{SECRET}"]},
                "object": Holder(),
            },
        )

    assert SECRET not in out and "LEAKCANARY" not in out
    assert out.count("[redacted]") == 5
    if log_format == "json":
        entry = json.loads(out)
        assert entry["message"] == "key is [redacted]"
        assert entry["header"] == "Bearer [redacted]"
        assert entry["nested"] == {"list": ["x[redacted]"]}
        assert entry["object"] == "holds [redacted]"
        assert entry["exception"].endswith("RuntimeError: boom with [redacted]")
    else:
        assert "key is [redacted]" in out and "boom with [redacted]" in out


def test_a_django_request_field_keeps_its_method_and_path_not_its_query(
    emit: Emit, rf: RequestFactory
) -> None:
    """``django.request`` logs each 4xx/5xx with the request object, whose ``str()`` has
    the query string: a ``?token=`` JWT would be written."""
    request = rf.get("/api/sessions?token=eyJ-a-token-in-the-query")

    entry = json.loads(emit("json", logging.WARNING, "Unauthorized", extra={"request": request}))
    other = json.loads(emit("json", logging.WARNING, "x", extra={"request": object()}))

    assert entry["request"] == "GET /api/sessions"
    assert other["request"] == "object"


def test_short_settings_are_not_redacted(settings, emit: Emit) -> None:
    """Values under 8 characters are not taken for secrets (an empty one would match all)."""
    settings.ANTHROPIC_API_KEY, settings.CHAT_AUTH_TOKEN = "", "abc"
    assert json.loads(emit("json", logging.INFO, "abc"))["message"] == "abc"


def test_http_requests_are_logged_with_status_and_duration(client, caplog, db) -> None:
    with caplog.at_level(logging.INFO, logger="dashboard_ai.http"):
        client.get("/health")
    [entry] = [r for r in caplog.records if r.name == "dashboard_ai.http"]
    assert entry.method == "GET" and entry.path == "/health" and entry.status == 200
    assert entry.durationMs >= 0


# --- the lines about a socket ----------------------------------------------------------


@pytest.fixture
def isolated(settings, tmp_path) -> None:
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.DATA_DIR = tmp_path / "var"


@pytest.mark.django_db(transaction=True)
@pytest.mark.database
@pytest.mark.timeout(30)
async def test_every_line_about_a_socket_carries_its_connection_id(isolated, caplog) -> None:
    caplog.set_level(logging.INFO, logger="dashboard_ai.ws")
    sockets = [WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat") for _ in range(2)]
    for socket in sockets:
        assert (await socket.connect())[0]
    first = sockets[0]
    await first.send_to(text_data='{"type": "message", "sessionId": "s1", "message": "hi there"}')
    not_initialized = await first.receive_json_from(timeout=5)
    await first.send_to(text_data="not json")
    invalid = await first.receive_json_from(timeout=5)
    for socket in sockets:
        await socket.disconnect()

    lines = [r for r in caplog.records if r.name == "dashboard_ai.ws"]
    ids = [r.connectionId for r in lines]
    assert all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert len(set(ids)) == 2
    mine = [r for r in lines if r.connectionId == ids[0]]
    assert [r.getMessage() for r in mine] == [
        "connection opened",
        "error sent",
        "error sent",
        "connection closed",
    ]
    opened, sent_unknown, sent_invalid, closed = mine
    assert not_initialized["code"] == "NOT_INITIALIZED" and invalid["code"] == "INVALID_JSON"
    assert sent_unknown.levelname == "WARNING" and sent_unknown.code == "NOT_INITIALIZED"
    assert sent_unknown.sessionId == "s1"
    assert sent_invalid.code == "INVALID_JSON" and not hasattr(sent_invalid, "sessionId")
    assert closed.closeCode == 1000 and closed.durationMs >= 0
    # Who the socket is and the error's code: never what the client wrote.
    assert "hi there" not in str([vars(r) for r in mine])


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_a_server_writes_json_lines_with_the_connection_id(own_server) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.send_raw("{not json")
        error = await client.recv()
        await client.close()
        async with asyncio.timeout(10):
            while '"connection closed"' not in server.log_text():
                await asyncio.sleep(0.05)
        text = server.log_text()

    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    about_socket = [
        e
        for e in entries
        if e["message"] in ("connection opened", "error sent", "connection closed")
    ]
    assert error["code"] == "INVALID_JSON"
    assert [e["message"] for e in about_socket] == [
        "connection opened",
        "error sent",
        "connection closed",
    ]
    assert len({e["connectionId"] for e in about_socket}) == 1
    assert about_socket[1]["level"] == "warning" and about_socket[1]["code"] == "INVALID_JSON"
    assert all(e["logger"] == "dashboard_ai.ws" for e in about_socket)
