"""What a live server's database holds of a session's transcripts, read from outside it.

The test process has its own (test) database; a live server has another, named by its
``DATABASE_URL``: a SQLite file, or a PostgreSQL database during a PostgreSQL run.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
from claude_agent_sdk import project_key_for_directory

from tests.support.live import LiveServer

_LINES = """
    SELECT t.session_id, e.entry FROM chat_transcriptentry e
    JOIN chat_transcript t ON t.id = e.transcript_id
    WHERE t.project_key = {mark} ORDER BY e.id
"""


def stored_lines(server: LiveServer, session_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The stored transcript lines of the session's workspace: (SDK session id, line)."""
    workspace = Path(server.env["WORKSPACE_ROOT"]) / session_id
    project_key = project_key_for_directory(workspace)
    url = server.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            rows = connection.execute(_LINES.format(mark="?"), (project_key,)).fetchall()
    else:
        with psycopg.connect(url) as connection:
            rows = connection.execute(_LINES.format(mark="%s"), (project_key,)).fetchall()
    return [(sdk_session_id, json.loads(entry)) for sdk_session_id, entry in rows]
