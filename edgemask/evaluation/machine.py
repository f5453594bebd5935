"""The machine a benchmark ran on, so every number comes with where it was measured."""

from __future__ import annotations

import os
import platform
import subprocess
import time

from edgemask.core.machine_id import cpu_model, package_versions, simd_summary


def proc_status_mb(field: str, pid: int | str = "self") -> float:
    """A memory field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ``RssAnon``, ...) in MB."""
    path = f"/proc/{pid}/status"
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in {path}")


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def code_version() -> str:
    """The checkout's commit, marked ``+changes`` when tracked files differ from it."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=False)
        except OSError:  # no git on the machine (a device, a container)
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    return commit + (" +changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def describe() -> dict:
    """JSON-ready: CPU, cores, OS, Python, package versions, load average, date."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu_model(),
        "simd": simd_summary(),
        "cores": usable_cores(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "code": code_version(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def header_markdown(info: dict) -> str:
    """A bullet list for the top of a results table."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    load = ", ".join(f"{x:.2f}" for x in info["load_average_1_5_15"])
    return "\n".join(
        [
            f"- CPU: {info['cpu']} ({info['cores']} cores, {info['machine']})",
            f"- SIMD: {info.get('simd', 'unknown')}",
            f"- OS: {info['os']}; Python {info['python']}",
            f"- Packages: {packages}",
            f"- edgemask commit: {info['code']}",
            f"- Load average at start (1/5/15 min): {load}; {info['date']}",
        ]
    )
