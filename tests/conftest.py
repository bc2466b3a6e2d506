"""Shared test configuration: fixtures in tests/support/fixtures.py, layers in layers.py,
the run's database (SQLite or PostgreSQL) in databases.py."""

import pytest

from scripted_model.server import ScriptedModelServer

pytest_plugins = ["tests.support.fixtures", "tests.support.layers", "tests.support.databases"]


@pytest.fixture
def scripted_model():
    """A started scripted model server on a free port (default script ``demo``), for one test."""
    with ScriptedModelServer(script="demo") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Each test starts with a runtime of its own: no live session, CLI slot or socket."""
    from chat.runtime import reset_runtime

    yield reset_runtime()
    reset_runtime()
