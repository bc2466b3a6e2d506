"""A real backend (daphne in a subprocess) and a real WebSocket client, for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from tests.support.ports import free_port
from tests.support.postgres import live_database_url

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = Path(sys.executable).with_name("daphne")
TEST_API_KEY = "sk-ant-test-LEAKCANARY-0123456789abcdef"


def a_request_held(model: Any, *texts: str) -> bool:
    """Whether one request the scripted model got held every one of ``texts`` (a resume)."""
    bodies = [str(request.body.get("messages")) for request in model.requests]
    return any(all(text in body for text in texts) for body in bodies)


@dataclass
class LiveServer:
    """The backend under daphne, configured by environment variables only.

    With ``disk``, the server runs in a mount namespace of its own in which its folder
    ``data / "disk"`` is bind-mounted on the path ``disk``: several servers then see
    the same absolute paths (one ``WORKSPACE_ROOT`` for all, as a fleet needs) on disks
    of their own, as servers on separate machines would.
    """

    data: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    disk: Path | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data / "server.log"

    @property
    def own_disk(self) -> Path:
        """The folder the server sees at ``disk`` (on the host, where tests can look)."""
        return self.data / "disk"

    def _in_own_namespace(self, command: list[str]) -> list[str]:
        """``command`` run with this server's folder mounted on ``disk``, seen by no one else."""
        if self.disk is None:
            return command
        self.own_disk.mkdir(parents=True, exist_ok=True)
        mount_then_run = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", mount_then_run, "sh", str(self.own_disk), str(self.disk), *command,
        ]  # fmt: skip

    def start(self, timeout: float = 20.0) -> None:
        """Start daphne and wait until /health answers."""
        log = self.log_path.open("ab")
        command = [
            str(DAPHNE),
            "-v",
            "0",  # no access log: as bin/serve, whose comment says why
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "--websocket-max-message-size",
            str(64 * 1024 * 1024),
            "--websocket-max-frame-size",
            str(64 * 1024 * 1024),
            "dashboard_ai.asgi:application",
        ]
        self.process = subprocess.Popen(
            self._in_own_namespace(command),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                self.get_json("/health")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the server and wait; SIGKILL if it does not exit in time."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None

    def kill(self) -> None:
        """SIGKILL the server, as a crash or the OOM killer would: no handler runs."""
        if self.process is not None:
            process, self.process = self.process, None
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop the server process and start a new one on the same data."""
        self.stop()
        self.start()

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(self.http_url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def fetch(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """The status and body of any answer to ``method path``, error statuses included."""
        request = urllib.request.Request(self.http_url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(data: Path, model_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a test server: everything under ``data``, model on loopback."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DEBUG": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "SECRET_KEY": "test-secret-key-LEAKCANARY-not-for-production",
        "DATA_DIR": str(data / "var"),
        "WORKSPACE_ROOT": str(data / "workspaces"),
        "DATABASE_URL": overrides.get("DATABASE_URL") or live_database_url(data),
        "ANTHROPIC_API_KEY": TEST_API_KEY,
        "ANTHROPIC_BASE_URL": model_url,
        "CLAUDE_CODE_MAX_RETRIES": "2",
        "MODEL_STALL_SECONDS": "4",
        "STOP_DEADLINE_SECONDS": "3",
    }
    env.update(overrides)
    return env


class ChatClient:
    """A WebSocket client that speaks the chat protocol and keeps every frame it got."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> ChatClient:
        """Connect to ``url``; ``kwargs`` go to ``websockets.connect``.

        The client reads every frame as it arrives (``max_queue=None``, no flow control).
        With websockets' default it stops reading from TCP past 16 unread frames, and a
        ``close()`` then waits its whole ``close_timeout`` (10 s) for a close frame, or the
        end of a killed server's connection, that it no longer reads.
        """
        options: dict[str, Any] = {"max_size": None, "max_queue": None, **kwargs}
        return cls(await websockets.connect(url, **options))

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def until(self, *types: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Frames up to and including the first whose type is one of ``types``."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.1, deadline - time.monotonic()))
            got.append(frame)
            if frame["type"] in types:
                return got

    async def turn(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """The frames of a turn, up to its terminal ``complete`` or ``error``."""
        return await self.until("complete", "error", timeout=timeout)

    async def init(self, session_id: str, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "init", "sessionId": session_id, **fields})
        return (await self.until("ready", "error"))[-1]

    async def message(self, session_id: str, text: str, **fields: Any) -> list[dict[str, Any]]:
        await self.send({"type": "message", "sessionId": session_id, "message": text, **fields})
        return await self.turn()

    async def begin(self, session_id: str, text: str, **fields: Any) -> list[dict[str, Any]]:
        """Start a turn without waiting for it: the frames up to its first ``stream``."""
        await self.send({"type": "message", "sessionId": session_id, "message": text, **fields})
        return await self.until("stream")

    async def nothing(self, timeout: float = 0.3) -> bool:
        """True when no frame arrives within ``timeout``."""
        try:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            return True
        self.frames.append(json.loads(frame))
        return False

    async def close(self) -> None:
        await self.ws.close()


async def refused_with(url: str, **kwargs: Any) -> tuple[dict[str, Any], int | None]:
    """The error frame and close code of a socket the server refuses after accepting."""
    async with websockets.connect(url, **kwargs) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed:
            return frame, ws.close_code
        raise AssertionError(f"the refused socket stayed open after {frame}")


def claude_processes(marker: str) -> list[int]:
    """Pids of live CLI processes whose environment or cwd mentions ``marker``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"claude" not in cmdline:
                continue
            if marker in str((proc / "cwd").readlink()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
