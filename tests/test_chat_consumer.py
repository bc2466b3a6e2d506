"""The consumer in-process (Channels' communicator): bad input never breaks the socket."""

from __future__ import annotations

import asyncio
import json
import threading

import django.db
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

import chat.consumers
from chat.consumers import ChatConsumer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(30),
]


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.DATA_DIR = tmp_path / "var"
    settings.CHAT_MAX_FRAME_BYTES = 64 * 1024
    settings.CHAT_MAX_MESSAGE_CHARS = 1000


@pytest.fixture
async def socket():
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat")
    connected, _ = await communicator.connect()
    assert connected
    yield communicator
    await communicator.disconnect()


async def answer(socket: WebsocketCommunicator, text: str) -> dict:
    await socket.send_to(text_data=text)
    return await socket.receive_json_from(timeout=5)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "INVALID_JSON"),
        ("{", "INVALID_JSON"),
        (" ", "INVALID_JSON"),
        ("[" * 10_000 + "]" * 10_000, "INVALID_JSON"),
        ("[]", "INVALID_MESSAGE"),
        ('"init"', "INVALID_MESSAGE"),
        ("42", "INVALID_MESSAGE"),
        ("null", "INVALID_MESSAGE"),
        ("{}", "INVALID_MESSAGE"),
        ('{"type": 7}', "INVALID_MESSAGE"),
        ('{"type": "launch"}', "UNKNOWN_TYPE"),
        ('{"type": "INIT", "sessionId": "a"}', "UNKNOWN_TYPE"),
        ('{"type": "init"}', "INVALID_MESSAGE"),
        ('{"type": "init", "sessionId": 5}', "INVALID_MESSAGE"),
        ('{"type": "init", "sessionId": ""}', "INVALID_SESSION_ID"),
        ('{"type": "init", "sessionId": "../etc"}', "INVALID_SESSION_ID"),
        ('{"type": "init", "sessionId": "' + "a" * 65 + '"}', "INVALID_SESSION_ID"),
        ('{"type": "init", "sessionId": "a b"}', "INVALID_SESSION_ID"),
        ('{"type": "init", "sessionId": "s1", "files": []}', "INVALID_MESSAGE"),
        ('{"type": "init", "sessionId": "s1", "files": {"a": 5}}', "INVALID_MESSAGE"),
        ('{"type": "init", "sessionId": "s1", "files": {"../x": "x"}}', "INVALID_PATH"),
        ('{"type": "init", "sessionId": "s1", "files": {"/etc/x": "x"}}', "INVALID_PATH"),
        ('{"type": "init", "sessionId": "s1", "files": {"a\\u0000b": "x"}}', "INVALID_PATH"),
        (
            '{"type": "init", "sessionId": "s1", '
            '"files": {"a.bin": {"content": "%%%", "encoding": "base64"}}}',
            "INVALID_CONTENT",
        ),
        (
            '{"type": "init", "sessionId": "s1", '
            '"files": {"a.bin": {"content": "x", "encoding": "rot13"}}}',
            "INVALID_MESSAGE",
        ),
        ('{"type": "message", "sessionId": "s1"}', "INVALID_MESSAGE"),
        ('{"type": "message", "sessionId": "s1", "message": ""}', "INVALID_MESSAGE"),
        ('{"type": "message", "sessionId": "s1", "message": ["x"]}', "INVALID_MESSAGE"),
        ('{"type": "message", "sessionId": "s1", "message": "hi"}', "NOT_INITIALIZED"),
        ('{"type": "stop", "sessionId": "s1"}', "NOT_INITIALIZED"),
        (
            '{"type": "message", "sessionId": "s1", "message": "' + "x" * 1001 + '"}',
            "INVALID_MESSAGE",
        ),
        (
            '{"type": "init", "sessionId": "s1", "files": {"x": "' + "y" * 70_000 + '"}}',
            "PAYLOAD_TOO_LARGE",
        ),
    ],
)
async def test_bad_frame_gets_an_error_and_the_socket_stays_usable(
    socket: WebsocketCommunicator, text: str, code: str
) -> None:
    error = await answer(socket, text)

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["recoverable"] is True
    assert "Traceback" not in error["message"]
    ready = await answer(socket, json.dumps({"type": "init", "sessionId": "after"}))
    assert ready["type"] == "ready"


async def test_binary_frame_is_refused(socket: WebsocketCommunicator) -> None:
    await socket.send_to(bytes_data=b"\x00\x01")
    error = await socket.receive_json_from(timeout=5)
    assert error["code"] == "INVALID_MESSAGE"


async def test_too_many_files_is_payload_too_large_and_writes_nothing(
    socket: WebsocketCommunicator, settings, tmp_path
) -> None:
    settings.WORKSPACE_MAX_FILES = 3
    files = {f"f{i}.txt": "x" for i in range(4)}

    error = await answer(socket, json.dumps({"type": "init", "sessionId": "s1", "files": files}))

    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert not list((tmp_path / "workspaces").glob("s1/*"))


async def test_unknown_fields_are_ignored(socket: WebsocketCommunicator) -> None:
    ready = await answer(
        socket, json.dumps({"type": "init", "sessionId": "s1", "futureField": {"a": 1}})
    )
    assert ready["type"] == "ready" and ready["sessionId"] == "s1"


async def test_message_without_a_model_key_is_model_not_configured(
    socket: WebsocketCommunicator, settings
) -> None:
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    await answer(socket, json.dumps({"type": "init", "sessionId": "s1"}))

    error = await answer(
        socket,
        json.dumps({"type": "message", "sessionId": "s1", "message": "hi", "clientMessageId": "m"}),
    )

    assert error["code"] == "MODEL_NOT_CONFIGURED"
    assert error["recoverable"] is False
    assert error["clientMessageId"] == "m" and error["sessionId"] == "s1"


async def test_stop_with_nothing_running_is_silent(socket: WebsocketCommunicator) -> None:
    await answer(socket, json.dumps({"type": "init", "sessionId": "s1"}))
    await socket.send_to(text_data=json.dumps({"type": "stop", "sessionId": "s1"}))
    assert await socket.receive_nothing(timeout=0.3)


async def test_a_refused_init_keeps_the_session_open_on_the_socket(
    socket: WebsocketCommunicator,
) -> None:
    await answer(socket, json.dumps({"type": "init", "sessionId": "s1"}))
    refused = await answer(
        socket, json.dumps({"type": "init", "sessionId": "s1", "files": {"../x": "no"}})
    )
    await socket.send_to(text_data=json.dumps({"type": "stop", "sessionId": "s1"}))

    assert refused["code"] == "INVALID_PATH"
    assert await socket.receive_nothing(timeout=0.3)  # not NOT_INITIALIZED


async def test_snake_case_field_names_are_not_read(socket: WebsocketCommunicator) -> None:
    await answer(socket, json.dumps({"type": "init", "sessionId": "s1"}))
    error = await answer(
        socket,
        json.dumps(
            {"type": "message", "sessionId": "s1", "message": "hi", "client_message_id": "x"}
        ),
    )
    assert "clientMessageId" not in error


async def test_validation_errors_name_long_keys_without_echoing_them(
    socket: WebsocketCommunicator,
) -> None:
    long_key = "k" * 30_000
    error = await answer(
        socket, json.dumps({"type": "init", "sessionId": "s1", "files": {long_key: 5}})
    )
    assert error["code"] == "INVALID_MESSAGE" and len(error["message"]) <= 500


async def test_a_busy_orm_thread_holds_neither_a_handshake_nor_a_frame(monkeypatch) -> None:
    """Every session's ORM work shares one thread; the socket must not queue behind it,
    and the close of old connections Channels does before each message still runs there,
    before the ORM work queued after the message."""
    release = threading.Event()
    holding = threading.Event()
    ran: list[tuple[str, str]] = []  # (what, thread), in the order they ran

    def hold_the_orm_thread() -> None:
        ran.append(("held", threading.current_thread().name))
        holding.set()
        release.wait(10)

    def close_old_connections() -> None:
        ran.append(("close", threading.current_thread().name))
        django.db.close_old_connections()

    async def aclose_old_connections() -> None:
        # Channels' own, but seen: its communicator patches the sync close to a no-op.
        await sync_to_async(close_old_connections)()

    monkeypatch.setattr(chat.consumers, "aclose_old_connections", aclose_old_connections)
    held = asyncio.ensure_future(sync_to_async(hold_the_orm_thread)())
    assert await asyncio.to_thread(holding.wait, 5)
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat")
    try:
        connected, _ = await communicator.connect(timeout=2)
        assert connected
        error = await answer(communicator, "not json")
        assert error["code"] == "INVALID_JSON"
        assert not held.done()
    finally:
        release.set()
    await held
    await sync_to_async(lambda: ran.append(("after", threading.current_thread().name)))()
    await communicator.disconnect()

    # One close before each message (connect, the frame, then the disconnect), in order.
    assert [what for what, _ in ran] == ["held", "close", "close", "after", "close"]
    assert len({thread for _, thread in ran}) == 1
