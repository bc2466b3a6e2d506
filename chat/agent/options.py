"""Builds the Claude agent's options for one session: the only place that does.

The agent may use five file tools inside its workspace and nothing else: no shell,
no settings or hooks from the workspace, no MCP servers, no ``@path`` expansion.
The CLI runs through ``claude_launcher.sh``, which gives it a clean environment, a
process group of its own and a parent-death signal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import claude_agent_sdk
from claude_agent_sdk import ClaudeAgentOptions
from django.conf import settings

from chat.agent.gate import ALLOWED_TOOLS, tool_gate
from chat.agent.transcript_store import TranscriptStore

LAUNCHER = Path(__file__).with_name("launcher.sh")
BUNDLED_CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"

# The only variables the CLI process keeps (see claude_launcher.sh).
CLI_ENV_KEEP = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CONFIG_DIR",
    "HOME",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "CLAUDE_CODE_MAX_RETRIES",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_AGENT_SDK_VERSION",
    "CLAUDE_CODE_SDK_READS_SESSION_STATE",
    "CLAUDE_AGENT_SDK_CLIENT_APP",
    "CLAUDE_CODE_JIT_POLICY_AFTER_STARTUP",
    "PWD",
    "TMPDIR",
)

# The bundled CLI starts with its JavaScript JIT reluctant (tier-up thresholds scaled up,
# baked into the executable) and sets the normal policy (1) 10 s after it starts; from
# then on every function run often enough is compiled and keeps its machine code (10.5
# MiB of JIT code per CLI after a few turns) and metadata. This variable is the scale it
# sets instead (an integer 1 to 100; any other value is ignored and 1 used).
# bench/cli_memory.py (4 live CLIs, each 11 s old or more, after warm turns and one
# 3,000-delta turn; load 2 to 7): private memory per CLI 138-140 MiB -> 117-119 MiB, RSS
# 229-230 -> 204-207 MiB. The CLI's CPU per warm turn 148-179 ms -> 149-182 ms, per
# long_text turn (200 deltas over 4 s) 290 -> 250 ms, start unchanged (the scale
# applies from 10 s on); only an unpaced 3,000-delta turn takes more, 460-520 ms of CPU
# -> 540-615 ms (wall 0.8-1.1 s -> 1.3-1.5 s), far faster than a model streams. Scale 10
# saves 20 MiB only on a CLI that ran light turns, 0 to 6 MiB after that 3,000-delta turn.
CLI_JIT_POLICY = "100"

# The CLI's own wall behind our gate: file tools confined to the working directory,
# and a deny (not a prompt nobody answers) for anything else.
CLI_SETTINGS = json.dumps(
    {
        "permissions": {
            "blockReadsOutsideWorkingDirectories": True,
            "blockWritesOutsideWorkingDirectories": True,
            "denyInsteadOfPrompting": True,
        }
    }
)

# The SDK reads the CLI's stdout one JSON line at a time and ends the session on a
# line longer than ``max_buffer_size`` characters (default 1 MiB). A Write or Edit
# puts its file on single lines, measured with the bundled CLI 2.1.331 (2 MiB of
# code-like text escapes to 1.10 times its length): the assistant message, the
# hook's request and the tool result each carry the content once (a 2 MiB new
# file: 2,307,597 characters); the result of a Write over a file or of an Edit also
# carries ``originalFile`` (2 copies: 4,614,495 for a Write over 2 MiB, 4,614,721
# for a one-line Edit of a 4 MiB file), and, under about 1 MiB, a ``structuredPatch``
# with the changed lines old and new (a Write over 550 KB changing every line:
# 1,977,135, 3.5 copies). So: 4 copies at the worst JSON escape (6 characters per
# byte, ``\u0001``) of the largest file the gate lets through, plus the SDK's own
# 1 MiB for the rest of the line. Only a line that long ever uses the memory.
CLI_LINE_COPIES = 4
JSON_ESCAPE_WORST = 6
SDK_LINE_BASE = 1024 * 1024

DEFAULT_SYSTEM_PROMPT = """\
You are a dashboard engineer working inside a small React + TypeScript project.
The user's data files (CSV, JSON) and their dashboard source (TSX) are in the
current working directory. Build and refine the dashboard the user asks for:
read the data files to learn their columns, keep components small and typed, and
write changes with the Edit and Write tools. Only the files in the working
directory exist for you; never try to reach anything outside it. Reply briefly:
say what you changed and why."""


@dataclass(frozen=True)
class AgentPaths:
    """Where one session's CLI keeps its state and reports its pid."""

    config_dir: Path
    pidfile: Path


def paths_for(session_id: str) -> AgentPaths:
    """A config directory per session: one session can never read another's transcripts."""
    config_dir = Path(settings.DATA_DIR) / "claude" / session_id
    return AgentPaths(config_dir=config_dir, pidfile=config_dir / "cli.pid")


def model_configured() -> bool:
    """Whether a turn can reach a model: a key, or a base URL of a local model server."""
    return bool(settings.ANTHROPIC_API_KEY or settings.ANTHROPIC_BASE_URL)


def cli_environment(paths: AgentPaths) -> dict[str, str]:
    """The variables given to the CLI, on top of which the launcher drops everything else."""
    env = {
        "ANTHROPIC_API_KEY": settings.ANTHROPIC_API_KEY or "no-key-configured",
        "CLAUDE_CONFIG_DIR": str(paths.config_dir),
        "HOME": str(paths.config_dir),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": str(settings.CLAUDE_CODE_MAX_RETRIES),
        "CLAUDE_CODE_JIT_POLICY_AFTER_STARTUP": CLI_JIT_POLICY,
        "DASHBOARD_AI_CLAUDE_CLI": str(BUNDLED_CLI),
        "DASHBOARD_AI_PIDFILE": str(paths.pidfile),
        "DASHBOARD_AI_ENV_KEEP": " ".join(CLI_ENV_KEEP),
    }
    if settings.ANTHROPIC_BASE_URL:
        env["ANTHROPIC_BASE_URL"] = settings.ANTHROPIC_BASE_URL
    return env


def build_options(
    *, session_id: str, workspace: Path, resume: str | None = None, resume_at: str | None = None
) -> ClaudeAgentOptions:
    """The options of one session's ``ClaudeSDKClient``.

    ``resume_at`` (after an undo) loads the conversation ``resume`` only up to that
    message, into a fork, so the undone turns are gone for the model.

    The transcript is mirrored to the database (:class:`TranscriptStore`) and a resume
    loads it from there, so the conversation does not depend on this server's disk.
    The SDK keys it by the workspace's real path: every server must keep a session's
    workspace at the same absolute path (one ``WORKSPACE_ROOT``). The SDK refuses a
    session store together with ``enable_file_checkpointing`` (left off: undo keeps
    its own workspace states).
    """
    paths = paths_for(session_id)
    paths.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths.config_dir.chmod(0o700)
    return ClaudeAgentOptions(
        cwd=str(workspace),
        cli_path=str(LAUNCHER),
        tools=list(ALLOWED_TOOLS),
        hooks={"PreToolUse": [tool_gate(workspace, session_id)]},
        settings=CLI_SETTINGS,
        extra_args={"restricted": None},
        permission_mode="acceptEdits",
        include_partial_messages=True,
        setting_sources=[],
        skills=[],
        verbatim_prompts=True,
        strict_mcp_config=True,
        max_turns=settings.CLAUDE_MAX_TURNS,
        max_budget_usd=settings.CLAUDE_MAX_BUDGET_USD or None,
        system_prompt=settings.CLAUDE_SYSTEM_PROMPT or DEFAULT_SYSTEM_PROMPT,
        model=settings.CLAUDE_MODEL or None,
        resume=resume or None,
        resume_session_at=resume_at if resume else None,
        fork_session=bool(resume and resume_at),
        session_store=TranscriptStore(),
        # "eager": each line the CLI writes is appended within moments, so a server that
        # dies mid-turn has already stored what was said before it died. "batched"
        # appends once per turn, at its result: a crash would lose the whole turn, the
        # prompt included, since the disk it was written on is not shared.
        session_store_flush="eager",
        env=cli_environment(paths),
        stderr=_log_cli_stderr(session_id),
        max_buffer_size=max_line_chars(),
    )


def max_line_chars() -> int:
    """The longest CLI stdout line the SDK accepts: room for any Write or Edit the gate allows."""
    return CLI_LINE_COPIES * JSON_ESCAPE_WORST * settings.WORKSPACE_MAX_FILE_BYTES + SDK_LINE_BASE


def _log_cli_stderr(session_id: str) -> Callable[[str], None]:
    """The CLI's stderr goes to our log (redacted like every line), not to our stderr."""
    cli_logger = logging.getLogger("dashboard_ai.cli")

    def log_line(line: str) -> None:
        cli_logger.info("cli stderr", extra={"sessionId": session_id, "line": line[:2000]})

    return log_line
