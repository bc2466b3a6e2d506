"""What the benches share: the scripted model with arrival times, a live backend, percentiles.

Every bench runs offline against :class:`scripted_model.server.ScriptedModelServer`
(no delays unless a script has its own) and a real daphne subprocess of this tree
(:class:`tests.support.live.LiveServer`), so what it measures is the backend's own cost.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scripted_model.recording import RecordedRequest
from scripted_model.server import ScriptedModelServer
from tests.support.live import LiveServer, server_env


class TimedModelServer(ScriptedModelServer):
    """The scripted model, also noting when each Messages request arrived (perf_counter).

    A turn's first request arrives once its CLI is up and has sent the prompt, so the
    time to it is what starting (or resuming) the CLI cost. With ``time_deltas``, it
    also notes when each text delta was written, by its text (the ``flood`` script makes
    every delta's text unique), for the latency of each event to the client.
    """

    def __init__(self, script: str, chunk_delay: float = 0.0, *, time_deltas: bool = False) -> None:
        super().__init__(script=script, chunk_delay=chunk_delay)
        self.arrivals: list[float] = []
        self._arrivals_lock = threading.Lock()
        self.time_deltas = time_deltas
        self.delta_times: dict[str, float] = {}

    def sent(self, event: str, data: dict[str, Any]) -> None:
        if self.time_deltas and event == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self.delta_times[delta.get("text", "")] = time.perf_counter()

    def record(self, request: RecordedRequest) -> None:
        if request.path.rstrip("/") == "/v1/messages":
            with self._arrivals_lock:
                self.arrivals.append(time.perf_counter())
        super().record(request)

    def arrivals_since(self, start: float) -> list[float]:
        with self._arrivals_lock:
            return [t for t in self.arrivals if t >= start]


@contextmanager
def live_backend(data: Path, model_url: str, **settings: str) -> Iterator[LiveServer]:
    """A daphne server of this tree with everything under ``data``; stopped (SIGTERM) on exit.

    ``settings`` are the server's environment variables beyond the test defaults
    (:func:`tests.support.live.server_env`), e.g. ``MAX_LIVE_AGENTS="32"``.
    """
    data.mkdir(parents=True, exist_ok=True)
    with LiveServer(data=data, env=server_env(data, model_url, **settings)) as server:
        yield server


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values``, linear between the closest ranks; NaN if empty.

    The same as ``statistics.quantiles(method="inclusive")`` and NumPy's default, and
    defined for one value (that value), which a bench with few rounds needs.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def p95(values: list[float]) -> float:
    """The 95th percentile of ``values`` (see :func:`quantile`)."""
    return quantile(values, 0.95)
