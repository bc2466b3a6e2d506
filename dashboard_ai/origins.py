"""Origin checks for WebSocket handshakes."""

from __future__ import annotations

from typing import Any

from channels.security.websocket import OriginValidator


class BrowserOriginValidator(OriginValidator):  # type: ignore[misc]
    """Refuse handshakes whose ``Origin`` is not one of the frontend's origins.

    The check defends against cross-site WebSocket hijacking, which only a browser
    can be tricked into; browsers always send ``Origin``. A handshake without one
    comes from a non-browser client (a CLI, a test), which could forge any origin
    anyway, so it is let through.
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return bool(self.validate_origin(parsed_origin))
