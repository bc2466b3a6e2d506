"""The test harness of a fleet: servers on disks of their own at one path, one database."""

from __future__ import annotations

from tests.support.live import ChatClient


async def test_servers_share_the_paths_but_not_the_disks(cluster) -> None:
    a, b = cluster(), cluster()
    a.start()
    b.start()
    chat = await ChatClient.connect(a.ws_url)
    ready = await chat.init("s1", files={"src/App.tsx": "on A\n"})
    await chat.close()

    assert ready["files"] == ["src/App.tsx"]
    assert a.env["WORKSPACE_ROOT"] == b.env["WORKSPACE_ROOT"]
    assert (a.own_disk / "workspaces" / "s1" / "src" / "App.tsx").read_text() == "on A\n"
    assert not (b.own_disk / "workspaces" / "s1").exists()
    assert a.disk is not None and list(a.disk.iterdir()) == []  # nothing on the host's path
