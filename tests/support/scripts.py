"""Scripts only the chat tests need, added to the shipped ones."""

from __future__ import annotations

from scripted_model.blocks import TextBlock
from scripted_model.scripts import APP_TSX, SCRIPTS, report_results
from scripted_model.turns import Script, Turn, tool

#: What ``write_refused_names`` tries to write: not user work, not NFC, too deep.
REFUSED_AGENT_WRITES = (
    "node_modules/x/index.js",
    "notes.txt~",
    "src/.DS_Store",
    "cafe\u0301.txt",
    "d/" * 33 + "deep.txt",
)

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
    "write_refused_names": Script(
        "write_refused_names",
        [
            Turn(
                [
                    tool("Write", file_path=f"{{workspace}}/{path}", content="x\n")
                    for path in REFUSED_AGENT_WRITES
                ]
                + [tool("Write", file_path="{workspace}/ok.txt", content="ok\n")]
            ),
            Turn(report_results),
        ],
        "Write each of REFUSED_AGENT_WRITES, which the path gate refuses, and ok.txt.",
    ),
}
