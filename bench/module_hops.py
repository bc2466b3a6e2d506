"""How many of the project's modules one ``message`` round trip and one ``stop`` run through.

The backend runs in this process (its ASGI application under Channels' communicator,
so a profiler sees every call), with the real SDK and CLI against the scripted model.
A profile hook on every thread (the workspace service runs in worker threads) records
each call into a module of the project (``chat``, ``workspaces``, ``dashboard_ai``):

- **message round trip**: from the ``message`` frame to its ``complete`` frame (script
  ``write_app``: a text, a Write, a text), the distinct modules called and the *hops*,
  calls from one project module into another;
- **stop**: from the ``stop`` frame until the CLI was told to stop, the modules on the
  call stack where the stop is signalled (an ``asyncio.Event`` set, or whatever else the
  tree does first) and where ``ClaudeSDKClient.interrupt`` is called; with a slow text
  so the stop lands mid-stream.

It reads only ``dashboard_ai.asgi.application`` and the protocol, so it runs on any
revision of the tree (for a before-and-after)::

    .venv/bin/python bench/module_hops.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripted_model.scripts import SCRIPTS  # noqa: E402
from scripted_model.server import ScriptedModelServer  # noqa: E402
from scripted_model.turns import Script, Turn, text  # noqa: E402

PACKAGES = ("chat", "workspaces", "dashboard_ai")
#: A text streamed over about four seconds, for a stop to land in.
SLOW_TEXT = Script("slow_text", [Turn([text("word " * 400, chunks=400)], chunk_delay=0.01)])
ORIGIN = "http://localhost:2500"  # the default CORS_ORIGIN


def project_module(frame: FrameType) -> str | None:
    """The dotted name of the project module ``frame`` runs in, if it is one."""
    try:
        relative = Path(frame.f_code.co_filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if relative.parts[0] not in PACKAGES or relative.suffix != ".py":
        return None
    return ".".join(relative.with_suffix("").parts)


class ModuleTrace:
    """Calls into project modules, and between them, while recording."""

    def __init__(self) -> None:
        self.recording = False
        self.modules: Counter[str] = Counter()
        self.hops: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        #: Stacks (project modules, outermost first) at each Event.set and interrupt.
        self.signals: list[list[str]] = []
        self.interrupts: list[list[str]] = []

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or not self.recording:
            return
        code = frame.f_code
        if code.co_name == "set" and code.co_filename.endswith("asyncio/locks.py"):
            if stack := self.stack(frame):  # the project's own, not the SDK's or anyio's
                self.signals.append(stack)
        elif code.co_name == "interrupt" and code.co_filename.endswith(
            "claude_agent_sdk/client.py"
        ):
            self.interrupts.append(self.stack(frame))
        callee = project_module(frame)
        if callee is None:
            return
        caller = self.nearest_caller(frame.f_back)
        with self.lock:
            self.modules[callee] += 1
            if caller is not None and caller != callee:
                self.hops[(caller, callee)] += 1

    @staticmethod
    def nearest_caller(frame: FrameType | None) -> str | None:
        """The nearest project module up the stack (through library frames in between)."""
        while frame is not None:
            module = project_module(frame)
            if module is not None:
                return module
            frame = frame.f_back
        return None

    @staticmethod
    def stack(frame: FrameType | None) -> list[str]:
        """The project modules on the stack below ``frame``, outermost first, runs collapsed."""
        modules: list[str] = []
        while frame is not None:
            module = project_module(frame)
            if module is not None and (not modules or modules[-1] != module):
                modules.append(module)
            frame = frame.f_back
        return modules[::-1]

    def start(self) -> None:
        self.modules.clear()
        self.hops.clear()
        self.signals.clear()
        self.interrupts.clear()
        self.recording = True

    def stop(self) -> None:
        self.recording = False


async def exchange(application: Any, trace: ModuleTrace) -> None:
    from channels.testing import WebsocketCommunicator

    socket = WebsocketCommunicator(
        application,
        "/ws/chat",
        headers=[(b"origin", ORIGIN.encode()), (b"host", b"localhost:3000")],
    )
    connected, _ = await socket.connect()
    assert connected, "the socket was refused"

    async def until(kind: str) -> dict[str, Any]:
        while True:
            frame = await socket.receive_json_from(timeout=60)
            if frame["type"] == kind:
                return frame
            if frame["type"] == "error":
                raise RuntimeError(frame)

    await socket.send_json_to({"type": "init", "sessionId": "hops", "files": {}})
    await until("ready")
    await socket.send_json_to(
        {"type": "message", "sessionId": "hops", "message": "warm up [script:echo]"}
    )
    await until("complete")  # the CLI is started and warm: what remains is the turn itself

    trace.start()
    await socket.send_json_to(
        {"type": "message", "sessionId": "hops", "message": "[script:write_app]"}
    )
    await until("complete")
    trace.stop()
    report("message round trip (write_app, warm CLI)", trace)

    await socket.send_json_to(
        {"type": "message", "sessionId": "hops", "message": "[script:slow_text]"}
    )
    await until("stream")
    trace.start()
    await socket.send_json_to({"type": "stop", "sessionId": "hops"})
    await until("complete")
    trace.stop()
    print("stop: from the stop frame to the CLI's interrupt")
    first_signal = trace.signals[0] if trace.signals else []
    first_interrupt = trace.interrupts[0] if trace.interrupts else []
    print(f"  signalled in: {' -> '.join(first_signal) or '(no Event.set)'}")
    print(f"  interrupted from: {' -> '.join(first_interrupt) or '(no interrupt)'}")
    modules = dict.fromkeys(first_signal + first_interrupt)
    print(f"  modules on the way: {len(modules)} ({', '.join(modules)})")
    print(f"  project modules called until its complete frame: {len(trace.modules)}")
    await socket.disconnect()


def report(title: str, trace: ModuleTrace) -> None:
    print(title)
    print(f"  distinct project modules called: {len(trace.modules)}")
    print(f"  distinct caller->callee module pairs: {len(trace.hops)}")
    print(f"  cross-module calls: {sum(trace.hops.values())}")
    for module, calls in sorted(trace.modules.items()):
        print(f"    {calls:6d}  {module}")


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="module-hops-"))
    scripts = {**SCRIPTS, SLOW_TEXT.name: SLOW_TEXT}
    with ScriptedModelServer(script="echo", scripts=scripts, chunk_delay=0.0) as model:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="dashboard_ai.settings",
            DEBUG="0",
            SECRET_KEY="bench-module-hops-secret-key-not-for-production",
            DATA_DIR=str(data / "var"),
            WORKSPACE_ROOT=str(data / "workspaces"),
            DATABASE_URL=f"sqlite:///{data / 'db.sqlite3'}",
            ANTHROPIC_API_KEY="sk-ant-bench-dummy",
            ANTHROPIC_BASE_URL=model.url,
            LOG_LEVEL="warning",
        )
        from dashboard_ai.asgi import application  # sets Django up and migrates

        trace = ModuleTrace()
        threading.setprofile(trace.hook)
        sys.setprofile(trace.hook)
        try:
            asyncio.run(exchange(application, trace))
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
