"""The scripts the server ships, by name (:data:`SCRIPTS`).

A prompt containing ``[script:NAME]`` plays script NAME for that exchange;
otherwise the server's default script plays.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from scripted_model.blocks import Block, TextBlock, ToolCall
from scripted_model.conversation import RequestContext, strip_line_numbers
from scripted_model.demo import DEMO
from scripted_model.faults import DropConnection, HttpError, Stall
from scripted_model.turns import Script, StopReason, Turn, say, text, tool

__all__ = ["APP_TSX", "EDITED_HEADING", "LATE_TSX", "SCRIPTS", "Script", "StopReason", "Turn"]

#: What ``write_app`` writes to ``{workspace}/src/App.tsx``, byte for byte.
APP_TSX = """import { useState } from "react";

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <main className="app">
      <h1>Hello from the scripted model</h1>
      <p>This component was written by a scripted test server, not by Claude.</p>
      <button onClick={() => setCount(count + 1)}>Clicked {count} times</button>
    </main>
  );
}
"""

#: The heading ``read_then_edit`` puts in place of the first ``<h1>`` it reads.
EDITED_HEADING = "<h1>Edited by the scripted model</h1>"

_HEADING_RE = re.compile(r"<h1>.*?</h1>")


def edit_heading(context: RequestContext) -> Sequence[Block]:
    """Edit the ``<h1>`` found in the Read result, with ``old_string`` taken from it."""
    result = context.tool_results[0] if context.tool_results else None
    if result is None or result.is_error:
        return [text("I could not read src/App.tsx, so there is nothing to edit.")]
    match = _HEADING_RE.search(strip_line_numbers(result.content))
    if match is None:
        return [text("src/App.tsx has no <h1> heading to edit.")]
    return [
        text(f"Replacing `{match.group(0)}`."),
        tool(
            "Edit",
            file_path="{workspace}/src/App.tsx",
            old_string=match.group(0),
            new_string=EDITED_HEADING,
        ),
    ]


def report_results(context: RequestContext) -> Sequence[Block]:
    """Say, per tool call of the previous turn, whether it failed and how it began."""
    lines = [
        f"- [{'error' if result.is_error else 'ok'}] {result.content[:200]!r}"
        for result in context.tool_results
    ]
    return [text("The tools answered:\n" + ("\n".join(lines) or "(nothing)"))]


def echo(context: RequestContext) -> Sequence[Block]:
    """Quote the latest prompt and count the prompts in the conversation."""
    count = len(context.user_prompts)
    return [
        text(f'You said: "{context.prompt}". '),
        text(f"I see {count} user prompt{'s' if count != 1 else ''} in this conversation."),
    ]


def _hostile(name: str, description: str, *calls: ToolCall) -> Script:
    return Script(name, [Turn(list(calls)), Turn(report_results)], description)


LATE_TSX = "export const Late = () => <p>written after a long text</p>;\n"

_LONG_TEXT = " ".join(f"word{index:03d}" for index in range(400)) + "."

_FLOOD_RE = re.compile(r"flood=(\w{1,16})(?: deltas=(\d{1,6}))?")
#: How many deltas ``flood`` sends when the prompt does not say.
FLOOD_DELTAS = 2000


def flood(context: RequestContext) -> Sequence[Block]:
    """Many tiny text deltas, each ``TAG:NNNNNN `` (its index), from ``flood=TAG deltas=N``.

    Every delta names its turn (the tag) and its place in it, so a bench can match each
    ``stream`` frame to the moment the model wrote that delta, even when several are
    merged into one frame or sessions flood at once.
    """
    found = _FLOOD_RE.findall(context.prompt)
    tag, count = found[-1] if found else ("flood", "")
    deltas = int(count or FLOOD_DELTAS)
    pieces = "".join(f"{tag}:{index:06d} " for index in range(deltas))
    return [TextBlock(pieces, chunks=deltas)] if deltas else [text("(no deltas asked for)")]


_SCRIPT_LIST: list[Script] = [
    DEMO,
    Script(
        "write_app",
        [
            Turn(
                [
                    TextBlock("I'll create a small React component in src/App.tsx.", chunks=6),
                    tool("Write", file_path="{workspace}/src/App.tsx", content=APP_TSX),
                ]
            ),
            say("Done: src/App.tsx holds a counter component."),
        ],
        "Text, then Write {workspace}/src/App.tsx (APP_TSX), then a final text.",
    ),
    Script(
        "read_then_edit",
        [
            Turn(
                [
                    text("Reading src/App.tsx first."),
                    tool("Read", file_path="{workspace}/src/App.tsx"),
                ]
            ),
            Turn(edit_heading),
            say("Done: the heading is edited."),
        ],
        "Read src/App.tsx, Edit its <h1> (old_string from the Read result), then text.",
    ),
    Script(
        "glob_and_grep",
        [
            Turn([tool("Glob", pattern="**/*.tsx", path="{workspace}")]),
            Turn(
                [
                    tool(
                        "Grep",
                        pattern="useState",
                        path="{workspace}",
                        output_mode="files_with_matches",
                    )
                ]
            ),
            Turn(report_results),
        ],
        "Glob **/*.tsx, then Grep useState, then report what they returned.",
    ),
    Script(
        "multi_tool",
        [
            Turn(
                [
                    text("Creating two components and listing the JSON files, all at once."),
                    tool(
                        "Write",
                        file_path="{workspace}/src/Header.tsx",
                        content="export const Header = () => <h1>Header</h1>;\n",
                    ),
                    tool(
                        "Write",
                        file_path="{workspace}/src/Footer.tsx",
                        content="export const Footer = () => <footer>Footer</footer>;\n",
                    ),
                    tool("Glob", pattern="**/*.json", path="{workspace}"),
                ]
            ),
            Turn(report_results),
        ],
        "One assistant turn with three tool_use blocks (two Writes and a Glob), then text.",
    ),
    Script(
        "long_text",
        [Turn([TextBlock(_LONG_TEXT, chunks=200)], chunk_delay=0.02)],
        "One text of 200 chunks, 20 ms apart (about 4 s): for stop/interrupt tests.",
    ),
    Script("echo", [Turn(echo)], "Quote the prompt and count the user prompts seen."),
    Script(
        "flood",
        [Turn(flood)],
        "One text of many tiny deltas (TAG:NNNNNN each, flood=TAG deltas=N in the prompt), "
        "no delay: for throughput benches.",
    ),
    Script(
        "slow_write",
        [
            Turn(
                [
                    TextBlock(_LONG_TEXT, chunks=200),
                    tool("Write", file_path="{workspace}/src/Late.tsx", content=LATE_TSX),
                ],
                chunk_delay=0.02,
            ),
            say("Late.tsx is written."),
        ],
        "The long text (about 4 s), then Write src/Late.tsx: a turn that writes after a while.",
    ),
    Script(
        "max_tokens",
        [
            Turn(
                [text("This answer is cut off because it ran out of tok")], stop_reason="max_tokens"
            )
        ],
        "A text turn that stops with stop_reason max_tokens.",
    ),
    Script(
        "overloaded_529",
        [Turn([text("never sent")], fault=HttpError(529, "Overloaded"))],
        "Every request answered 529 overloaded_error.",
    ),
    Script(
        "overloaded_then_ok",
        [
            Turn(
                [text("Answered after two overloaded errors.")],
                fault=HttpError(529, "Overloaded", times=2),
            )
        ],
        "529 twice for the same conversation step, then a normal answer.",
    ),
    Script(
        "rate_limited_429",
        [
            Turn(
                [text("never sent")],
                fault=HttpError(429, "Number of request tokens has exceeded your rate limit"),
            )
        ],
        "Every request answered 429 rate_limit_error.",
    ),
    Script(
        "server_error_500",
        [Turn([text("never sent")], fault=HttpError(500, "Internal server error"))],
        "Every request answered 500 api_error.",
    ),
    Script(
        "stall",
        [Turn([text("never sent")], fault=Stall())],
        "Headers and message_start, then silence until the client leaves or the server stops.",
    ),
    Script(
        "drop_mid_stream",
        [
            Turn(
                [TextBlock("This stream is cut off before it ends, on purpose.", chunks=8)],
                fault=DropConnection(4),
            )
        ],
        "The socket is closed after four SSE events.",
    ),
    _hostile("read_etc_passwd", "Read /etc/passwd.", tool("Read", file_path="/etc/passwd")),
    _hostile(
        "read_proc_environ",
        "Read /proc/self/environ.",
        tool("Read", file_path="/proc/self/environ"),
    ),
    _hostile(
        "write_parent",
        "Write {workspace}/../../x and the relative ../escape.txt.",
        tool("Write", file_path="{workspace}/../../x", content="escaped\n"),
        tool("Write", file_path="../escape.txt", content="escaped\n"),
    ),
    _hostile(
        "glob_root",
        "Glob /**/* and Glob * in /.",
        tool("Glob", pattern="/**/*"),
        tool("Glob", pattern="*", path="/"),
    ),
    _hostile(
        "grep_root",
        "Grep over / and over the workspace's parent.",
        tool("Grep", pattern="root", path="/", output_mode="files_with_matches"),
        tool("Grep", pattern="root", path="{workspace}/..", output_mode="files_with_matches"),
    ),
    _hostile(
        "read_sibling",
        "Read {workspace}/../other-session/src/App.tsx.",
        tool("Read", file_path="{workspace}/../other-session/src/App.tsx"),
    ),
]

#: Every shipped script, by name.
SCRIPTS: dict[str, Script] = {script.name: script for script in _SCRIPT_LIST}
