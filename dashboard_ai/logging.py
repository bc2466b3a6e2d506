"""Log formatting for operators, with structlog: text in development, JSON lines in production.

The code logs through the standard library (``logger.info("...", extra={...})``); the one
handler's formatter is a :class:`structlog.stdlib.ProcessorFormatter` (``LOGGING`` in
the settings, :func:`formatter`) that turns each record into an event dict – ``time``,
``level``, ``logger``, ``message``, then the ``extra`` fields as keys of their own and
the traceback as ``exception`` – and renders it as one JSON object or a line of text.

:func:`redact_secrets` is the last wall against a secret in a log line: whatever a
caller formats, the configured secret values are replaced in the message, the fields
and the traceback, and again in the rendered line (:func:`redact_line`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"
#: The order of the first JSON keys; the fields follow in the order they were given.
_LEADING_KEYS = ("time", "level", "logger", "message")


def _secret_values() -> list[str]:
    from django.conf import settings

    names = ("ANTHROPIC_API_KEY", "SECRET_KEY", "CHAT_AUTH_TOKEN", "METRICS_TOKEN")
    values = [getattr(settings, name, "") for name in names]
    return [v for v in values if len(v) >= 8]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every occurrence of each secret replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v, secrets) for v in value]
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace the configured secrets in every string of the event: the message, the
    fields (nested ones too) and the rendered traceback."""
    secrets = _secret_values()
    if not secrets:
        return event_dict
    return {key: _redact_value(value, secrets) for key, value in event_dict.items()}


def redact_line(_: WrappedLogger, __: str, line: str) -> str:
    """The rendered line with the secrets replaced: also what a field's ``str()``
    brought in (an object that is not a string, rendered by the renderer)."""
    return redact(line, _secret_values())


def _drop_formatter_attrs(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Drop the attributes another handler's ``logging.Formatter`` may have set on the
    record before ours saw it (``message``, ``asctime``): they are not fields, and
    ``extra=`` cannot set them."""
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


def _request_without_query(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Django's own records (``django.request``, ``django.server``) carry the request as
    a field, whose ``str()`` has the query string: a ``?token=`` credential. Keep its
    method and path alone."""
    request = event_dict.get("request")
    if request is not None and not isinstance(request, str):
        method, path = getattr(request, "method", None), getattr(request, "path", None)
        if isinstance(method, str) and isinstance(path, str):
            event_dict["request"] = f"{method} {path}"[:300]
        else:
            event_dict["request"] = type(request).__name__
    return event_dict


def _leading_keys_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    leading = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    return {**leading, **event_dict}


#: What every record goes through before it is rendered.
_PRE_CHAIN: list[Processor] = [
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_formatter_attrs,
    _request_without_query,
]


def formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of ``LOG_FORMAT`` ``fmt``: ``json`` (one object per line) or
    ``text`` (``time [level] message [logger] key=value ...``, the traceback below)."""
    renderer: list[Processor]
    if fmt == "json":
        renderer = [
            structlog.processors.EventRenamer("message"),
            _leading_keys_first,
            structlog.processors.JSONRenderer(default=str),
        ]
    elif fmt == "text":
        console = structlog.dev.ConsoleRenderer(
            colors=False,
            timestamp_key="time",
            exception_formatter=structlog.dev.plain_traceback,
        )
        renderer = [console]
    else:
        raise ValueError(f"unknown log format {fmt!r}")
    last: Callable[[WrappedLogger, str, str], str] = redact_line
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_PRE_CHAIN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            *renderer,
            last,  # type: ignore[list-item]
        ],
    )
