"""The /ws/chat consumer (placeholder until the chat issue lands)."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Speaks the chat protocol of docs/protocol.md."""
