"""The suite's two layers: fast in-process tests, and ``e2e`` tests through real processes.

A test is end to end when it runs the Claude CLI or the backend, Redis or PostgreSQL as
a server process (daphne, ``runserver``, ``redis-server``, ``postgres``). Tests that use a
fixture which starts one are marked ``e2e`` here; tests that start one themselves carry
the mark in their module. (In a PostgreSQL run, the fast tests of the database use the
run's one server, started for the session: tests/support/databases.py.)
``pytest -m "not e2e"`` (``make test-fast``) runs the rest, and a guard fails any of those
that starts the CLI or a server anyway: the fast layer cannot quietly grow slow, and
"runs without a CLI" stays a fact, not a hope.
"""

from __future__ import annotations

from typing import Any

import pytest
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from tests.support.live import LiveServer
from tests.support.postgres import PostgresServer
from tests.support.redis import RedisServer

#: Fixtures that start a server process, directly or through another fixture.
E2E_FIXTURES = frozenset({"backend", "own_server", "cluster", "redis_server", "postgres_server"})

#: What a fast test must not start, and the method that starts it.
_PROCESS_STARTS = {
    "the Claude CLI": (SubprocessCLITransport, "connect"),
    "the backend under daphne": (LiveServer, "start"),
    "redis-server": (RedisServer, "start"),
    "postgres": (PostgresServer, "start"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("e2e") is not None:
        return
    for what, (owner, method) in _PROCESS_STARTS.items():
        monkeypatch.setattr(owner, method, _refusal(request.node.nodeid, what))


def _refusal(test: str, what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{test} starts {what}: mark it e2e (tests/support/layers.py)")

    return refuse
