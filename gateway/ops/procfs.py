"""Resident memory and CPU time of processes, from /proc (Linux only)."""

from __future__ import annotations

import os

__all__ = ["descendants", "find_child", "machine_cpu_s", "tree_cpu_s", "tree_rss_mib"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: fields[0] is state, [1] ppid, [11:13] times."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """The process and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def tree_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process and its live descendants."""
    total_ticks = 0
    for current in descendants(pid):
        try:
            fields = _stat_fields(current)
            total_ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total_ticks / CLOCK_TICKS


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its live descendants, in MiB."""
    total_kib = 0
    for current in descendants(pid):
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its cores."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def find_child(parent: int, *needles: str) -> int:
    """The child of `parent` whose command line contains every needle; 0 if none does.

    running_gateway (gateway/ops/bench/scenarios.py) starts `facegate gateway` as a child of this
    process but does not hand out its pid: its port in the command line identifies it.
    """
    for pid in descendants(parent):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if pid != parent and all(needle in args for needle in needles):
            return pid
    return 0
