"""Fixtures for end-to-end chat tests: one scripted model and one live backend per run."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import count

import pytest

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer, server_env
from tests.support.postgres import live_database_url
from tests.support.redis import REDIS_SERVER, RedisServer
from tests.support.scripts import TEST_SCRIPTS

_session_numbers = count(1)


@pytest.fixture(scope="session")
def shared_model() -> Iterator[ScriptedModelServer]:
    """A scripted model server for the whole run; tests pick scripts with ``[script:NAME]``."""
    with ScriptedModelServer(script="echo", scripts=TEST_SCRIPTS) as server:
        yield server


@pytest.fixture(scope="session")
def backend(
    tmp_path_factory: pytest.TempPathFactory, shared_model: ScriptedModelServer
) -> Iterator[LiveServer]:
    """The backend under daphne for the whole run."""
    data = tmp_path_factory.mktemp("live")
    server = LiveServer(data=data, env=server_env(data, shared_model.url))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_server(tmp_path, shared_model: ScriptedModelServer) -> Callable[..., LiveServer]:
    """A factory of backends of this test's own, configured with extra variables."""

    def make(**overrides: str) -> LiveServer:
        return LiveServer(data=tmp_path, env=server_env(tmp_path, shared_model.url, **overrides))

    return make


@pytest.fixture
def cluster(tmp_path, shared_model: ScriptedModelServer) -> Iterator[Callable[..., LiveServer]]:
    """A factory of servers on one database, each on a disk of its own at one path.

    Every server sees the same ``WORKSPACE_ROOT`` and ``DATA_DIR`` (under ``disk``), each
    on its own folder (``LiveServer.own_disk``) through a mount namespace: servers of a
    fleet on separate machines. They are stopped at the end of the test.
    """
    disk = tmp_path / "disk"
    disk.mkdir()
    servers: list[LiveServer] = []

    def make(**overrides: str) -> LiveServer:
        data = tmp_path / f"server{len(servers)}"
        data.mkdir()
        shared = {
            "DATA_DIR": str(disk / "var"),
            "WORKSPACE_ROOT": str(disk / "workspaces"),
            "DATABASE_URL": live_database_url(tmp_path),
        }
        env = server_env(data, shared_model.url, **{**shared, **overrides})
        servers.append(LiveServer(data=data, env=env, disk=disk))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


#: The leases of a ``fleet``: short, so a dead owner's sessions are taken over within seconds.
FLEET_LEASE_SECONDS = 2.0


@pytest.fixture
def fleet(cluster, redis_server: RedisServer) -> Callable[..., LiveServer]:
    """Start a server of the ``cluster`` named ``name``, on the test's Redis."""

    def start(name: str, **overrides: str) -> LiveServer:
        settings = {"SESSION_LEASE_SECONDS": str(FLEET_LEASE_SECONDS), **overrides}
        server = cluster(REDIS_URL=redis_server.url, SERVER_ID=name, **settings)
        server.start()
        return server

    return start


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test's own; a missing redis-server fails the test, never skips."""
    if shutil.which(REDIS_SERVER) is None:
        pytest.fail(
            f"{REDIS_SERVER} is not installed; tests of the Redis channel layer need it "
            "(apt-get install redis-server, as .ci/run does)",
            pytrace=False,
        )
    server = RedisServer(log_path=tmp_path_factory.mktemp("redis") / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def session_id(request: pytest.FixtureRequest) -> str:
    """A session id no other test uses."""
    name = request.node.name.split("[")[0][-40:]
    return f"t{next(_session_numbers)}-{name}".replace(".", "_")


@pytest.fixture
async def chat(backend: LiveServer) -> AsyncIterator[ChatClient]:
    """A connected chat client on the live server."""
    client = await ChatClient.connect(backend.ws_url)
    yield client
    await client.close()
