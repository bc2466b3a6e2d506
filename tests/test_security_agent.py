"""Attacks on the agent's confinement, through the real SDK and CLI and the scripted model.

Each attack is one scripted tool call. The whole matrix runs once per defence: the
agent as the server builds it (tool gate and the CLI's own wall), the gate alone and
the wall alone, each a CLI that plays every attack in turn, so each defence is shown
to hold by itself. A representative set runs again one attack to a fresh CLI. After
each: every tool result is an error, nothing secret reached the model (the scripted
server records every request), and nothing outside the workspace changed. The gate's
own verdicts on the matrix are checked in-process too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from claude_agent_sdk import (
    ClaudeAgentOptions,
    PermissionResultAllow,
    ToolResultBlock,
    UserMessage,
    query,
)

from chat.agent import options as agent_options
from scripted_model.server import ScriptedModelServer
from scripted_model.turns import Script, Turn, say, tool

# The agent's options mirror its transcript to the database (chat.agent.transcript_store):
# transactional, since the store writes from the ORM's own thread.
pytestmark = [pytest.mark.timeout(60), pytest.mark.django_db(transaction=True)]

# What must never reach the model. (The attacks' own inputs, like "PWNED", are echoed
# back in the conversation, so they are checked on disk instead.)
SECRETS = ("root:x:0:0", "OUTSIDE-SECRET", "SIBLING-SECRET", "TRANSCRIPT-SECRET")
OUTSIDE_NAMES = {"victim", "outside", "secret.txt", "etc", "passwd"}


@dataclasses.dataclass
class Scene:
    """A workspace with a sibling session, another session's transcripts and a file outside."""

    root: Path
    workspace: Path
    sibling: Path
    outside: Path
    other_config: Path

    def snapshot_outside(self) -> dict[str, bytes]:
        """Every file under the test root that is not in the attacked workspace."""
        files = {}
        for path in self.root.rglob("*"):
            if path.is_file() and not path.is_symlink() and self.workspace not in path.parents:
                if "claude" in path.parts and "attacker" in path.parts:
                    continue  # the attacked session's own CLI state
                files[str(path)] = path.read_bytes()
        return files


@pytest.fixture
def scene(tmp_path, settings) -> Scene:
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.DATA_DIR = tmp_path / "var"
    workspace = tmp_path / "workspaces" / "attacker"
    sibling = tmp_path / "workspaces" / "victim"
    outside = tmp_path / "outside"
    other_config = tmp_path / "var" / "claude" / "victim"
    for directory in (workspace / "src", sibling / "src", outside, other_config / "projects"):
        directory.mkdir(parents=True)
    (workspace / "src" / "App.tsx").write_text("export const App = () => null;\n")
    (sibling / "src" / "App.tsx").write_text("// SIBLING-SECRET\n")
    (outside / "secret.txt").write_text("OUTSIDE-SECRET\n")
    (other_config / "projects" / "t.jsonl").write_text('{"x": "TRANSCRIPT-SECRET"}\n')
    (workspace / "link.tsx").symlink_to(outside / "secret.txt")
    (workspace / "l").symlink_to("/")
    (workspace / "up").symlink_to(outside)
    return Scene(tmp_path, workspace, sibling, outside, other_config)


def attacks(scene: Scene) -> dict[str, tuple[str, dict]]:
    w, s, o = scene.workspace, scene.sibling, scene.outside
    return {
        "read_etc_passwd": ("Read", {"file_path": "/etc/passwd"}),
        "read_proc_environ": ("Read", {"file_path": "/proc/self/environ"}),
        "read_other_transcripts": ("Read", {"file_path": f"{scene.other_config}/projects/t.jsonl"}),
        "read_sibling_relative": ("Read", {"file_path": f"{w}/../victim/src/App.tsx"}),
        "read_sibling_absolute": ("Read", {"file_path": f"{s}/src/App.tsx"}),
        "read_parent_relative": ("Read", {"file_path": "../victim/src/App.tsx"}),
        "glob_root_pattern": ("Glob", {"pattern": "/**/*"}),
        "glob_parent_pattern": ("Glob", {"pattern": "../**"}),
        "glob_root_path": ("Glob", {"pattern": "**/*secret*", "path": "/"}),
        "glob_symlinked_dir": ("Glob", {"pattern": "*", "path": f"{w}/up"}),
        "glob_home": ("Glob", {"pattern": "*", "path": "~"}),
        "grep_root": ("Grep", {"pattern": "SECRET", "path": "/", "output_mode": "content"}),
        "grep_parent": ("Grep", {"pattern": "SECRET", "path": f"{w}/..", "output_mode": "content"}),
        "grep_glob_parent": (
            "Grep",
            {"pattern": "SECRET", "glob": "../**", "output_mode": "content"},
        ),
        "write_parent_parent": ("Write", {"file_path": f"{w}/../../x", "content": "PWNED"}),
        "write_absolute_outside": ("Write", {"file_path": f"{o}/new.txt", "content": "PWNED"}),
        "write_sibling": ("Write", {"file_path": f"{s}/src/App.tsx", "content": "PWNED"}),
        "edit_through_symlink": (
            "Edit",
            {"file_path": f"{w}/link.tsx", "old_string": "OUTSIDE", "new_string": "PWNED"},
        ),
        "write_through_symlink": ("Write", {"file_path": f"{w}/link.tsx", "content": "PWNED"}),
        "read_through_root_symlink": ("Read", {"file_path": f"{w}/l/etc/passwd"}),
        "read_through_dir_symlink": ("Read", {"file_path": f"{w}/up/secret.txt"}),
        "owasp_percent_encoded": ("Read", {"file_path": f"{w}/%2e%2e%2f%2e%2e%2fetc%2fpasswd"}),
        "owasp_overlong_utf8": ("Read", {"file_path": f"{w}/..%c0%af..%c0%afetc/passwd"}),
        "owasp_unicode_escapes": ("Read", {"file_path": f"{w}/%uff0e%uff0e%u2215etc%u2215passwd"}),
        "owasp_fullwidth_dots": (
            "Read",
            {"file_path": f"{w}/\uff0e\uff0e/\uff0e\uff0e/etc/passwd"},
        ),
        "owasp_dot_dot_slash_doubled": ("Read", {"file_path": f"{w}/....//....//etc/passwd"}),
        "owasp_semicolon": ("Read", {"file_path": f"{w}/..;/..;/etc/passwd"}),
        "owasp_unc_device": ("Read", {"file_path": "\\\\?\\C:\\windows\\win.ini"}),
        "owasp_drive_letter": ("Read", {"file_path": "c:\\windows\\win.ini"}),
        "owasp_trailing_dots": ("Read", {"file_path": f"{w}/src/../../victim./src/App.tsx"}),
        "owasp_nul": ("Read", {"file_path": f"{w}/src/App.tsx\u0000/../../../etc/passwd"}),
        "not_a_permitted_tool": ("Bash", {"command": "cat /etc/passwd"}),
    }


#: One attack per tool and kind of escape, each also run alone in a CLI of its own.
REPRESENTATIVE = (
    "read_etc_passwd",
    "read_through_dir_symlink",
    "glob_root_path",
    "grep_parent",
    "write_absolute_outside",
    "edit_through_symlink",
    "owasp_percent_encoded",
    "not_a_permitted_tool",
)
EVERY_ATTACK = "every_attack"


def scripts_for(scene: Scene) -> dict[str, Script]:
    """A script per attack, and one that makes every attack in turn (``every_attack``)."""
    calls = attacks(scene)
    scripts = {
        name: Script(name, [Turn([tool(tool_name, **tool_input)]), say("Done.")])
        for name, (tool_name, tool_input) in calls.items()
    }
    every = [Turn([tool(tool_name, **tool_input)]) for tool_name, tool_input in calls.values()]
    scripts[EVERY_ATTACK] = Script(EVERY_ATTACK, [*every, say("Done.")])
    return scripts


@pytest.fixture
def model(scene: Scene) -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(script="read_etc_passwd", scripts=scripts_for(scene)) as server:
        yield server


def server_options(scene: Scene, model: ScriptedModelServer, settings) -> ClaudeAgentOptions:
    settings.ANTHROPIC_BASE_URL = model.url
    settings.ANTHROPIC_API_KEY = "sk-ant-test-security-dummy"
    settings.CLAUDE_CODE_MAX_RETRIES = 0
    return agent_options.build_options(session_id="attacker", workspace=scene.workspace)


async def allow_everything(tool: str, tool_input: dict, context: object) -> PermissionResultAllow:
    """A permission callback that says yes to all: what the CLI does when nobody asks."""
    return PermissionResultAllow()


def gate_only(options: ClaudeAgentOptions) -> ClaudeAgentOptions:
    """Our gate alone: the CLI's wall down and every permission prompt answered "allow"."""
    return dataclasses.replace(options, settings=None, extra_args={}, can_use_tool=allow_everything)


def wall_only(options: ClaudeAgentOptions) -> ClaudeAgentOptions:
    """The CLI's wall alone: our gate out and every permission prompt answered "allow"."""
    return dataclasses.replace(options, hooks=None, can_use_tool=allow_everything)


def no_defence(options: ClaudeAgentOptions) -> ClaudeAgentOptions:
    """Neither wall: the control that shows the harness would see a leak."""
    return dataclasses.replace(
        options, hooks=None, settings=None, extra_args={}, can_use_tool=allow_everything
    )


async def run_attack(options: ClaudeAgentOptions, name: str) -> list[ToolResultBlock]:
    async def prompt() -> AsyncIterator[dict]:  # a permission callback needs streaming input
        yield {"type": "user", "message": {"role": "user", "content": f"[script:{name}]"}}

    results = []
    async for message in query(prompt=prompt(), options=options):
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            results += [b for b in message.content if isinstance(b, ToolResultBlock)]
    return results


ATTACK_NAMES = list(attacks(Scene(*(Path("/x"),) * 5)))  # in the order every_attack makes them
DEFENCES = {
    "gate_and_wall": lambda options: options,
    "gate_only": gate_only,
    "wall_only": wall_only,
}


def assert_refused(attack: str, defence: str, result: ToolResultBlock) -> None:
    """The result refuses its call, or (the CLI's wall alone) at least shows nothing outside."""
    if defence == "wall_only":
        # The CLI alone sometimes answers an escaping Glob with "No files found"
        # rather than an error: refused in effect, as long as nothing outside shows.
        shown = OUTSIDE_NAMES & set(str(result.content).split("/"))
        assert result.is_error or not shown, (attack, result.content)
    else:
        assert result.is_error, (attack, result.content)


def assert_nothing_leaked(scene: Scene, model: ScriptedModelServer, before: dict) -> None:
    sent_to_model = json.dumps([r.body for r in model.requests])
    for secret in SECRETS:
        assert secret not in sent_to_model
    assert scene.snapshot_outside() == before
    assert not (scene.root.parent / "x").exists()
    assert (scene.outside / "secret.txt").read_text() == "OUTSIDE-SECRET\n"


@pytest.mark.e2e
@pytest.mark.parametrize("defence", DEFENCES)
async def test_every_attack_is_refused_by_each_defence_alone(
    scene: Scene, model: ScriptedModelServer, settings, defence: str
) -> None:
    """The whole matrix: one CLI per defence plays every attack, one tool call a step."""
    options = DEFENCES[defence](server_options(scene, model, settings))
    options = dataclasses.replace(options, max_turns=len(ATTACK_NAMES) + 2)
    before = scene.snapshot_outside()

    results = await run_attack(options, EVERY_ATTACK)

    assert len(results) == len(ATTACK_NAMES)
    for attack, result in zip(ATTACK_NAMES, results, strict=True):
        assert_refused(attack, defence, result)
    assert_nothing_leaked(scene, model, before)


@pytest.mark.e2e
@pytest.mark.parametrize("defence", DEFENCES)
@pytest.mark.parametrize("attack", REPRESENTATIVE)
async def test_an_attack_alone_in_a_fresh_cli_is_refused_and_leaks_nothing(
    scene: Scene, model: ScriptedModelServer, settings, attack: str, defence: str
) -> None:
    """A representative set again, each the first call of a new CLI: no earlier refusal helps."""
    options = DEFENCES[defence](server_options(scene, model, settings))
    before = scene.snapshot_outside()

    results = await run_attack(options, attack)

    assert results
    for result in results:
        assert_refused(attack, defence, result)
    assert_nothing_leaked(scene, model, before)


#: Attacks whose path is, read literally as the CLI reads it, a name inside the workspace:
#: the gate lets them through and the CLI finds no such file.
LITERAL_NAMES = {"owasp_percent_encoded", "owasp_unicode_escapes"}


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_the_gate_alone_refuses_every_attack_that_leaves_the_workspace(
    scene: Scene, attack: str
) -> None:
    from chat.agent.gate import tool_problem

    tool_name, tool_input = attacks(scene)[attack]
    problem = tool_problem(scene.workspace, tool_name, tool_input)

    if attack in LITERAL_NAMES:
        assert problem is None
        assert (scene.workspace / tool_input["file_path"]).parent == scene.workspace
    else:
        assert problem is not None


@pytest.mark.e2e
async def test_only_the_five_tools_are_offered(
    scene: Scene, model: ScriptedModelServer, settings
) -> None:
    await run_attack(server_options(scene, model, settings), "read_etc_passwd")

    offered = {tool_def["name"] for r in model.requests for tool_def in r.body.get("tools", [])}
    assert offered - {"DeferredToolPlaceholder"} == {"Read", "Edit", "Write", "Glob", "Grep"}


@pytest.mark.e2e
async def test_cli_environment_holds_only_the_allowed_variables(
    scene: Scene, settings, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD", "db-LEAKCANARY")
    monkeypatch.setenv("SECRET_KEY", "django-LEAKCANARY")
    long_script = {"long": Script("long", [Turn([tool("Glob", pattern="**/*")]), say("ok")])}
    with ScriptedModelServer(script="long", scripts=long_script, chunk_delay=0.0) as server:
        options = server_options(scene, server, settings)
        pidfile = agent_options.paths_for("attacker").pidfile
        environ: dict[str, str] = {}
        async for _ in query(prompt="[script:long]", options=options):
            if not environ and pidfile.exists():
                pid = int(pidfile.read_text())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                assert cmdline.endswith(b"/_bundled/claude")  # past the launcher's execs
                raw = Path(f"/proc/{pid}/environ").read_bytes()
                environ = dict(
                    item.split("=", 1) for item in raw.decode().split("\0") if "=" in item
                )

    assert environ, "the CLI's environment was not read"
    allowed = set(agent_options.CLI_ENV_KEEP) | {"PATH", "LANG"}
    assert set(environ) <= allowed
    assert "LEAKCANARY" not in json.dumps(environ)
    assert environ["ANTHROPIC_API_KEY"] == "sk-ant-test-security-dummy"
    # The memory setting gets past the launcher's filter.
    assert environ["CLAUDE_CODE_JIT_POLICY_AFTER_STARTUP"] == agent_options.CLI_JIT_POLICY
    assert os.environ["DATABASE_PASSWORD"] == "db-LEAKCANARY"


@pytest.mark.e2e
async def test_at_mentions_and_slash_commands_reach_the_model_verbatim(
    scene: Scene, settings
) -> None:
    echo = {"echo": Script("echo", [say("ok")])}
    with ScriptedModelServer(script="echo", scripts=echo) as server:
        options = server_options(scene, server, settings)
        async for _ in query(prompt="look at @/etc/passwd please", options=options):
            pass
        async for _ in query(prompt="/config", options=options):
            pass
        sent = json.dumps([r.body for r in server.requests])

    assert "@/etc/passwd" in sent and "root:x:0:0" not in sent
    assert "/config" in sent


@pytest.mark.e2e
async def test_uploaded_project_settings_with_hooks_are_ignored(
    scene: Scene, model: ScriptedModelServer, settings
) -> None:
    marker = scene.root / "hook-ran"
    hook = {"type": "command", "command": f"touch {marker}"}
    claude_dir = scene.workspace / ".claude"
    claude_dir.mkdir()
    (claude_dir / "settings.json").write_text(
        json.dumps(
            {
                "hooks": {
                    event: [{"matcher": "*", "hooks": [hook]}]
                    for event in ("PreToolUse", "SessionStart", "UserPromptSubmit")
                },
                "permissions": {"allow": ["Read(//**)", "Bash"]},
            }
        )
    )

    results = await run_attack(server_options(scene, model, settings), "read_etc_passwd")

    assert results and all(r.is_error for r in results)
    assert not marker.exists()


@pytest.mark.parametrize(
    "pattern", ["{x,../victim}/**", "src/{a, ../b}", "**/..", "/etc/*", "~/x", "a\\..\\b"]
)
def test_gate_refuses_patterns_that_can_leave_the_workspace(scene: Scene, pattern: str) -> None:
    from chat.agent.gate import tool_problem

    assert tool_problem(scene.workspace, "Glob", {"pattern": pattern}) is not None
    assert tool_problem(scene.workspace, "Grep", {"pattern": "x", "glob": pattern}) is not None


def test_gate_lets_ordinary_patterns_through(scene: Scene) -> None:
    from chat.agent.gate import tool_problem

    for pattern in ("**/*.tsx", "src/{App,Chart}.tsx", "data/*.csv", "*..bak"):
        assert tool_problem(scene.workspace, "Glob", {"pattern": pattern}) is None


@pytest.mark.e2e
async def test_without_either_wall_the_harness_sees_the_leak(
    scene: Scene, model: ScriptedModelServer, settings
) -> None:
    options = no_defence(server_options(scene, model, settings))

    await run_attack(options, "read_etc_passwd")
    await run_attack(options, "write_absolute_outside")

    assert "root:x:0:0" in json.dumps([r.body for r in model.requests])
    assert (scene.outside / "new.txt").read_text() == "PWNED"


@pytest.mark.e2e
async def test_a_failing_gate_blocks_the_call(
    scene: Scene, model: ScriptedModelServer, settings, monkeypatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the gate broke")

    monkeypatch.setattr("chat.agent.gate.tool_problem", broken)
    options = gate_only(server_options(scene, model, settings))

    results = await run_attack(options, "read_etc_passwd")

    assert results and all(r.is_error for r in results)
    assert "root:x:0:0" not in json.dumps([r.body for r in model.requests])


def test_gate_refusals_name_no_path_outside_the_workspace(scene: Scene) -> None:
    from chat.agent.gate import tool_problem

    home = scene.root / "var" / "claude" / "attacker" / ".claude.json"  # ~ as the CLI expands it
    calls = [
        ("Read", {"file_path": str(home)}),
        ("Read", {"file_path": f"{scene.sibling}/src/App.tsx"}),
        ("Read", {"file_path": f"{scene.workspace}/up/secret.txt"}),
        ("Write", {"file_path": f"{scene.outside}/new.txt", "content": "x"}),
        ("Glob", {"pattern": "*", "path": "/"}),
        ("Glob", {"pattern": f"{scene.outside}/*"}),
        ("Grep", {"pattern": "x", "glob": f"{scene.root}/**"}),
    ]
    for tool_name, tool_input in calls:
        problem = tool_problem(scene.workspace, tool_name, tool_input)
        assert problem is not None and "outside the workspace" in problem
        assert "/" not in problem.replace("/**", ""), problem


@pytest.mark.parametrize("path", ["~", "~/", "~/projects", "~root", "~/../attacker"])
@pytest.mark.parametrize("tool_name", ["Glob", "Grep", "Read"])
async def test_gate_refuses_a_home_path_and_logs_it(
    scene: Scene, caplog, tool_name: str, path: str
) -> None:
    from chat.agent.gate import tool_gate

    key = "file_path" if tool_name == "Read" else "path"
    [gate] = tool_gate(scene.workspace, "attacker").hooks
    with caplog.at_level("WARNING", logger="dashboard_ai.security"):
        answer = await gate(
            {"tool_name": tool_name, "tool_input": {"pattern": "*", key: path}},
            None,
            {"signal": None},
        )

    reason = answer["hookSpecificOutput"]["permissionDecisionReason"]
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "'~'" in reason and path not in reason.replace("'~'", "")
    [record] = [r for r in caplog.records if r.message == "tool call refused"]
    assert record.tool == tool_name and path in record.input


def test_gate_refuses_a_write_over_the_file_limit(scene: Scene, settings) -> None:
    from chat.agent.gate import tool_problem

    settings.WORKSPACE_MAX_FILE_BYTES = 100
    target = f"{scene.workspace}/src/big.txt"

    def write(content: str) -> str | None:
        return tool_problem(scene.workspace, "Write", {"file_path": target, "content": content})

    assert write("x" * 100) is None
    problem = write("x" * 101)
    assert problem is not None and "src/big.txt" in problem and "101 bytes" in problem
    assert "100 bytes" in problem and str(scene.workspace) not in problem
    assert write("\u00e9" * 51) is not None  # 102 bytes in UTF-8


def test_gate_refuses_an_edit_whose_result_is_over_the_file_limit(scene: Scene, settings) -> None:
    from chat.agent.gate import tool_problem

    settings.WORKSPACE_MAX_FILE_BYTES = 100
    (scene.workspace / "notes.md").write_text("a-" * 45)  # 90 bytes, 45 a's

    def edit(old: str, new: str, **extra: object) -> str | None:
        tool_input = {"file_path": "notes.md", "old_string": old, "new_string": new, **extra}
        return tool_problem(scene.workspace, "Edit", tool_input)

    assert edit("a-a-", "b" * 14) is None  # 100 bytes after
    problem = edit("a-a-", "b" * 15)
    assert problem is not None and "notes.md" in problem and "101 bytes" in problem
    assert edit("a", "bb", replace_all=True) is not None  # 135 bytes after
    assert edit("a", "bb") is None  # one occurrence: 91 bytes
    assert edit("a-" * 45, "") is None  # shrinking
    assert edit("not there", "x" * 200) is None  # the CLI's own error: nothing to replace
    assert tool_problem(
        scene.workspace,
        "Edit",
        {"file_path": "new.md", "old_string": "", "new_string": "x" * 101},
    )  # an empty old_string creates the file
