"""What the benches read from /proc about a server and its CLIs: memory, CPU time, children.

Linux only. PSS (each shared page divided among the processes that map it) comes
from ``/proc/<pid>/smaps_rollup`` when the kernel has it and we may read it (the
same user, or root); it is None otherwise. A process that exits while it is read
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
    """Resident memory of one process in bytes: now, its lifetime peak, and PSS."""

    rss: int
    peak_rss: int
    pss: int | None


def _status_kib(pid: int, field: str) -> int | None:
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def _pss(pid: int) -> int | None:
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1]) * KIB
    return None


def memory(pid: int) -> Memory | None:
    """RSS (``VmRSS``), peak RSS (``VmHWM``) and PSS of ``pid``; None once it is gone."""
    rss, peak = _status_kib(pid, "VmRSS"), _status_kib(pid, "VmHWM")
    if rss is None or peak is None:
        return None
    return Memory(rss=rss * KIB, peak_rss=peak * KIB, pss=_pss(pid))


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
