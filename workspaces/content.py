"""File contents on the wire: UTF-8 text as a string, anything else as base64 (pure)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from workspaces.exceptions import InvalidContent

# A file's content as the client sends it: text, or ``{"content": ..., "encoding": ...}``
# with encoding "base64" or "utf-8" (the default when absent).
ClientContent = str | Mapping[str, str]
WireContent = str | dict[str, str]

ENCODINGS = ("base64", "utf-8")


def _text_bytes(path: str, text: str) -> bytes:
    """``text`` as UTF-8, refusing lone surrogates (which no file can hold as text)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidContent(path, "text is not valid Unicode") from None


def decode_from_wire(path: str, content: ClientContent) -> bytes:
    """The bytes a client meant for ``path``; :class:`InvalidContent` if undecodable."""
    if isinstance(content, str):
        return _text_bytes(path, content)
    if not isinstance(content, Mapping):
        raise InvalidContent(path, "content must be a string or an object")
    text = content.get("content")
    encoding = content.get("encoding", "utf-8")
    if not isinstance(text, str):
        raise InvalidContent(path, "'content' must be a string")
    if encoding == "utf-8":
        return _text_bytes(path, text)
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidContent(path, "invalid base64") from None
    raise InvalidContent(path, f"encoding must be one of {', '.join(ENCODINGS)}")


def encode_for_wire(content: bytes) -> WireContent:
    """``content`` as a string if it is UTF-8 text, else as a base64 object."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return {"content": base64.b64encode(content).decode("ascii"), "encoding": "base64"}
