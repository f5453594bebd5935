"""The Ray cluster a distributed sort runs on: started for the run or joined, reached within a deadline, and
Ray's own chatter kept out of the terminal.

- Without an address Ray starts a private local cluster for the run (``address="local"``, never one found
  on the machine through ``RAY_ADDRESS`` or ``ray start``'s note) and shuts it down at the end; with
  ``HOST:PORT`` the run joins that cluster and leaves it running. A sort never lands on a cluster the
  user did not name.
- Ray retries an unreachable cluster for ever, so an address is probed with a plain TCP connect first and
  ``ray.init`` runs against a deadline: a wrong address is one line (exit 2) within 30 s, not a hang.
- Token authentication is asked for (``RAY_AUTH_MODE=token`` unless the user set it): clusters that Ray
  2.60 starts want the token, and a client that does not send it is refused only after 20 s of retries.
- A local cluster's workers run at the driver's priority (Ray's default puts them 15 nicer).
- Ray writes from C++ straight to file descriptor 2, and from Python through handlers bound to
  ``sys.stderr`` when it is imported: while Ray runs, fd 2 points at a log file and edgemask writes its
  bar and messages to a duplicate of the terminal. The file ends up in the session's log folder beside
  Ray's own logs; ``--verbose`` leaves fd 2 alone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

PROBE_TIMEOUT = 5.0
"""Seconds a TCP connect to the cluster's address may take."""
JOIN_TIMEOUT = 20.0
"""Seconds ``ray.init`` may take after the probe; the two stay under the 30 s an answer may take."""
WORKER_NICENESS = "RAY_worker_niceness"
"""Ray starts its workers 15 nicer than the raylet, so that they never starve the driver; in a sort the
workers are the work, and at +15 any other load on the machine starves them (measured: 2.5x slower per
image under a training run). A local cluster's workers run at the driver's priority instead, as the
jobs of ``ray job submit`` do; a joined cluster's workers are its operator's to set."""
DRIVER_LOG = "edgemask-run.log"
STDERR_FD = 2
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class ClusterError(Exception):
    """The cluster cannot be started or joined: one line, exit code 2."""


@dataclass(frozen=True)
class Cluster:
    """The cluster a run got: what to call it in the summary, its CPUs, where its logs go, and how long
    starting or joining it took."""

    description: str
    cpus: int
    logs_dir: Path | None
    startup_s: float


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Why ``host:port`` takes no TCP connection (refused, unknown host, no route, silent), or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as e:
        return e.strerror or str(e)


def ray_problem(error: BaseException) -> str:
    """One line for what Ray raised (starting, joining, or running a job). A worker's failure comes with
    its remote traceback, colored: the line that counts is the traceback's last, the error itself."""
    text = ANSI_ESCAPE.sub("", str(error))
    if "InvalidAuthToken" in text or "AuthenticationError" in type(error).__name__:
        return (
            "the cluster refused this machine's token (Ray reads it from RAY_AUTH_TOKEN, "
            "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if any(line.startswith('File "') for line in lines):
        return lines[-1]
    return lines[0]


def import_ray() -> ModuleType:
    """Ray, imported with token authentication asked for and usage reports off: Ray reads both once, on
    import, and a local cluster's processes inherit them (set later, they would want a token this process
    never sends)."""
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    return ray


def ray_failures() -> tuple[type[Exception], ...]:
    """What Ray raises when a job fails mid-run (a node or the actors lost, workers that cannot load the
    models, no progress), as against an error of edgemask's own."""
    import_ray()
    from ray.data.exceptions import ExecutionTimeoutError, SystemException
    from ray.exceptions import RayError

    return (RayError, SystemException, ExecutionTimeoutError)


def init_with_deadline(deadline: float, **init_args: Any) -> Any:
    """``ray.init(**init_args)``, given up after ``deadline`` seconds (Ray would wait for ever); the
    abandoned attempt stays in a daemon thread that dies with the process."""
    import ray

    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcome["context"] = ray.init(**init_args)
        except Exception as e:  # reported as one line by the caller
            outcome["error"] = e

    thread = threading.Thread(target=attempt, name="ray-init", daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        raise TimeoutError(f"no answer from the cluster within {deadline:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["context"]


@contextmanager
def ray_cluster(address: tuple[str, int] | None, workers: int | None, verbose: bool) -> Iterator[Cluster]:
    """A local cluster of ``workers`` CPUs for the run (shut down at the end), or the cluster at
    ``address`` (left running)."""
    ray = import_ray()
    quiet = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
    started = time.perf_counter()
    if address is None:
        os.environ.setdefault(WORKER_NICENESS, "0")  # read by the raylet this ray.init starts
        try:
            context = ray.init(
                address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False, **quiet
            )
        except Exception as e:  # whatever Ray raised, the user gets one line
            raise ClusterError(f"cannot start a local Ray cluster ({ray_problem(e)})") from e
        where = "a local Ray cluster"
    else:
        host, port = address
        if problem := probe(host, port):
            raise ClusterError(f"--ray-address {host}:{port}: cannot reach a Ray cluster there ({problem})")
        try:
            context = init_with_deadline(JOIN_TIMEOUT, address=f"{host}:{port}", **quiet)
        except Exception as e:  # whatever Ray raised, the user gets one line
            raise ClusterError(
                f"--ray-address {host}:{port}: cannot join the Ray cluster ({ray_problem(e)})"
            ) from e
        where = f"the Ray cluster at {host}:{port}"
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        session = context.address_info.get("session_dir")
        logs_dir = Path(session) / "logs" if session else None
        yield Cluster(where, cpus, logs_dir, time.perf_counter() - started)
    finally:
        ray.shutdown()


@contextmanager
def ray_output_aside(verbose: bool) -> Iterator[tuple[TextIO, Path | None]]:
    """Point fd 2 at a log file while Ray runs; yields the terminal to write to and the log file (None
    with ``verbose``, which leaves everything on the terminal)."""
    if verbose:
        yield sys.stderr, None
        return
    sys.stderr.flush()
    log = Path(tempfile.mkstemp(prefix="edgemask-ray-", suffix=".log")[1])
    terminal_fd = os.dup(STDERR_FD)
    terminal = os.fdopen(terminal_fd, "w", buffering=1, encoding=sys.stderr.encoding, errors="replace")
    with open(log, "ab") as capture:
        os.dup2(capture.fileno(), STDERR_FD)
    try:
        yield terminal, log
    finally:
        sys.stderr.flush()
        os.dup2(terminal_fd, STDERR_FD)
        terminal.close()


def file_log(log: Path | None, logs_dir: Path | None) -> Path | None:
    """Move the captured Ray output into the session's log folder (where Ray's own logs are); returns where
    it is now, or None when nothing was captured."""
    if log is None or not log.exists():
        return None
    if log.stat().st_size == 0:
        log.unlink()
        return None
    if logs_dir is None or not logs_dir.is_dir():
        return log
    target = logs_dir / DRIVER_LOG
    shutil.move(log, target)
    return target
