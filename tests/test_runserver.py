"""`manage.py runserver`, with Django's autoreloader on, serves the chat and shuts down gracefully.

Under the reloader the server runs in a thread of the reloader's child process (the
main thread watches files), so nothing the server itself runs may install a signal
handler; SIGTERM to that child must still end the turn, close the socket with 4012
and end the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from scripted_model.server import ScriptedModelServer
from tests.support.live import ROOT, ChatClient, LiveServer, claude_processes, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (read from /proc, no psutil)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(proc.name))
    return found


def runs_main(pid: int) -> bool:
    """Whether the process is the reloader's child, the one that serves (RUN_MAIN=true)."""
    try:
        return b"RUN_MAIN=true" in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@dataclass
class Runserver:
    """`manage.py runserver`: the process we start and the one that serves.

    With the reloader they differ: the serving one is the child of the one started.
    """

    live: LiveServer
    parent: subprocess.Popen[bytes]
    child: int


@pytest.fixture(params=[True, False], ids=["reloader", "noreload"])
def runserver(
    request: pytest.FixtureRequest, tmp_path: Path, shared_model: ScriptedModelServer
) -> Iterator[Runserver]:
    live = LiveServer(data=tmp_path, env=server_env(tmp_path, shared_model.url))
    reloader: bool = request.param
    with live.log_path.open("ab") as log:
        parent = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runserver",
                *([] if reloader else ["--noreload"]),
                f"127.0.0.1:{live.port}",
            ],
            cwd=ROOT,
            env=live.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so cleanup reaches the child
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if parent.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"runserver did not start:\n{live.log_text()[-3000:]}")
            try:
                live.get_json("/health")
                break
            except OSError:
                time.sleep(0.1)
        if reloader:
            [child] = [pid for pid in children_of(parent.pid) if runs_main(pid)]
        else:
            child = parent.pid
        yield Runserver(live=live, parent=parent, child=child)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)


async def test_runserver_runs_a_turn_and_stops_gracefully_on_sigterm(
    runserver: Runserver, session_id: str
) -> None:
    client = await ChatClient.connect(runserver.live.ws_url)
    ready = await client.init(session_id)
    frames = await client.message(session_id, "hello from runserver")
    await client.begin(session_id, "[script:long_text]")

    os.kill(runserver.child, signal.SIGTERM)
    stopped = await client.turn(timeout=15)
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv(timeout=15)
    exit_code = runserver.parent.wait(timeout=15)

    assert ready["type"] == "ready"
    assert frames[-1]["type"] == "complete"
    assert "hello from runserver" in "".join(f.get("text", "") for f in frames)
    assert stopped[-1]["type"] == "complete" and stopped[-1]["stopped"] is True
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4012
    assert not alive(runserver.child)
    assert exit_code == 0
    assert claude_processes(session_id) == []
    assert "Traceback" not in runserver.live.log_text()
