"""What the server keeps of each request it received."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: Headers never recorded: they carry credentials.
SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: header names lower-cased, credentials removed.

    ``body`` is the parsed JSON (None when there was none or it did not parse).
    ``script`` and ``step`` say which turn answered a ``/v1/messages`` request.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    script: str | None = None
    step: int | None = None
    tools: list[str] = field(default_factory=list)


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names and drop those in :data:`SECRET_HEADERS`."""
    return {name.lower(): value for name, value in headers if name.lower() not in SECRET_HEADERS}


def tool_names(body: Any) -> list[str]:
    """The names of the tools a Messages request offers, in order."""
    if not isinstance(body, dict) or not isinstance(body.get("tools"), list):
        return []
    return [str(tool.get("name")) for tool in body["tools"] if isinstance(tool, dict)]
