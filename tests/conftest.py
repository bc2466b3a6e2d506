"""Shared test configuration."""

pytest_plugins = ["tests.support.fixtures", "tests.support.layers"]


# -- scripted model server (scripted_model/) ------------------------------------------

import pytest  # noqa: E402

from scripted_model.server import ScriptedModelServer  # noqa: E402


@pytest.fixture
def scripted_model():
    """A started scripted model server on a free port (default script ``demo``), for one test."""
    with ScriptedModelServer(script="demo") as server:
        yield server


@pytest.fixture(scope="session")
def scripted_model_session():
    """One scripted model server for the whole run; pick scripts with ``[script:NAME]``."""
    with ScriptedModelServer(script="demo") as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Each test starts with a runtime of its own: no live session, CLI slot or socket."""
    from chat.runtime import reset_runtime

    yield reset_runtime()
    reset_runtime()
