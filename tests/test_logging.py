"""Operator logs: JSON lines with structured fields, and no secret ever written."""

from __future__ import annotations

import json
import logging

import pytest

from dashboard_ai.logging import JsonFormatter, RedactSecretsFilter, TextFormatter

SECRET = "sk-ant-LEAKCANARY-logging-0123456789"


@pytest.fixture
def record() -> logging.LogRecord:
    return logging.makeLogRecord(
        {
            "name": "dashboard_ai.ws",
            "levelname": "INFO",
            "levelno": 20,
            "msg": "websocket connected",
            "client": "127.0.0.1:5",
            "closeCode": 1000,
        }
    )


def test_json_formatter_writes_one_object_with_fields(record) -> None:
    line = JsonFormatter().format(record)

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "websocket connected"
    assert entry["level"] == "info" and entry["logger"] == "dashboard_ai.ws"
    assert entry["client"] == "127.0.0.1:5" and entry["closeCode"] == 1000


def test_text_formatter_shows_fields(record) -> None:
    line = TextFormatter().format(record)
    assert "websocket connected" in line and "closeCode=1000" in line


def test_secrets_are_redacted_from_message_fields_and_tracebacks(settings) -> None:
    settings.ANTHROPIC_API_KEY = SECRET
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.makeLogRecord(
        {"msg": "key is %s", "args": (SECRET,), "header": f"Bearer {SECRET}", "exc_info": exc_info}
    )

    assert RedactSecretsFilter().filter(record) is True
    line = JsonFormatter().format(record)

    assert SECRET not in line
    assert "[redacted]" in json.loads(line)["message"]
    assert "boom with [redacted]" in json.loads(line)["exception"]


def test_http_requests_are_logged_with_status_and_duration(client, caplog, db) -> None:
    with caplog.at_level(logging.INFO, logger="dashboard_ai.http"):
        client.get("/health")
    [entry] = [r for r in caplog.records if r.name == "dashboard_ai.http"]
    assert entry.method == "GET" and entry.path == "/health" and entry.status == 200
    assert entry.durationMs >= 0
