"""Several users end to end (issue 15): daphne in ``AUTH_MODE=jwt``, the real CLI on the
scripted model, real sockets and HTTP requests carrying JWTs signed by keys of the test.

One server for the module, trusting a JWKS file with an RSA and an EC key: user A signs
with the RSA key (RS256), user B with the EC key (ES256).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat.auth import Identity
from chat.owners import server_id
from scripted_model.scripts import APP_TSX
from scripted_model.server import ScriptedModelServer
from tests.support.jwt_keys import SigningKey, server_settings, tampered, write_jwks
from tests.support.live import ChatClient, LiveServer, refused_with, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RSA_KEY = SigningKey.rsa("e2e-rsa")
EC_KEY = SigningKey.ec("e2e-ec")
ALICE, BOB = "alice-e2e", "bob-e2e"
CSV = "month,revenue\nJan,10\nFeb,20\n"


@pytest.fixture(scope="module")
def jwt_server(
    tmp_path_factory: pytest.TempPathFactory, shared_model: ScriptedModelServer
) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("users-e2e")
    jwks = write_jwks(data / "jwks.json", [RSA_KEY, EC_KEY])
    server = LiveServer(data=data, env=server_env(data, shared_model.url, **server_settings(jwks)))
    server.start()
    yield server
    server.stop()


def workspace(server: LiveServer, sub: str, session_id: str) -> Path:
    """Where ``sub``'s session ``session_id`` lives: named for the user and the id."""
    return server.data / "workspaces" / server_id(Identity(user=f"jwt:{sub}"), session_id)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


class As:
    """HTTP requests of the bearer of ``token``."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, path: str, method: str = "GET") -> tuple[int, Any]:
        status, body = self.server.fetch(path, method, self.headers)
        return status, json.loads(body) if body else None


def listed(answer: tuple[int, Any]) -> list[str]:
    status, body = answer
    assert status == 200
    return sorted(s["sessionId"] for s in body["sessions"])


def user_texts(answer: tuple[int, Any]) -> list[str]:
    status, body = answer
    assert status == 200
    return [m["text"] for m in body["messages"] if m["role"] == "user"]


async def test_two_users_with_one_session_id_have_two_sessions_that_never_meet(
    jwt_server: LiveServer,
) -> None:
    alice_token, bob_token = RSA_KEY.mint(sub=ALICE), EC_KEY.mint(sub=BOB)
    alice, bob = As(jwt_server, alice_token), As(jwt_server, bob_token)
    shared = "plans"

    # A opens the session (token as the subprotocol) and runs a turn that writes a file.
    a = await ChatClient.connect(
        jwt_server.ws_url, subprotocols=["dashboard-ai", f"auth.{alice_token}"]
    )
    assert a.ws.subprotocol == "dashboard-ai"  # never the auth. entry
    ready = await a.init(shared, files={"data/sales.csv": CSV})
    assert (ready["type"], ready["sessionId"], ready["files"]) == (
        "ready",
        shared,
        ["data/sales.csv"],
    )
    turn = await a.message(shared, "alice's secret plan [script:write_app]", clientMessageId="a1")
    assert turn[-1]["type"] == "complete"
    assert turn[-1]["files"] == {"src/App.tsx": APP_TSX}
    assert all(f["sessionId"] == shared for f in turn)  # the client's id, not the server's
    alices_dir = workspace(jwt_server, ALICE, shared)
    assert files_under(alices_dir) == ["data/sales.csv", "src/App.tsx"]
    assert (alices_dir / "src/App.tsx").read_text() == APP_TSX
    assert not (jwt_server.data / "workspaces" / shared).exists()
    assert (await a.init("alice-only"))["type"] == "ready"
    assert user_texts(alice(f"/api/sessions/{shared}/messages")) == [
        "alice's secret plan [script:write_app]"
    ]

    # Before B opens the id, A's session is to B what an id nobody uses is.
    for path in (f"/api/sessions/{shared}/messages", f"/api/sessions/{shared}"):
        status, body = bob(path)
        unknown_status, unknown = bob(path.replace(shared, "nobody-uses-this"))
        assert (
            (status, body["code"])
            == (unknown_status, unknown["code"])
            == (404, "SESSION_NOT_FOUND")
        )
        assert body["message"].replace(shared, "X") == unknown["message"].replace(
            "nobody-uses-this", "X"
        )
    status, body = bob(f"/api/sessions/{shared}", "DELETE")
    assert (status, body["code"]) == (404, "SESSION_NOT_FOUND")
    assert listed(bob("/api/sessions")) == []
    # On the socket, steering it without an init is NOT_INITIALIZED, as for a free id.
    b = await ChatClient.connect(f"{jwt_server.ws_url}?token={bob_token}")
    for session_id in (shared, "nobody-uses-this"):
        await b.send({"type": "message", "sessionId": session_id, "message": "read it"})
        error = await b.recv()
        assert (error["type"], error["code"]) == ("error", "NOT_INITIALIZED")

    # B's init of the same id opens an empty session of B's own, in a workspace of its own.
    ready = await b.init(shared)
    assert (ready["type"], ready["sessionId"], ready["files"]) == ("ready", shared, [])
    assert ready["resumed"] is False
    bobs_dir = workspace(jwt_server, BOB, shared)
    assert bobs_dir.is_dir() and bobs_dir != alices_dir
    assert files_under(bobs_dir) == []
    turn = await b.message(shared, "bob asks [script:echo]", clientMessageId="b1")
    assert turn[-1]["type"] == "complete" and turn[-1]["files"] == {}
    assert "secret plan" not in json.dumps(turn) and APP_TSX not in json.dumps(b.frames)
    assert await a.nothing()  # A's socket heard nothing of B's session
    assert files_under(bobs_dir) == []
    assert user_texts(bob(f"/api/sessions/{shared}/messages")) == ["bob asks [script:echo]"]
    status, summary = bob(f"/api/sessions/{shared}")
    assert (status, summary["files"]) == (200, [])
    assert listed(bob("/api/sessions")) == [shared]
    assert listed(alice("/api/sessions")) == ["alice-only", shared]
    await b.close()

    # B's DELETE of the id removes B's session, never A's.
    assert bob(f"/api/sessions/{shared}", "DELETE") == (204, None)
    assert not bobs_dir.exists()
    assert bob(f"/api/sessions/{shared}")[0] == 404
    assert user_texts(alice(f"/api/sessions/{shared}/messages")) == [
        "alice's secret plan [script:write_app]"
    ]
    status, summary = alice(f"/api/sessions/{shared}")
    assert (status, summary["sessionId"], summary["files"]) == (
        200,
        shared,
        ["data/sales.csv", "src/App.tsx"],
    )
    assert (alices_dir / "src/App.tsx").read_text() == APP_TSX
    # And A's session still runs turns.
    turn = await a.message(shared, "again [script:echo]", clientMessageId="a2")
    assert turn[-1]["type"] == "complete"
    await a.close()


def refused_tokens() -> dict[str, str | None]:
    return {
        "expired": RSA_KEY.mint(sub=ALICE, exp=int(time.time()) - 3600),
        "tampered-rs256": tampered(RSA_KEY.mint(sub=ALICE)),
        "tampered-es256": tampered(EC_KEY.mint(sub=BOB)),
        "missing": None,
    }


@pytest.mark.parametrize("kind", list(refused_tokens()))
@pytest.mark.parametrize("carried_as", ["subprotocol", "query"])
async def test_a_refused_token_on_the_socket_gets_unauthorized_and_4401(
    jwt_server: LiveServer, kind: str, carried_as: str
) -> None:
    token = refused_tokens()[kind]
    url, options = jwt_server.ws_url, {}
    if token is not None and carried_as == "query":
        url += f"?token={token}"
    elif token is not None:
        options["subprotocols"] = ["dashboard-ai", f"auth.{token}"]

    frame, close_code = await refused_with(url, **options)

    assert frame == {
        "type": "error",
        "sessionId": None,
        "seq": 0,
        "code": "UNAUTHORIZED",
        "message": frame["message"],
        "recoverable": False,
    }
    assert frame["message"]
    assert close_code == 4401


@pytest.mark.parametrize("kind", list(refused_tokens()))
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sessions"),
        ("GET", "/api/sessions/plans/messages"),
        ("DELETE", "/api/sessions/plans"),
    ],
)
def test_a_refused_token_over_http_gets_401(
    jwt_server: LiveServer, kind: str, method: str, path: str
) -> None:
    token = refused_tokens()[kind]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    status, body = jwt_server.fetch(path, method, headers)

    assert status == 401
    assert json.loads(body)["code"] == "UNAUTHORIZED"


def test_a_valid_token_of_either_key_is_accepted_over_http(jwt_server: LiveServer) -> None:
    # The counterpart of the refusals above: the same requests with good tokens pass.
    for token in (RSA_KEY.mint(sub="carol-e2e"), EC_KEY.mint(sub="carol-e2e")):
        assert As(jwt_server, token)("/api/sessions") == (200, {"sessions": []})
        status, body = jwt_server.fetch(f"/api/sessions?token={token}")
        assert (status, json.loads(body)) == (200, {"sessions": []})
