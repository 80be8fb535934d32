"""The machine a run measured on: CPU, memory, OS, library versions, load, git commit."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path


def physical_cores() -> int:
    """Distinct (physical id, core id) pairs of /proc/cpuinfo; 0 when it does not say."""
    return len(
        {
            (block.get("physical id"), block.get("core id"))
            for block in (
                dict(re.findall(r"^([\w ]+?)\s*:\s*(.*)$", chunk, re.M))
                for chunk in _read("/proc/cpuinfo").split("\n\n")
            )
            if "core id" in block
        }
    )


def describe_machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and library versions, current load."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu_models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    cores = physical_cores()
    mem_kb = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.M)
    return {
        "CPU": cpu_models[0] if cpu_models else platform.processor() or "unknown",
        "cores": f"{os.cpu_count()} logical, {cores or 'unknown'} physical",
        "memory": f"{int(mem_kb.group(1)) / 1024**2:.1f} GiB" if mem_kb else "unknown",
        "OS": f"{os_name.group(1) if os_name else platform.system()}, kernel {platform.release()}",
        "Python": platform.python_version(),
        "onnxruntime": f"{_version('onnxruntime')} (providers: {_ort_providers()})",
        "insightface": _version("insightface"),
        "nvidia-pytriton": _version("nvidia-pytriton"),
        "tritonclient": _version("tritonclient"),
        "load average at start (1/5/15 min)": load_average(),
    }


def _ort_providers() -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "none"
    return ", ".join(str(p) for p in ort.get_available_providers())


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    """Short HEAD commit, marked when tracked files have uncommitted changes."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()
