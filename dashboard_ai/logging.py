"""Log formatting for operators: text in development, JSON lines in production.

Structured fields are passed with ``extra={...}`` and appear as ``key=value`` (text)
or as JSON keys. :class:`RedactSecretsFilter` is the last wall against a secret in a
log line: whatever a caller formats, the configured secret values are replaced.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
REDACTED = "[redacted]"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached to ``record`` with ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's traceback text, preferring the redacted copy in ``exc_text``."""
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if traceback := _traceback(self, record):
            entry["exception"] = traceback
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v!r}" for k, v in record_fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if traceback := _traceback(self, record):
            line = f"{line}\n{traceback}"
        return line


def _secret_values() -> list[str]:
    from django.conf import settings

    names = ("ANTHROPIC_API_KEY", "SECRET_KEY", "CHAT_AUTH_TOKEN")
    values = [getattr(settings, name, "") for name in names]
    return [v for v in values if len(v) >= 8]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each secret replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class RedactSecretsFilter(logging.Filter):
    """Replace configured secrets in a record's message, fields and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secret_values()
        if not secrets:
            return True
        message = record.getMessage()
        clean = redact(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in record_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value, secrets))
        if record.exc_info:
            # Render the traceback now, redacted, and drop the live exception.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text, secrets)
            record.exc_info = None
        return True
