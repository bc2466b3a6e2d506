"""How much memory is left for one more Claude CLI, for the agent pool.

A live CLI holds about 106 MiB of its own (PSS; 235 MiB RSS, the rest the binary's
shared pages), so before it starts one the pool looks at what is left
(``AGENT_MIN_AVAILABLE_MB``). What is left is the smaller of the machine's
``MemAvailable`` and, when the server runs in a memory-limited cgroup (v2: a
container, a systemd unit with ``MemoryMax=``), the tightest limit among its cgroup
and their ancestors minus what they use. Everything is read through a
:data:`Reader`, so tests give a fake one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

#: The text of a file, or None when it does not exist or cannot be read.
Reader = Callable[[str], str | None]

CGROUP_ROOT = PurePosixPath("/sys/fs/cgroup")
MIB = 1024 * 1024


def read_text(path: str) -> str | None:
    """The file's text; None when it cannot be read (no such cgroup file, no procfs)."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


def available_mb(read: Reader = read_text) -> float | None:
    """MiB a new process may still take; None when nothing says (no procfs at all)."""
    found = [mb for mb in (_machine_mb(read), _cgroup_mb(read)) if mb is not None]
    return min(found, default=None)


def _machine_mb(read: Reader) -> float | None:
    for line in (read("/proc/meminfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable":
            return int(value.split()[0]) / 1024  # kB
    return None


def _cgroup_mb(read: Reader) -> float | None:
    """The least left under any limit of this process's cgroup v2 and its ancestors.

    Usage counts the page cache; its inactive part is reclaimed before the cgroup's
    OOM killer acts, so it counts as free (as a container's "working set" does).
    """
    own = next(
        (
            line[3:]
            for line in (read("/proc/self/cgroup") or "").splitlines()
            if line.startswith("0::")
        ),
        None,
    )
    if own is None:
        return None
    group = CGROUP_ROOT / own.strip().lstrip("/")
    left: list[float] = []
    for folder in (group, *group.parents):
        if not folder.is_relative_to(CGROUP_ROOT):
            break
        limit, current = read(f"{folder}/memory.max"), read(f"{folder}/memory.current")
        if limit is None or current is None or limit.strip() == "max":
            continue
        free = int(limit) - int(current) + _inactive_file(read(f"{folder}/memory.stat"))
        left.append(free / MIB)
    return min(left, default=None)


def _inactive_file(stat: str | None) -> int:
    for line in (stat or "").splitlines():
        name, _, value = line.partition(" ")
        if name == "inactive_file":
            return int(value)
    return 0
