"""``ScriptedModelServer``: a local Anthropic Messages API that plays scripts.

It is not Claude: every answer comes from :mod:`scripted_model.scripts`. It
lets the real SDK and bundled CLI run offline in tests, benchmarks and demos::

    with ScriptedModelServer(script="write_app") as server:
        env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-ant-test-dummy"}
        ...
        assert server.requests[0].path == "/v1/messages"
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Hashable, Mapping
from types import TracebackType
from typing import Any

from scripted_model.faults import Fault
from scripted_model.handler import ModelHTTPServer
from scripted_model.recording import RecordedRequest
from scripted_model.scripts import SCRIPTS
from scripted_model.turns import Script

__all__ = ["RecordedRequest", "ScriptedModelServer"]


class ScriptedModelServer:
    """A threaded HTTP/1.1 server on ``host:port`` (0 picks a free port) that plays scripts.

    ``script`` is the default script; a prompt with ``[script:NAME]`` picks
    another for its exchange. ``chunk_delay`` is the pause (seconds) before each
    streamed delta. ``scripts`` replaces the shipped registry.
    """

    def __init__(
        self,
        script: str = "demo",
        host: str = "127.0.0.1",
        port: int = 0,
        chunk_delay: float = 0.0,
        *,
        scripts: Mapping[str, Script] | None = None,
        chunks_per_block: int = 4,
    ) -> None:
        self.scripts: Mapping[str, Script] = dict(SCRIPTS if scripts is None else scripts)
        if script not in self.scripts:
            known = ", ".join(sorted(self.scripts))
            raise ValueError(f"unknown script {script!r}; known scripts: {known}")
        self.default_script = script
        self.host = host
        self.port = port
        self.chunk_delay = chunk_delay
        self.chunks_per_block = chunks_per_block
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._fault_counts: dict[Hashable, int] = {}
        self._connections: set[socket.socket] = set()
        self._httpd: ModelHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Bind, listen and serve in a background thread; returns once listening."""
        if self._httpd is not None or self._stopped:
            raise RuntimeError("a ScriptedModelServer can be started once")
        self._httpd = ModelHTTPServer((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-model:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close every connection (stalled ones too) and join the threads.

        Safe to call more than once, and before ``start()``.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self.stopping.set()
            connections = list(self._connections)
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        thread.join()

    def __enter__(self) -> ScriptedModelServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the SDK as ``ANTHROPIC_BASE_URL``."""
        return f"http://{self.host}:{self.port}"

    # -- what tests read -------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._lock:
            return len(self._connections)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def reset_faults(self) -> None:
        """Forget how often each limited fault (``times=N``) has fired."""
        with self._lock:
            self._fault_counts.clear()

    # -- the Backend protocol the handler uses ----------------------------------

    def record(self, request: RecordedRequest) -> None:
        """Keep a received request."""
        with self._lock:
            self._requests.append(request)

    def should_fire(self, fault: Fault, key: Hashable) -> bool:
        """Whether ``fault`` fires now; a fault with ``times=N`` fires N times per key."""
        if fault.times is None:
            return True
        with self._lock:
            fired = self._fault_counts.get(key, 0)
            if fired >= fault.times:
                return False
            self._fault_counts[key] = fired + 1
            return True

    def sent(self, event: str, data: dict[str, Any]) -> None:
        """A streamed event was written: nothing to do here; a bench that times the
        stream overrides it (:class:`bench.harness.TimedModelServer`)."""

    def track(self, connection: socket.socket) -> bool:
        """Register an open connection; False once the server is stopping."""
        with self._lock:
            if self.stopping.is_set():
                return False
            self._connections.add(connection)
            return True

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._lock:
            self._connections.discard(connection)
