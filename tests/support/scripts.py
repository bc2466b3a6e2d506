"""Scripts only the chat tests need, added to the shipped ones."""

from __future__ import annotations

from scripted_model.blocks import TextBlock
from scripted_model.scripts import APP_TSX, SCRIPTS
from scripted_model.turns import Script, Turn, tool

TEST_SCRIPTS = {
    **SCRIPTS,
    "write_then_long_text": Script(
        "write_then_long_text",
        [
            Turn([tool("Write", file_path="{workspace}/src/App.tsx", content=APP_TSX)]),
            Turn([TextBlock("Still talking. " * 200, chunks=200)], chunk_delay=0.02),
        ],
        "Write App.tsx, then talk for about 4 s: a stop after a write.",
    ),
}
