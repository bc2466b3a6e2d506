"""``python -m scripted_model``: run the scripted model server in the foreground.

Stops cleanly on SIGINT (Ctrl-C) and SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from scripted_model.scripts import SCRIPTS
from scripted_model.server import ScriptedModelServer


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m scripted_model",
        description="A local Anthropic Messages API playing scripted answers (NOT Claude).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765, 0 = any free)")
    parser.add_argument(
        "--script", default="demo", choices=sorted(SCRIPTS), help="default script (default demo)"
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds before each streamed delta"
    )
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM."""
    args = build_parser().parse_args(argv)
    if args.list:
        for name, script in sorted(SCRIPTS.items()):
            print(f"{name:20} {script.description}")
        return 0
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = ScriptedModelServer(
        script=args.script, host=args.host, port=args.port, chunk_delay=args.chunk_delay
    )
    server.start()
    try:
        print(
            f"scripted model server (NOT Claude) listening on {server.url}, "
            f"default script {args.script}",
            flush=True,
        )
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    print("scripted model server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
