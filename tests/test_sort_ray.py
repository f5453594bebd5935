"""--sort-into --engine ray: the same crops and rows as the local engine on a Ray cluster started here (and
on a local cluster of the run's own), a killed worker losing and duplicating nothing, an interrupted
driver resumed, a busy folder refused, an unreachable cluster and unusable options reported in one line.
On a stand-in cluster (one worker in this process): a cluster lost mid-run, Ctrl-C, too many workers, and
a manifest that cannot be written."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_no_tensorflow import run_blocked
from test_sources import write_bad_and_odd_images

from edgemask.app.cli import main
from edgemask.app.sorting import ray_engine
from edgemask.app.sorting.cluster import Cluster, import_ray, probe, ray_problem
from edgemask.app.sorting.manifest import MANIFEST, SortError, SortFolder
from edgemask.app.sorting.ray_engine import SortOutcome, SortWorker

if importlib.util.find_spec("ray") is None:  # looked up, not imported: the engine imports it once it set
    if os.environ.get("CI") == "true":  # Ray's authentication mode, which Ray reads on import
        raise ImportError("ray is not installed: CI installs edgemask[all], which brings it")
    pytest.skip("ray is not installed: pip install 'edgemask[distributed]'", allow_module_level=True)

SCENES = 24
IDENTITY = ("source", "sha256", "face", "x1", "y1", "x2", "y2", "label", "score", "face_score")
"""A manifest row without its crop file's name (a crop written again after a crash gets a numbered name)."""


def free_port() -> int:
    """A port nothing listens on now, from the system's ephemeral range (outside Ray's worker ports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 2-CPU Ray cluster of its own for this module (``ray start --head --block``), stopped at the end.
    It wants a token, as Ray 2.60's clusters do; the token is this module's own (``RAY_AUTH_TOKEN`` in
    the environment while it runs), so a fresh machine without ``~/.ray/auth_token`` runs it too."""
    port = free_port()
    log = tmp_path_factory.mktemp("ray-head") / "head.log"
    token = os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32)
    env = {
        **os.environ,
        "RAY_AUTH_TOKEN": token,
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    ray = str(Path(sys.executable).with_name("ray"))
    command = [
        ray,
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["nice", "-n", "19", *command], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 90
        while probe("127.0.0.1", port, timeout=1.0) is not None:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAY_AUTH_TOKEN", token)
            yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        note = Path(tempfile.gettempdir(), "ray", "ray_current_cluster")  # ray start's note of the head
        if note.is_file() and note.read_text().strip().endswith(f":{port}"):
            note.unlink()  # so a later ray.init() on this machine does not look for this cluster


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, scenes_dir: Path) -> Path:
    """Real scenes, a second copy of one of them, and every awkward file the local engine survives."""
    root = tmp_path_factory.mktemp("inputs")
    scenes = sorted((scenes_dir / "images").iterdir())[:SCENES]
    for scene in scenes:
        (root / scene.name).symlink_to(scene)
    write_bad_and_odd_images(root / "odd", scenes[0])
    (root / "odd" / "copy.png").write_bytes(scenes[1].read_bytes())
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, folder: Path) -> tuple[Path, list[str]]:
    """The local engine's sort of ``folder`` and its summary lines."""
    out = tmp_path_factory.mktemp("local") / "sorted"
    code, lines = run_cli(["--source", str(folder), "--sort-into", str(out)])
    assert code == 0, lines
    return out, lines


def run_cli(argv: list[str]) -> tuple[int, list[str]]:
    """``edgemask-run argv`` in this process; its exit code and what it wrote to file descriptor 2, where
    the Ray engine writes its terminal lines (read through a pipe: the killed-worker test runs it in a
    thread, which capsys and capfd do not follow)."""
    read, write = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(read, 65536), b"")))
    reader.start()
    sys.stderr.flush()
    saved_fd, saved_stream = os.dup(2), sys.stderr
    os.dup2(write, 2)
    os.close(write)
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), line_buffering=True)  # noqa: SIM115
    try:
        code = main(argv)
    finally:
        sys.stderr.flush()
        sys.stderr = saved_stream
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        reader.join()
        os.close(read)
    return code, b"".join(chunks).decode(errors="replace").splitlines()


def manifest_rows(out: Path) -> list[dict[str, str]]:
    with open(out / MANIFEST, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def crops(out: Path) -> dict[str, str]:
    """Each crop file's path in the folder → the SHA-256 of its bytes."""
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.jpg"))
    }


def counts(lines: list[str]) -> list[str]:
    """A run's warnings and summary less what differs by engine or run (speed, the cluster, the output
    folder; native decoder messages, which Ray's workers log in their own files): images, faces by
    label, and skipped files by reason with their names."""
    varying = ("speed:", "Ray", "crops and manifest in")
    return [
        line for line in lines if line.startswith("edgemask-run:") and not any(w in line for w in varying)
    ]


def identities(out: Path) -> Counter:
    return Counter(tuple(row[k] for k in IDENTITY) for row in manifest_rows(out))


@pytest.mark.slow
def test_ray_sort_equals_the_local_engine(
    head: str, folder: Path, reference: tuple[Path, list[str]], tmp_path: Path
) -> None:
    local, local_lines = reference
    out = tmp_path / "sorted"
    code, lines = run_cli(
        ["--source", str(folder), "--sort-into", str(out), "--engine", "ray", "--ray-address", head]
    )
    assert code == 0, lines
    assert manifest_rows(out) == manifest_rows(local)  # same rows, and in the same order
    assert crops(out) == crops(local)
    assert len(crops(out)) == sum(1 for row in manifest_rows(out) if row["face"])
    assert counts(lines) == counts(local_lines)
    assert any("skipped 1: already done" in line for line in lines)  # the second copy of a scene
    assert not any("Traceback" in line or "WARNING" in line for line in lines), lines


def sort_workers() -> list[int]:
    """The pids of the Ray actors running :class:`SortWorker` (Ray names its worker processes after them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"SortWorker" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def data_rows(out: Path) -> int:
    try:
        return max(0, len((out / MANIFEST).read_text().splitlines()) - 1)
    except OSError:
        return 0


@pytest.mark.slow
def test_a_killed_worker_loses_and_duplicates_nothing(
    head: str, folder: Path, reference: tuple[Path, list[str]], tmp_path: Path
) -> None:
    local, _ = reference
    out = tmp_path / "sorted"
    argv = [
        "--source",
        str(folder),
        "--sort-into",
        str(out),
        "--engine",
        "ray",
        "--ray-address",
        head,
        "--quiet",
    ]
    result: list[tuple[int, list[str]]] = []
    run = threading.Thread(target=lambda: result.append(run_cli(argv)))
    run.start()
    killed_at = None
    deadline = time.monotonic() + 120
    while run.is_alive() and killed_at is None and time.monotonic() < deadline:
        workers = sort_workers()
        if workers and data_rows(out) >= 1:
            killed_at = data_rows(out)
            os.kill(workers[0], signal.SIGKILL)
        time.sleep(0.02)
    run.join(timeout=180)
    assert not run.is_alive()
    code, lines = result[0]
    assert code == 0, lines
    assert killed_at is not None and killed_at < len(manifest_rows(local)), (
        "the worker was not killed mid-run"
    )
    assert manifest_rows(out) == manifest_rows(local)
    assert crops(out) == crops(local)


@pytest.mark.slow
def test_an_interrupted_driver_resumes_where_it_stopped(
    head: str, folder: Path, reference: tuple[Path, list[str]], tmp_path: Path
) -> None:
    local, _ = reference
    out = tmp_path / "sorted"
    argv = ["--source", str(folder), "--sort-into", str(out), "--engine", "ray", "--ray-address", head]
    code = f"import sys; from edgemask.app.cli import main; sys.exit(main({argv!r}))"
    driver = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while driver.poll() is None and data_rows(out) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.kill()
    driver.wait()
    before = data_rows(out)
    assert 0 < before < len(manifest_rows(local)), "the driver was not interrupted mid-run"
    code, lines = run_cli(argv)
    assert code == 0, lines
    assert identities(out) == identities(local)  # every face once: nothing lost, nothing twice
    done = next(line for line in lines if "already done" in line)
    assert int(done.split("skipped ")[1].split(":")[0]) >= 2  # the filed images, and the second copy


def test_a_second_run_into_a_busy_folder_is_refused_before_ray_starts(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "sorted"
    holder = SortFolder(out)
    try:
        started = time.monotonic()
        code, lines = run_cli(["--source", str(folder), "--sort-into", str(out), "--engine", "ray"])
    finally:
        holder.close()
    assert code == 2
    assert len(lines) == 1 and "in use by another edgemask-run" in lines[0], lines
    assert time.monotonic() - started < 10
    assert not (out / MANIFEST).exists()


def captured_logs() -> set[Path]:
    """The files that hold Ray's output while a run keeps it off the terminal."""
    return set(Path(tempfile.gettempdir()).glob("edgemask-ray-*.log"))


def test_an_unreachable_cluster_is_one_line_within_30_s(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "sorted"
    logs = captured_logs()
    started = time.monotonic()
    code, lines = run_cli(
        [
            "--source",
            str(folder),
            "--sort-into",
            str(out),
            "--engine",
            "ray",
            "--ray-address",
            f"127.0.0.1:{free_port()}",
        ]
    )
    assert code == 2
    assert time.monotonic() - started < 30
    assert len(lines) == 1 and "cannot reach a Ray cluster" in lines[0], lines
    assert not (out / MANIFEST).exists()
    assert captured_logs() == logs  # the capture of Ray's output is not left behind


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--json"], "drop --json"),
        (["--workers", "2"], "--workers needs --engine ray"),
        (["--ray-address", "10.0.0.5:6379"], "--ray-address needs --engine ray"),
    ],
)
def test_options_the_distributed_engine_cannot_run_are_one_line(
    extra: list[str], message: str, folder: Path, tmp_path: Path
) -> None:
    engine = [] if "needs --engine" in message else ["--engine", "ray"]
    code, lines = run_cli(["--source", str(folder), "--sort-into", str(tmp_path / "out"), *engine, *extra])
    assert code == 2
    assert len(lines) == 1 and message in lines[0], lines


def test_a_camera_or_a_stream_is_not_a_batch(tmp_path: Path) -> None:
    for source in (["--camera", "0"], ["--source", "rtsp://cam.local/live"]):
        code, lines = run_cli([*source, "--sort-into", str(tmp_path / "out"), "--engine", "ray"])
        assert code == 2
        assert len(lines) == 1 and "not" in lines[0], lines


def test_without_ray_the_engine_names_the_extra(tmp_path: Path, folder: Path) -> None:
    blocker = tmp_path / "site"
    blocker.mkdir()
    argv = ["--source", str(folder), "--sort-into", str(tmp_path / "out"), "--engine", "ray"]
    done = run_blocked("edgemask.app.cli:main", argv, blocker)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'edgemask[distributed]'" in lines[0], lines
    assert not (tmp_path / "out").exists()


@contextmanager
def stand_in_cluster(address: object, workers: object, verbose: object) -> Iterator[Cluster]:
    """A cluster of 2 CPUs that Ray is not asked for: the driver's side of the engine, fast."""
    yield Cluster("a stand-in cluster", 2, None, 0.0)


def node_died() -> BaseException:
    return import_ray().exceptions.NodeDiedError("node 10.0.0.7 died")


def in_process(
    fail_after: int | None = None, failure: Callable[[], BaseException] = node_died
) -> Callable[..., Iterator[SortOutcome]]:
    """:func:`~edgemask.app.sorting.ray_engine.stream_outcomes` with one :class:`SortWorker` in this
    process; after ``fail_after`` outcomes it raises ``failure()`` (by default a node lost, as Ray
    reports it)."""

    def stream(
        paths: list[str], root: Path, folder: SortFolder, run: ray_engine.RayRun, workers: int
    ) -> Iterator[SortOutcome]:
        worker = SortWorker(
            run.make_pipeline, os.path.abspath(root), frozenset(folder.done.digests), run.margin
        )
        for index, path in enumerate(paths):
            if index == fail_after:
                raise failure()
            yield worker.sort(path, Path(path).read_bytes())

    return stream


def test_a_cluster_lost_mid_run_keeps_what_was_filed_and_a_rerun_completes_it(
    folder: Path, reference: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, _ = reference
    out = tmp_path / "sorted"
    argv = ["--source", str(folder), "--sort-into", str(out), "--engine", "ray"]
    monkeypatch.setattr(ray_engine, "ray_cluster", stand_in_cluster)
    monkeypatch.setattr(ray_engine, "stream_outcomes", in_process(fail_after=5))
    code, lines = run_cli(argv)
    assert code == 1, lines
    assert any("Ray stopped the run: node 10.0.0.7 died" in line for line in lines), lines
    assert not any("Traceback" in line for line in lines), lines
    assert 0 < data_rows(out) < len(manifest_rows(local))
    monkeypatch.setattr(ray_engine, "stream_outcomes", in_process())
    code, lines = run_cli(argv)
    assert code == 0, lines
    assert manifest_rows(out) == manifest_rows(local)
    assert crops(out) == crops(local)


def test_ctrl_c_while_ray_runs_ends_the_run_as_a_stop(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sorted"
    monkeypatch.setattr(ray_engine, "ray_cluster", stand_in_cluster)
    monkeypatch.setattr(ray_engine, "stream_outcomes", in_process(fail_after=3, failure=KeyboardInterrupt))
    code, lines = run_cli(["--source", str(folder), "--sort-into", str(out), "--engine", "ray"])
    assert code == 0, lines
    assert "edgemask-run: stopped by the user; outputs are complete" in lines, lines
    assert data_rows(out) >= 3


def test_more_workers_than_the_cluster_has_cpus_is_one_line(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_engine, "ray_cluster", stand_in_cluster)
    monkeypatch.setattr(ray_engine, "stream_outcomes", in_process())
    logs = captured_logs()
    out = tmp_path / "sorted"
    code, lines = run_cli(
        ["--source", str(folder), "--sort-into", str(out), "--engine", "ray", "--workers", "3"]
    )
    assert code == 2
    assert lines == ["edgemask-run: error: --workers 3: a stand-in cluster has 2 CPUs"], lines
    assert not (out / MANIFEST).exists()
    assert captured_logs() == logs


def test_a_manifest_that_cannot_be_written_is_edgemask_s_error_not_ray_s(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = SortFolder.record
    calls = []

    def full_disk(self: SortFolder, image: object) -> None:
        calls.append(image)
        if len(calls) == 3:
            raise SortError(f"{self.manifest}: cannot read or update it (No space left on device)")
        record(self, image)

    monkeypatch.setattr(ray_engine, "ray_cluster", stand_in_cluster)
    monkeypatch.setattr(ray_engine, "stream_outcomes", in_process())
    monkeypatch.setattr(SortFolder, "record", full_disk)
    code, lines = run_cli(["--source", str(folder), "--sort-into", str(tmp_path / "out"), "--engine", "ray"])
    assert code == 2
    assert len(lines) == 1 and "No space left on device" in lines[0], lines


def test_ray_problem_is_the_line_that_names_the_error() -> None:
    remote = (
        "The actor died because of an error raised in its creation task, \x1b[36mray::MapWorker("
        "MapBatches(SortWorker)).__init__()\x1b[39m (pid=10680, ip=192.0.2.2)\n"
        '  File "/site-packages/ray/data/_internal/execution/util.py", line 115, in __init__\n'
        "    super().__init__(*args, **kwargs)\n"
        "FileNotFoundError: /models/mask_classifier.tflite: no such file\n"
    )
    assert (
        ray_problem(RuntimeError(remote)) == "FileNotFoundError: /models/mask_classifier.tflite: no such file"
    )
    assert ray_problem(RuntimeError("node 10.0.0.7 died\nmore detail")) == "node 10.0.0.7 died"
    assert ray_problem(RuntimeError("")) == "RuntimeError"


@pytest.mark.slow
def test_without_an_address_a_local_cluster_runs_the_sort_at_the_driver_s_priority_and_is_gone_after(
    scenes_dir: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    for scene in sorted((scenes_dir / "images").iterdir())[:3]:
        (small / scene.name).symlink_to(scene)
    code, local_lines = run_cli(["--source", str(small), "--sort-into", str(tmp_path / "local")])
    assert code == 0, local_lines
    out = tmp_path / "ray"
    niceness: set[int] = set()
    running = threading.Event()
    running.set()

    def watch() -> None:
        while running.is_set():
            for pid in sort_workers():
                try:
                    niceness.add(os.getpriority(os.PRIO_PROCESS, pid))
                except OSError:
                    continue
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, lines = run_cli(
            ["--source", str(small), "--sort-into", str(out), "--engine", "ray", "--workers", "1"]
        )
    finally:
        running.clear()
        watcher.join()
    assert niceness == {os.getpriority(os.PRIO_PROCESS, 0)}  # the workers at the driver's priority
    assert code == 0, lines
    assert manifest_rows(out) == manifest_rows(tmp_path / "local")
    assert crops(out) == crops(tmp_path / "local")
    assert any("1 Ray worker on a local Ray cluster" in line for line in lines), lines
    progress = "img"  # the bar's pieces (split at its carriage returns)
    assert all(line.startswith("edgemask-run:") or progress in line for line in lines if line.strip()), lines
    assert not import_ray().is_initialized()
