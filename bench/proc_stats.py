"""What the benches read from /proc about a server and its CLIs: memory, CPU time, children.

Linux only. PSS (each shared page divided among the processes that map it) and the
private part (USS: pages no other process maps) come from ``/proc/<pid>/smaps_rollup``
when the kernel has it and we may read it (the same user, or root); they are None
otherwise. A process that exits while it is read
counts as gone: every reader returns None or leaves it out rather than raising.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
KIB = 1024


@dataclass(frozen=True)
class Memory:
    """Resident memory of one process in bytes: now, its lifetime peak, PSS and private.

    The private part is what the process alone holds: unlike PSS, it does not move when
    other processes start or stop mapping the same libraries.
    """

    rss: int
    peak_rss: int
    pss: int | None
    private: int | None = None


def _status_kib(pid: int, field: str) -> int | None:
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def _rollup(pid: int) -> dict[str, int]:
    """The bytes of each ``smaps_rollup`` field (``Pss``, ``Private_Dirty``, ...); {} if unread."""
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            found[name] = int(value.split()[0]) * KIB
    return found


def memory(pid: int) -> Memory | None:
    """RSS (``VmRSS``), peak RSS (``VmHWM``), PSS and the private part of ``pid``; None
    once it is gone."""
    rss, peak = _status_kib(pid, "VmRSS"), _status_kib(pid, "VmHWM")
    if rss is None or peak is None:
        return None
    rollup = _rollup(pid)
    private = None
    if "Private_Clean" in rollup and "Private_Dirty" in rollup:
        private = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return Memory(rss=rss * KIB, peak_rss=peak * KIB, pss=rollup.get("Pss"), private=private)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time ``pid`` has used so far (utime + stime), in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state(0) ppid(1) ... utime(11) stime(12), fields 14 and 15 of stat(5).
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def _parents() -> dict[int, int]:
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                found[int(entry.name)] = int(fields[1])
    return found


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    parents = _parents()
    below: list[int] = []
    level = [pid]
    while level:
        level = [child for child, parent in parents.items() if parent in level]
        below.extend(level)
    return below


def is_cli(pid: int) -> bool:
    """Whether ``pid`` is a Claude CLI (the SDK's bundled ``claude`` binary)."""
    try:
        return b"claude" in (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False


def cli_processes(server_pid: int) -> list[int]:
    """The Claude CLIs a server process has started and that are still alive."""
    return [pid for pid in descendants(server_pid) if is_cli(pid)]


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie that nobody has reaped counts as gone)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"
