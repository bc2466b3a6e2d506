"""Session expiry in ``manage.py cleanup_workspaces``: an unused session goes for good,
everything else stays byte for byte.

In-process: sessions are made through the server's own services (the store, the
workspace services, the undo states, the transcript store), opened with a runtime on a
fake SDK client, and the command runs as cron would run it (``call_command``).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async
from claude_agent_sdk import project_key_for_directory
from django.core.management import CommandError, call_command
from django.utils import timezone

from chat import expiry as chat_expiry
from chat.agent import options
from chat.agent.transcript_store import TranscriptStore
from chat.cluster.keys import lease_key, lease_value
from chat.models import ChatSession, Transcript, TranscriptEntry, TurnOutcome, TurnRecord
from chat.protocol import InitFrame
from chat.runtime import Runtime, reset_runtime
from tests.support.fake_sdk import FakeSDK
from tests.support.redis import RedisServer
from workspaces import leases, services, stamps, undo_states
from workspaces.models import Blob, Manifest, ManifestEntry, StoredWorkspace, UndoState
from workspaces.snapshots import FileState

# The services record on the async ORM's own thread (outside a test transaction).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(30),
]

SHARED = "shared between the sessions\n"


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path) -> None:
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.DATA_DIR = tmp_path / "data"
    settings.WORKSPACE_CLEANUP_HOURS = 24.0
    settings.SESSION_EXPIRY_DAYS = 30.0


def sha(text: str) -> str:
    return FileState.of(text.encode()).sha256


def cleanup(*args: str) -> str:
    out = StringIO()
    call_command("cleanup_workspaces", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


async def run_cleanup(*args: str) -> str:
    return await sync_to_async(cleanup)(*args)


def project_key(session_id: str) -> str:
    return project_key_for_directory(services.path_for(session_id))


async def make_session(session_id: str, *, days_ago: float) -> None:
    """A session with every kind of thing the server stores, last active ``days_ago``.

    Rows (the session, a turn, an outcome), two transcripts (the conversation and one an
    undo forked from), files with an undo state (three blobs of its own, one shared with
    every other session), this server's copy with its stamp, the CLI's config directory,
    and the lease a server that died left behind.
    """
    record = await ChatSession.objects.acreate(session_id=session_id, last_seq=4)
    await TurnRecord.objects.acreate(session=record, state_id=f"{session_id}-t1")
    await TurnOutcome.objects.acreate(session=record, client_message_id="m1", frame={"seq": 4})
    first = {"data/sales.csv": f"month,{session_id}\n", "shared.txt": SHARED}
    await services.sync_in(session_id=session_id, files=first)
    state = await services.snapshot(session_id=session_id)
    await undo_states.save_state(session_id=session_id, state_id=f"{session_id}-t1", files=state)
    later = {"data/sales.csv": f"month,{session_id},later\n", "src/App.tsx": f"// {session_id}\n"}
    await services.sync_in(session_id=session_id, files=later)
    transcripts = TranscriptStore()
    conversations = [str(uuid.uuid4()), str(uuid.uuid4())]
    for number, conversation in enumerate(conversations):
        key = {"project_key": project_key(session_id), "session_id": conversation}
        line = {"type": "user", "uuid": str(uuid.uuid4()), "message": {"content": f"hi {number}"}}
        await transcripts.append(key, [line])
    await ChatSession.objects.filter(session_id=session_id).aupdate(
        sdk_session_id=conversations[-1],
        message_count=1,
        last_active_at=timezone.now() - timedelta(days=days_ago),
    )
    config = options.paths_for(session_id).config_dir
    config.mkdir(parents=True)
    (config / "settings.json").write_text("{}")
    lease = leases.lease_path(session_id)
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text("999999999")  # no such process: a lease left by a dead server


def files_under(directory: Any) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def _everything_of(session_id: str) -> dict[str, Any]:
    """Every row, transcript line, blob and file stored for the session, by kind."""
    chat = ChatSession.objects.filter(session_id=session_id)
    workspace = StoredWorkspace.objects.filter(session_id=session_id)
    manifests = Manifest.objects.filter(workspace__in=workspace)
    entries = ManifestEntry.objects.filter(manifest__in=manifests)
    transcripts = Transcript.objects.filter(project_key=project_key(session_id))
    blobs = Blob.objects.filter(pk__in=entries.values("blob_id"))
    root = services.workspace_root()
    return {
        "sessions": list(chat.values()),
        "turns": list(TurnRecord.objects.filter(session__in=chat).values()),
        "outcomes": list(TurnOutcome.objects.filter(session__in=chat).values()),
        "transcripts": list(transcripts.values()),
        "transcript entries": list(
            TranscriptEntry.objects.filter(transcript__in=transcripts).values()
        ),
        "workspaces": list(workspace.values()),
        "manifests": list(manifests.values()),
        "manifest entries": list(entries.values()),
        "undo states": list(UndoState.objects.filter(workspace__in=workspace).values()),
        "blobs": {blob.sha256: bytes(blob.content) for blob in blobs},
        "copy": files_under(root / session_id),
        "stamp": stamps.read(session_id),
        "lease": files_under(root / services.LEASES_DIR).get(session_id),
        "config": files_under(options.paths_for(session_id).config_dir),
    }


everything_of = sync_to_async(_everything_of)


def _all_blobs() -> dict[str, bytes]:
    return {blob.sha256: bytes(blob.content) for blob in Blob.objects.all()}


all_blobs = sync_to_async(_all_blobs)


def nothing(found: dict[str, Any]) -> dict[str, Any]:
    """The kinds of ``found`` that still hold something."""
    return {kind: value for kind, value in found.items() if value}


async def test_an_unused_session_is_gone_and_a_recent_one_untouched() -> None:
    await make_session("old", days_ago=40)
    await make_session("recent", days_ago=1)
    old = await everything_of("old")
    assert all(old.values())  # every kind is there to be removed
    recent = await everything_of("recent")
    blobs = await all_blobs()

    output = await run_cleanup()

    assert nothing(await everything_of("old")) == {}
    assert await everything_of("recent") == recent
    # The old session's own blobs went in the same run; the shared one stays.
    only_old = set(old["blobs"]) - set(recent["blobs"])
    assert sha(SHARED) in recent["blobs"] and len(only_old) == 3
    assert await all_blobs() == {k: v for k, v in blobs.items() if k not in only_old}
    freed = sum(len(blobs[k]) for k in only_old)
    last = old["sessions"][0]["last_active_at"].isoformat()
    assert output == (
        f"expired old (last active {last})\n"
        "expired 1 session(s) unused for 30 days\n"
        "freed 0 bytes\n"
        f"removed 3 unreferenced blob(s) from the database ({freed} bytes)\n"
    )


async def test_a_dry_run_removes_nothing_and_reports_what_the_run_then_does() -> None:
    await make_session("old", days_ago=40)
    await make_session("recent", days_ago=1)
    before = [await everything_of("old"), await everything_of("recent"), await all_blobs()]

    dry = await run_cleanup("--dry-run")

    assert [await everything_of("old"), await everything_of("recent"), await all_blobs()] == (
        before
    )
    assert "would expire old (last active " in dry
    real = await run_cleanup()
    for would, did in [
        ("would expire", "expired"),
        ("would free", "freed"),
        ("would remove", "removed"),
    ]:
        dry = dry.replace(would, did)
    assert real == dry
    assert nothing(await everything_of("old")) == {}


async def test_a_leased_session_is_kept() -> None:
    await make_session("busy", days_ago=40)
    await leases.acquire_lease(session_id="busy")  # this process: a live server
    before = await everything_of("busy")

    output = await run_cleanup()

    assert await everything_of("busy") == before
    assert output.startswith("expired 0 session(s) unused for 30 days\n")


async def test_a_session_another_server_of_the_cluster_holds_is_kept(
    settings, redis_server: RedisServer
) -> None:
    """Its lease is in Redis, not on this disk: the cleanup asks Redis."""
    await make_session("elsewhere", days_ago=40)
    await make_session("nobody", days_ago=40)
    settings.REDIS_URL = redis_server.url
    with redis.Redis.from_url(redis_server.url) as client:
        client.set(lease_key("elsewhere"), lease_value("server-b", 7), px=60_000)
    before = await everything_of("elsewhere")

    output = await run_cleanup()

    assert await everything_of("elsewhere") == before
    assert nothing(await everything_of("nobody")) == {}
    assert "expired 1 session(s)" in output


async def test_a_session_open_in_this_process_is_kept_even_before_its_lease() -> None:
    await make_session("live", days_ago=40)
    runtime = reset_runtime(Runtime.create(make_client=FakeSDK()))
    frames: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        frames.append(frame)

    init = InitFrame.model_validate({"type": "init", "sessionId": "live"})
    await runtime.router.open("live", send, init, client="10.0.0.1")
    try:
        # Opening renewed it; make it look unused again, and leave it no lease (as in the
        # moment before its runner takes one): only the live runner can keep it.
        await ChatSession.objects.filter(session_id="live").aupdate(
            last_active_at=timezone.now() - timedelta(days=40)
        )
        while not leases.is_leased(session_id="live"):
            await asyncio.sleep(0.01)
        leases.lease_path("live").unlink()
        before = await everything_of("live")

        output = await run_cleanup()

        assert await everything_of("live") == before
        assert output.startswith("expired 0 session(s) unused for 30 days\n")
    finally:
        await runtime.sessions.shutdown(1)


async def test_the_setting_decides_when_a_session_expires(settings) -> None:
    await make_session("s", days_ago=10)
    settings.SESSION_EXPIRY_DAYS = 11.0
    assert (await run_cleanup()).startswith("expired 0 session(s) unused for 11 days\n")
    assert await ChatSession.objects.filter(session_id="s").aexists()

    settings.SESSION_EXPIRY_DAYS = 9.5
    assert "expired 1 session(s) unused for 9.5 days\n" in await run_cleanup()
    assert nothing(await everything_of("s")) == {}


async def test_the_option_overrides_the_setting(settings) -> None:
    await make_session("s", days_ago=10)
    settings.SESSION_EXPIRY_DAYS = 5.0
    assert (await run_cleanup("--expire-after", "11")).startswith("expired 0 session(s)")
    assert await ChatSession.objects.filter(session_id="s").aexists()

    settings.SESSION_EXPIRY_DAYS = 30.0
    assert "expired 1 session(s)" in await run_cleanup("--expire-after", "9")
    assert nothing(await everything_of("s")) == {}


@pytest.mark.parametrize("where", ["setting", "option"])
async def test_zero_days_is_never(settings, where) -> None:
    await make_session("ancient", days_ago=3650)
    before = await everything_of("ancient")
    settings.SESSION_EXPIRY_DAYS = 0.0 if where == "setting" else 30.0

    output = await run_cleanup(*(["--expire-after", "0"] if where == "option" else []))

    assert output.startswith("sessions never expire (SESSION_EXPIRY_DAYS or --expire-after 0)\n")
    assert await everything_of("ancient") == before


@pytest.mark.parametrize("days", ["-1", "nan"])
def test_bad_days_is_a_command_error(days) -> None:
    with pytest.raises(CommandError, match="--expire-after must be zero or more days"):
        cleanup("--expire-after", days)


async def test_an_expired_session_opens_again_empty(tmp_path) -> None:
    await make_session("gone", days_ago=40)
    # What another server's disk may still hold of it: its copy and that copy's stamp.
    other_disk = tmp_path / "other-disk"
    shutil.copytree(services.path_for("gone"), other_disk / "copy")
    shutil.copy(stamps.stamp_path("gone"), other_disk / "stamp")
    await run_cleanup()
    shutil.copytree(other_disk / "copy", services.path_for("gone"))
    stamps.stamp_path("gone").parent.mkdir(exist_ok=True)
    shutil.copy(other_disk / "stamp", stamps.stamp_path("gone"))
    runtime = reset_runtime(Runtime.create(make_client=FakeSDK()))
    frames: list[dict[str, Any]] = []

    async def send(frame: dict[str, Any]) -> None:
        frames.append(frame)

    init = InitFrame.model_validate({"type": "init", "sessionId": "gone"})
    try:
        await runtime.router.open("gone", send, init, client="10.0.0.1")
    finally:
        await runtime.sessions.shutdown(1)

    ready = frames[0]
    assert ready["type"] == "ready"
    assert (ready["files"], ready["resumed"], ready["messageCount"]) == ([], False, 0)
    assert await undo_states.state_ids(session_id="gone") == []
    assert not await TurnRecord.objects.filter(session__session_id="gone").aexists()
    assert not await Transcript.objects.filter(project_key=project_key("gone")).aexists()


async def test_a_session_that_cannot_be_expired_is_reported_and_the_others_expire(
    monkeypatch,
) -> None:
    for session_id in "abc":
        await make_session(session_id, days_ago=40)
    real_delete = chat_expiry.delete_session

    async def delete_except_b(*, sessions: Any, session_id: str) -> bool:
        if session_id == "b":
            raise PermissionError(1, "Operation not permitted", "f")
        return await real_delete(sessions=sessions, session_id=session_id)

    monkeypatch.setattr(chat_expiry, "delete_session", delete_except_b)
    errors = StringIO()

    with pytest.raises(CommandError, match="^could not expire 1 session: b$"):
        await sync_to_async(call_command)("cleanup_workspaces", stdout=StringIO(), stderr=errors)

    assert [await ChatSession.objects.filter(session_id=s).aexists() for s in "abc"] == [
        False,
        True,
        False,
    ]
    assert errors.getvalue() == (
        "could not expire b: PermissionError: [Errno 1] Operation not permitted: 'f'\n"
    )
