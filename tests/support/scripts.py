"""Scripts only the chat tests need, added to the shipped ones."""

from __future__ import annotations

from scripted_model.blocks import TextBlock
from scripted_model.scripts import APP_TSX, SCRIPTS, report_results
from scripted_model.turns import Script, Turn, say, tool

#: What ``write_refused_names`` tries to write: not user work, not NFC, too deep.
REFUSED_AGENT_WRITES = (
    "node_modules/x/index.js",
    "notes.txt~",
    "src/.DS_Store",
    "cafe\u0301.txt",
    "d/" * 33 + "deep.txt",
)

MIB = 1024 * 1024
#: What ``write_2mib`` writes to ``{workspace}/data/big.csv`` and ``edit_big_csv`` edits
#: the header of: 2 MiB, over the SDK's default 1 MiB line buffer, under
#: WORKSPACE_MAX_FILE_BYTES (5 MiB).
BIG_CSV_HEADER = 'month,revenue,"note"\n'
BIG_CSV = (BIG_CSV_HEADER + 'Jan,10,"x"\n' * (2 * MIB // 11))[: 2 * MIB]

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
    "write_2mib": Script(
        "write_2mib",
        [
            Turn([tool("Write", file_path="{workspace}/data/big.csv", content=BIG_CSV)]),
            say("Done."),
        ],
        "Write BIG_CSV (2 MiB) to data/big.csv.",
    ),
    "edit_big_csv": Script(
        "edit_big_csv",
        [
            Turn(
                [
                    tool(
                        "Edit",
                        file_path="{workspace}/data/big.csv",
                        old_string=BIG_CSV_HEADER,
                        new_string=BIG_CSV_HEADER.upper(),
                    )
                ]
            ),
            say("Done."),
        ],
        "Edit the header line of data/big.csv (BIG_CSV): the result carries the whole file.",
    ),
    "write_over_file_limit": Script(
        "write_over_file_limit",
        [
            Turn(
                [tool("Write", file_path="{workspace}/data/huge.txt", content="x" * (5 * MIB + 1))]
            ),
            say("Done."),
        ],
        "Write 5 MiB + 1 byte (over the default WORKSPACE_MAX_FILE_BYTES) to data/huge.txt.",
    ),
    "reach_outside": Script(
        "reach_outside",
        [
            Turn(
                [
                    tool("Read", file_path="~/.claude.json"),
                    tool("Glob", pattern="*", path="~"),
                    tool("Read", file_path="{workspace}/missing.txt"),
                    tool("Glob", pattern="src/*.tsx", path="{workspace}"),
                ]
            ),
            say("Done."),
        ],
        "Read ~/.claude.json, Glob ~, Read a missing file, Glob src/*.tsx: paths in the answers.",
    ),
}
