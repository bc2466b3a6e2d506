"""Several users (AUTH_MODE jwt and django): whose sessions are whose, quotas, expiry.

In-process: the real consumer and HTTP views, the session core on the fake SDK client.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import AsyncClient

from chat import logouts
from chat.consumers import ChatConsumer
from chat.models import ChatSession, TurnRecord
from chat.runtime import Runtime, reset_runtime
from tests.support.fake_sdk import FakeSDK, Reply, recorded
from tests.support.jwt_keys import AUDIENCE, ISSUER, SigningKey, write_jwks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(60),
]

KEY = SigningKey.rsa("users-k1")


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path) -> None:
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.DATA_DIR = tmp_path / "data"
    settings.ANTHROPIC_API_KEY = "sk-ant-fake"
    settings.AGENT_PREWARM = False
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, [KEY])
    settings.AUTH_MODE = "jwt"
    settings.AUTH_JWT_JWKS = str(jwks)
    settings.AUTH_JWT_ISSUER = ISSUER
    settings.AUTH_JWT_AUDIENCE = AUDIENCE


@pytest.fixture
def sdk():
    fake = FakeSDK()
    reset_runtime(Runtime.create(make_client=fake))
    yield fake
    reset_runtime()


async def connect(token: str | None) -> WebsocketCommunicator:
    path = "/ws/chat" if token is None else f"/ws/chat?token={token}"
    socket = WebsocketCommunicator(ChatConsumer.as_asgi(), path)
    connected, _ = await socket.connect()
    assert connected
    return socket


async def frames_until(socket: WebsocketCommunicator, kind: str) -> list[dict]:
    got: list[dict] = []
    while not got or got[-1]["type"] != kind:
        got.append(await socket.receive_json_from(timeout=10))
    return got


async def init(socket: WebsocketCommunicator, session_id: str, files: dict | None = None) -> dict:
    await socket.send_json_to({"type": "init", "sessionId": session_id, "files": files or {}})
    return await socket.receive_json_from(timeout=10)


class http:  # noqa: N801 (reads as a verb at the call site)
    """Requests with ``token`` as their bearer."""

    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str):
        return await AsyncClient().get(path, headers=self.headers)

    async def delete(self, path: str):
        return await AsyncClient().delete(path, headers=self.headers)


async def test_two_users_with_one_session_id_get_two_sessions_and_never_meet(sdk) -> None:
    alice, bob = KEY.mint(sub="alice"), KEY.mint(sub="bob")
    a, b = await connect(alice), await connect(bob)
    ready_a = await init(a, "s1", {"data/a.csv": "x,1\n"})
    ready_b = await init(b, "s1", {"data/b.csv": "y,2\n"})
    assert ready_a["type"] == ready_b["type"] == "ready"
    assert ready_a["sessionId"] == ready_b["sessionId"] == "s1"  # the client's own id
    assert ready_a["files"] == ["data/a.csv"]
    assert ready_b["files"] == ["data/b.csv"]

    # Bob's turn runs in Bob's session: Alice's socket hears nothing of it.
    sdk.answer(Reply(recorded("overloaded_then_ok")))
    await b.send_json_to({"type": "message", "sessionId": "s1", "message": "hi"})
    got = await frames_until(b, "complete")
    assert all(frame["sessionId"] == "s1" for frame in got)
    assert await a.receive_nothing(timeout=0.3)

    rows = await sync_to_async(list)(ChatSession.objects.order_by("owner"))
    assert [(row.owner, row.public_id) for row in rows] == [("jwt:alice", "s1"), ("jwt:bob", "s1")]
    assert len({row.session_id for row in rows}) == 2
    await a.disconnect()
    await b.disconnect()


async def test_another_users_session_answers_as_an_unknown_id(sdk) -> None:
    alice, bob = KEY.mint(sub="alice"), KEY.mint(sub="bob")
    a = await connect(alice)
    await init(a, "private1", {"notes.md": "secret plans"})

    # On the socket: steering, stopping or undoing it without an init is NOT_INITIALIZED,
    # exactly as for an id nobody uses.
    b = await connect(bob)
    for frame in (
        {"type": "message", "sessionId": "private1", "message": "read notes.md"},
        {"type": "stop", "sessionId": "private1"},
        {"type": "undo", "sessionId": "private1"},
    ):
        for session_id in ("private1", "nobody-uses-this"):
            await b.send_json_to({**frame, "sessionId": session_id})
            error = await b.receive_json_from(timeout=5)
            assert (error["type"], error["code"]) == ("error", "NOT_INITIALIZED")
    # Bob's init of the id opens an empty session of his own.
    assert (await init(b, "private1"))["files"] == []

    # Over HTTP: Bob gets 404 for Alice's session as for an unknown one, and cannot delete it.
    assert (await http(bob).get("/api/sessions/private1/messages")).json()["messages"] == []
    assert (await http(bob).get("/api/sessions/nobody-uses-this/messages")).status_code == 404
    unknown = await http(bob).get("/api/sessions/nobody-uses-this")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "SESSION_NOT_FOUND"
    bobs = await http(bob).get("/api/sessions/private1")
    assert bobs.json()["files"] == []  # his own, not Alice's
    assert (await http(bob).delete("/api/sessions/private1")).status_code == 204
    alices = await http(alice).get("/api/sessions/private1")
    assert alices.status_code == 200
    assert alices.json()["files"] == ["notes.md"]
    assert alices.json()["sessionId"] == "private1"
    await a.disconnect()
    await b.disconnect()


async def test_an_unowned_id_over_http_is_the_same_404_for_everyone(sdk) -> None:
    alice, bob = KEY.mint(sub="alice"), KEY.mint(sub="bob")
    a = await connect(alice)
    await init(a, "mine")
    answers = [
        await http(bob).get("/api/sessions/mine"),
        await http(bob).get("/api/sessions/not-a-session"),
    ]
    assert [r.status_code for r in answers] == [404, 404]
    assert answers[0].json()["message"].replace("mine", "X") == answers[1].json()[
        "message"
    ].replace("not-a-session", "X")
    await a.disconnect()


async def test_the_session_list_holds_the_callers_own_sessions_only(sdk) -> None:
    alice, bob = KEY.mint(sub="alice"), KEY.mint(sub="bob")
    a, b = await connect(alice), await connect(bob)
    await init(a, "a-one")
    await init(a, "shared-name")
    await init(b, "shared-name")
    listed = (await http(alice).get("/api/sessions")).json()["sessions"]
    assert sorted(s["sessionId"] for s in listed) == ["a-one", "shared-name"]
    listed = (await http(bob).get("/api/sessions")).json()["sessions"]
    assert [s["sessionId"] for s in listed] == ["shared-name"]
    assert (await AsyncClient().get("/api/sessions")).status_code == 401
    await a.disconnect()
    await b.disconnect()


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"iss": "https://someone-else.test"},
        {"aud": "another-app"},
    ],
)
async def test_a_refused_token_gets_unauthorized_and_close_4401(sdk, claims) -> None:
    socket = await connect(KEY.mint(sub="alice", **claims))
    error = await socket.receive_json_from(timeout=5)
    assert (error["type"], error["code"], error["recoverable"]) == ("error", "UNAUTHORIZED", False)
    assert (await socket.receive_output(timeout=5))["code"] == 4401
    answer = await http(KEY.mint(sub="alice", **claims)).get("/api/sessions")
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")


async def test_no_token_is_refused(sdk) -> None:
    socket = await connect(None)
    assert (await socket.receive_json_from(timeout=5))["code"] == "UNAUTHORIZED"
    assert (await socket.receive_output(timeout=5))["code"] == 4401


async def test_an_expiring_token_closes_the_socket_after_the_running_turn(sdk, settings) -> None:
    settings.AUTH_JWT_LEEWAY_SECONDS = 0
    token = KEY.mint(sub="alice", exp=time.time() + 1.5)
    socket = await connect(token)
    await init(socket, "s1")
    # A turn that takes ~2 s: the token expires during it.
    sdk.answer(Reply(recorded("long_text"), delay=0.05))
    await socket.send_json_to({"type": "message", "sessionId": "s1", "message": "hi"})
    got = await frames_until(socket, "complete")
    assert got[-1]["stopped"] is False
    after = await socket.receive_json_from(timeout=5)
    assert (after["type"], after["code"], after["recoverable"]) == ("error", "TOKEN_EXPIRED", True)
    assert (await socket.receive_output(timeout=5))["code"] == 4401


async def test_an_expired_socket_takes_no_more_frames(sdk, settings) -> None:
    settings.AUTH_JWT_LEEWAY_SECONDS = 0
    socket = await connect(KEY.mint(sub="alice", exp=int(time.time()) + 2))
    await init(socket, "s1")
    await asyncio.sleep(2.2)
    closing = await socket.receive_json_from(timeout=5)
    assert closing["code"] == "TOKEN_EXPIRED"
    assert (await socket.receive_output(timeout=5))["code"] == 4401


async def test_each_quota_refuses_the_request_one_past_it(sdk, settings) -> None:
    settings.MAX_SESSIONS_PER_USER = 2
    settings.MAX_TURNS_PER_USER = 1
    settings.MAX_USD_PER_USER_PER_DAY = 1.0
    socket = await connect(KEY.mint(sub="alice"))
    assert (await init(socket, "q1"))["type"] == "ready"
    assert (await init(socket, "q2"))["type"] == "ready"
    refused = await init(socket, "q3")  # q1 and q2 are attended: none can be released
    assert (refused["type"], refused["code"]) == ("error", "QUOTA_EXCEEDED")
    other = await connect(KEY.mint(sub="bob"))  # another user's count is their own
    assert (await init(other, "q3"))["type"] == "ready"

    # Turns at once: one runs (it hangs until stopped), a second one is refused.
    sdk.answer(Reply(recorded("long_text"), hang_after=3))
    await socket.send_json_to({"type": "message", "sessionId": "q1", "message": "one"})
    await socket.send_json_to({"type": "message", "sessionId": "q2", "message": "two"})
    while (frame := await socket.receive_json_from(timeout=5))["type"] != "error":
        pass
    assert (frame["code"], frame["sessionId"]) == ("QUOTA_EXCEEDED", "q2")
    await socket.send_json_to({"type": "stop", "sessionId": "q1"})
    await frames_until(socket, "complete")

    # Spend: once today's turns cost the limit, the next turn is refused.
    await sync_to_async(TurnRecord.objects.filter(session__owner="jwt:alice").update)(cost_usd=0.6)
    await sync_to_async(TurnRecord.objects.create)(
        session=await ChatSession.objects.aget(owner="jwt:alice", public_id="q2"),
        state_id="spent",
        cost_usd=0.5,
    )
    await socket.send_json_to({"type": "message", "sessionId": "q2", "message": "three"})
    refused = await socket.receive_json_from(timeout=5)
    assert (refused["code"], refused["sessionId"]) == ("QUOTA_EXCEEDED", "q2")
    await socket.disconnect()
    await other.disconnect()


async def test_django_mode_uses_the_logged_in_users_session_cookie(sdk, settings) -> None:
    from django.contrib.auth.models import User

    settings.AUTH_MODE = "django"
    user = await sync_to_async(User.objects.create_user)("carol", password="pw-for-test-only")
    client = AsyncClient()
    await client.aforce_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    app = AuthMiddlewareStack(ChatConsumer.as_asgi())
    socket = WebsocketCommunicator(app, "/ws/chat", headers=[(b"cookie", cookie.encode())])
    assert (await socket.connect())[0]
    assert (await init(socket, "c1"))["type"] == "ready"
    await socket.disconnect()
    row = await ChatSession.objects.aget(public_id="c1")
    assert row.owner == f"django:{user.pk}"
    listed = (await client.get("/api/sessions")).json()["sessions"]
    assert [s["sessionId"] for s in listed] == ["c1"]

    anonymous = WebsocketCommunicator(app, "/ws/chat")
    assert (await anonymous.connect())[0]
    assert (await anonymous.receive_json_from(timeout=5))["code"] == "UNAUTHORIZED"
    assert (await AsyncClient().get("/api/sessions")).status_code == 401


async def django_socket(client: AsyncClient, settings) -> WebsocketCommunicator:
    """A socket with ``client``'s session cookie, as a browser of that login opens it."""
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    app = AuthMiddlewareStack(ChatConsumer.as_asgi())
    socket = WebsocketCommunicator(app, "/ws/chat", headers=[(b"cookie", cookie.encode())])
    assert (await socket.connect())[0]
    return socket


async def test_a_django_logout_ends_that_logins_sockets_after_the_running_turn(
    sdk, settings
) -> None:
    from django.contrib.auth.models import User

    settings.AUTH_MODE = "django"
    user = await sync_to_async(User.objects.create_user)("dave", password="pw-for-test-only")
    laptop, phone = AsyncClient(), AsyncClient()  # two logins of one user
    await laptop.aforce_login(user)
    await phone.aforce_login(user)
    on_laptop = await django_socket(laptop, settings)
    on_phone = await django_socket(phone, settings)
    await init(on_laptop, "d1")
    await init(on_phone, "d2")
    sdk.answer(Reply(recorded("long_text"), delay=0.02))
    await on_laptop.send_json_to({"type": "message", "sessionId": "d1", "message": "hi"})
    await frames_until(on_laptop, "stream")

    await laptop.alogout()

    # The running turn ends whole; then the socket is told and closed.
    got = await frames_until(on_laptop, "complete")
    assert got[-1]["stopped"] is False
    after = await on_laptop.receive_json_from(timeout=5)
    assert (after["type"], after["code"]) == ("error", "TOKEN_EXPIRED")
    assert (await on_laptop.receive_output(timeout=5))["code"] == 4401
    # The other login of the same user goes on.
    sdk.answer(Reply(recorded("write_app")))
    await on_phone.send_json_to({"type": "message", "sessionId": "d2", "message": "go"})
    assert (await frames_until(on_phone, "complete"))[-1]["type"] == "complete"
    await on_phone.disconnect()


async def test_a_logout_works_when_the_channel_layer_does_not(sdk, settings, caplog) -> None:
    from django.contrib.auth.models import User

    class Unreachable:
        async def group_send(self, group: str, message: dict) -> None:
            raise ConnectionError("redis is down")

    settings.AUTH_MODE = "django"
    user = await sync_to_async(User.objects.create_user)("erin", password="pw-for-test-only")
    client = AsyncClient()
    await client.aforce_login(user)
    key = client.session.session_key
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logouts, "get_channel_layer", Unreachable)
        await client.alogout()

    assert not await sync_to_async(Session.objects.filter(session_key=key).exists)()
    assert "ending a login's sockets failed" in caplog.text
    assert key not in caplog.text
