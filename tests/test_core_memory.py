"""What memory is left for one more CLI: the machine's MemAvailable, or a cgroup's limit."""

from __future__ import annotations

import pytest

from chat.agent.memory import available_mb

MIB = 1024 * 1024
MEMINFO = "MemTotal:       24683664 kB\nMemFree:        1000000 kB\nMemAvailable:    2097152 kB\n"


def reader(files: dict[str, str]):
    """A fake of the files read: any other path does not exist."""
    return files.get


def test_without_a_cgroup_limit_it_is_the_machines_mem_available() -> None:
    read = reader({"/proc/meminfo": MEMINFO, "/proc/self/cgroup": "0::/\n"})

    assert available_mb(read) == 2048


def test_a_cgroup_limit_tighter_than_the_machine_wins_and_its_inactive_cache_counts_free() -> None:
    group = "/sys/fs/cgroup/system.slice/dashboard.service"
    read = reader(
        {
            "/proc/meminfo": MEMINFO,
            "/proc/self/cgroup": "0::/system.slice/dashboard.service\n",
            f"{group}/memory.max": f"{1024 * MIB}\n",
            f"{group}/memory.current": f"{900 * MIB}\n",
            f"{group}/memory.stat": f"anon {800 * MIB}\ninactive_file {50 * MIB}\n",
        }
    )

    assert available_mb(read) == 1024 - 900 + 50


def test_an_ancestors_limit_counts_when_the_servers_own_cgroup_has_none() -> None:
    read = reader(
        {
            "/proc/meminfo": MEMINFO,
            "/proc/self/cgroup": "0::/app/server\n",
            "/sys/fs/cgroup/app/server/memory.max": "max\n",
            "/sys/fs/cgroup/app/server/memory.current": f"{300 * MIB}\n",
            "/sys/fs/cgroup/app/memory.max": f"{512 * MIB}\n",
            "/sys/fs/cgroup/app/memory.current": f"{400 * MIB}\n",
        }
    )

    assert available_mb(read) == 112


def test_a_cgroup_limit_looser_than_the_machine_changes_nothing() -> None:
    read = reader(
        {
            "/proc/meminfo": MEMINFO,
            "/proc/self/cgroup": "0::/\n",
            "/sys/fs/cgroup/memory.max": f"{64 * 1024 * MIB}\n",
            "/sys/fs/cgroup/memory.current": f"{100 * MIB}\n",
        }
    )

    assert available_mb(read) == 2048


@pytest.mark.parametrize(
    "files",
    [{}, {"/proc/meminfo": "MemTotal: 1 kB\n"}, {"/proc/self/cgroup": "4:memory:/x\n"}],
)
def test_nothing_readable_says_nothing(files: dict[str, str]) -> None:
    assert available_mb(reader(files)) is None


def test_this_machine_reports_some_memory() -> None:
    available = available_mb()

    assert available is not None and available > 0
