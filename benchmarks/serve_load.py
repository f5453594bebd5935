"""What ``edgemask-run --serve`` costs the processing loop, and whether its memory stays flat.

The real ``edgemask-run`` (its default models unless ``--run-args`` says otherwise) processes a video
made of scenes_dev images while this script plays the viewers over HTTP:

1. Speed, side by side: runs without ``--serve`` and with ``--serve`` but no viewer, alternated
   (``--pairs``), each reporting its own frames/s; then, inside one long run, windows of ``--window``
   seconds alternate between no viewer, one viewer at full rate and one at ``?fps=5`` (the order
   rotates each round), the rate being the ``frames`` count of /stats.json over each window, with the
   CPU time the process used per frame (all its threads, from /proc): on a shared machine the rate
   follows the other jobs, the CPU time per frame much less.
2. Memory over a long run (``--minutes``): two viewers at a time come and go all the time (each reads
   the stream for 0.5-3 s and hangs up mid-part; one in five then stops reading and holds its
   connection open for 12 s, beyond the server's 10 s write timeout), the page, /stats.json and
   /metrics are fetched between them; the resident set size (VmRSS) and its anonymous part (RssAnon:
   heap and buffers, where a leak would show; file-backed pages come and go with the page cache) are
   sampled every 5 s.

Run ``python benchmarks/serve_load.py --help``; ``--quick`` smoke-runs it in about a minute.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit

import cv2
import numpy as np

from edgemask.assets import dataset
from edgemask.evaluation.machine import describe, header_markdown, proc_status_mb

FRAME_SIZE = (640, 480)
HOLD = 4
"""Each scene image is held this many frames, as a slow scene would be: the file stays small."""
RSS_PERIOD = 5.0
CONDITIONS = ("no viewer", "viewer", "viewer ?fps=5")


def make_video(path: Path, frames: int) -> None:
    images = sorted((dataset("scenes_dev") / "images").iterdir())
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, FRAME_SIZE)
    loaded: dict[int, np.ndarray] = {}
    for k in range(frames):
        i = (k // HOLD) % len(images)
        if i not in loaded:
            loaded[i] = cv2.resize(cv2.imread(str(images[i])), FRAME_SIZE)
        writer.write(loaded[i])
    writer.release()


class Run:
    """``edgemask-run`` in a subprocess; stderr is drained into ``lines`` so it can never block."""

    def __init__(self, video: Path, extra: list[str], serve: bool) -> None:
        argv = [sys.executable, "-c", RUN_WITH_STACK_DUMPS, "--source", str(video), *extra]
        if serve:
            argv += ["--serve", "0"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.url: str | None = None
        self.announced = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if serve:
            self.announced.wait(120)
            assert self.url, "".join(self.lines)

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if match := re.search(r"live view on (http://\S+/)", line):
                self.url = match.group(1)
                self.announced.set()
            if "speed:" in line:
                self.announced.set()

    def speed(self) -> float:
        """frames/s overall, from the summary (waits for it)."""
        while not any("speed:" in line for line in self.lines):
            assert self.proc.poll() is None or any("speed:" in x for x in self.lines), "".join(self.lines)
            time.sleep(0.2)
        line = next(x for x in self.lines if "speed:" in x)
        return float(re.search(r"speed: ([\d.]+) frames/s", line).group(1))

    def stats(self) -> dict:
        return json.loads(request(self.url, "/stats.json"))

    def cpu_seconds(self) -> float:
        """User + system CPU time of all the process's threads so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> tuple[float, float]:
        """(VmRSS, RssAnon) in MB."""
        return proc_status_mb("VmRSS", self.proc.pid), proc_status_mb("RssAnon", self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def request(url: str, path: str) -> bytes:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT)
    connection.request("GET", path)
    body = connection.getresponse().read()
    connection.close()
    return body


STALL_SECONDS = 12.0
REQUEST_TIMEOUT = 30.0
RUN_WITH_STACK_DUMPS = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "from edgemask.app.cli import main; sys.exit(main())"
)
"""edgemask-run, plus a dump of every thread's stack on SIGUSR1 in case a request ever times out."""


class Viewer(threading.Thread):
    """Reads ``/stream.mjpg`` on a raw socket until ``stop_event``, or for ``seconds``, then hangs up
    wherever it is in a part; with ``stall`` it first stops reading for ``STALL_SECONDS``."""

    def __init__(self, url: str, query: str = "", seconds: float | None = None, stall: bool = False) -> None:
        super().__init__(daemon=True)
        self.url, self.query, self.seconds, self.stall = url, query, seconds, stall
        self.stop_event = threading.Event()
        self.received = 0
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self.watch()
        except OSError as e:
            self.error = e

    def watch(self) -> None:
        parts = urlsplit(self.url)
        with socket.create_connection((parts.hostname, parts.port), timeout=REQUEST_TIMEOUT) as sock:
            sock.sendall(f"GET /stream.mjpg{self.query} HTTP/1.0\r\n\r\n".encode())
            start = time.monotonic()
            while not self.stop_event.is_set():
                if self.seconds is not None and time.monotonic() - start > self.seconds:
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                self.received += len(chunk)
            if self.stall:
                self.stop_event.wait(STALL_SECONDS)


def speed_pairs(video: Path, extra: list[str], pairs: int) -> list[tuple[float, float]]:
    results = []
    for k in range(pairs):
        rates = {}
        for serve in (False, True) if k % 2 == 0 else (True, False):
            run = Run(video, extra, serve)
            rates[serve] = run.speed()
            run.stop()
        results.append((rates[False], rates[True]))
        print(
            f"  pair {k + 1}: without --serve {rates[False]:.1f} frames/s, with (no viewer) {rates[True]:.1f}"
        )
    return results


def viewer_windows(run: Run, window: float, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Per condition: (frames/s, CPU ms per frame) of each window."""
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in CONDITIONS}
    for r in range(rounds):
        order = CONDITIONS[r % 3 :] + CONDITIONS[: r % 3]
        for condition in order:
            viewer = None
            if condition != "no viewer":
                viewer = Viewer(run.url, "?fps=5" if "fps" in condition else "")
                viewer.start()
                time.sleep(0.5)
            first, cpu0, t0 = run.stats()["frames"], run.cpu_seconds(), time.monotonic()
            time.sleep(window)
            last, cpu1, t1 = run.stats()["frames"], run.cpu_seconds(), time.monotonic()
            if viewer is not None:
                viewer.stop_event.set()
                viewer.join()
            frames = max(1, last - first)
            results[condition].append(((last - first) / (t1 - t0), (cpu1 - cpu0) / frames * 1000))
        print(
            f"  round {r + 1}: "
            + ", ".join(
                f"{c} {results[c][-1][0]:.1f} frames/s {results[c][-1][1]:.0f} ms CPU" for c in CONDITIONS
            )
        )
    return results


def churn(run: Run, stop: threading.Event, counts: dict[str, int], seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        viewer = Viewer(run.url, seconds=rng.uniform(0.5, 3.0), stall=rng.random() < 0.2)
        viewer.start()
        viewer.join()
        counts["viewers"] += 1
        counts["bytes"] += viewer.received
        counts["failed"] += viewer.error is not None
        for path in ("/", "/stats.json", "/metrics"):
            start = time.monotonic()
            try:
                request(run.url, path)
            except OSError:
                counts["failed"] += 1
                if counts["failed"] == 1:
                    run.proc.send_signal(signal.SIGUSR1)  # its stderr shows what every thread was doing
            counts["slowest_ms"] = max(counts["slowest_ms"], round((time.monotonic() - start) * 1000))
        stop.wait(rng.uniform(0.0, 1.0))


def memory_run(run: Run, control: Run, minutes: float) -> tuple[np.ndarray, dict[str, int], int]:
    """Columns: seconds, VmRSS and RssAnon (MB) of ``run`` (viewers coming and going), then of
    ``control`` (no --serve, same video, same time); plus viewer counts and frames processed by ``run``."""
    counts = {"viewers": 0, "bytes": 0, "failed": 0, "slowest_ms": 0}
    stop = threading.Event()
    workers = [threading.Thread(target=churn, args=(run, stop, counts, s), daemon=True) for s in (1, 2)]
    for worker in workers:
        worker.start()
    first = run.stats()["frames"]
    samples, start = [], time.monotonic()
    while (elapsed := time.monotonic() - start) < minutes * 60 and run.proc.poll() is None:
        samples.append((elapsed, *run.rss_mb(), *control.rss_mb()))
        time.sleep(RSS_PERIOD)
    samples.append((time.monotonic() - start, *run.rss_mb(), *control.rss_mb()))
    stop.set()
    for worker in workers:
        worker.join()
    return np.array(samples), counts, run.stats()["frames"] - first


def memory_line(name: str, times: np.ndarray, mb: np.ndarray) -> str:
    settled = times >= min(60.0, times[-1] / 4)
    trend = np.polyfit(times[settled] / 60, mb[settled], 1)[0] if settled.sum() > 2 else float("nan")
    return (
        f"| {name} | {mb[0]:.0f} | {mb[settled][0]:.0f} | {mb[-1]:.0f} | {mb.min():.0f}-{mb.max():.0f} "
        f"| {trend:+.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="length of the memory run")
    parser.add_argument("--window", type=float, default=15.0, help="seconds per speed window")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of speed windows")
    parser.add_argument("--pairs", type=int, default=2, help="runs without/with --serve, alternated")
    parser.add_argument("--frames", type=int, default=200, help="frames of the short video of the pairs")
    parser.add_argument(
        "--run-args",
        default="",
        help="edgemask-run options (models, threads; default: its defaults)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: short windows and a 1-minute run")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.window, args.rounds, args.pairs, args.frames = 1.0, 3.0, 1, 1, 60
    extra = args.run_args.split()
    print(header_markdown(describe()))
    options = " ".join(extra) or "with its default models and threads"
    print(f"- edgemask-run {options}; video {FRAME_SIZE[0]}x{FRAME_SIZE[1]} from scenes_dev images")
    with TemporaryDirectory() as tmp:
        short = Path(tmp) / "short.mp4"
        make_video(short, args.frames)
        print(f"\nSpeed, {args.frames}-frame video, separate runs (summary frames/s):")
        pairs = speed_pairs(short, extra, args.pairs)
        rate = float(np.mean([p[0] for p in pairs]))
        seconds = args.rounds * len(CONDITIONS) * (args.window + 1) + args.minutes * 60
        long = Path(tmp) / "long.mp4"
        make_video(long, int(rate * seconds * 1.5) + 100)
        run = Run(long, extra, serve=True)
        try:
            print(f"\nSpeed inside one run, {args.window:g} s windows (frames/s from /stats.json):")
            windows = viewer_windows(run, args.window, args.rounds)
            print(
                f"\nMemory over {args.minutes:g} min, viewers coming and going; "
                "beside it a run without --serve"
            )
            control = Run(long, extra, serve=False)
            try:
                samples, counts, frames = memory_run(run, control, args.minutes)
            finally:
                control.stop()
        finally:
            code = run.stop()
    print("\n| | frames/s (mean) | CPU ms per frame (median) |\n|---|---|---|")
    print(f"| without --serve (separate runs) | {np.mean([p[0] for p in pairs]):.1f} | |")
    print(f"| --serve, no viewer (separate runs) | {np.mean([p[1] for p in pairs]):.1f} | |")
    for condition in CONDITIONS:
        rates, cpu = zip(*windows[condition], strict=True)
        print(f"| --serve, {condition} (windows of one run) | {np.mean(rates):.1f} | {np.median(cpu):.1f} |")
    times = samples[:, 0]
    settled_at = times[times >= min(60.0, times[-1] / 4)][0]
    print(
        f"\n| MB | start | at {settled_at:.0f} s | end ({times[-1] / 60:.1f} min) | range "
        f"| trend after {settled_at:.0f} s, MB/min |"
    )
    print("|---|---|---|---|---|---|")
    for column, name in enumerate(
        [
            "--serve + viewers, VmRSS",
            "--serve + viewers, RssAnon",
            "no --serve, VmRSS",
            "no --serve, RssAnon",
        ],
        1,
    ):
        print(memory_line(name, times, samples[:, column]))
    print(
        f"{counts['viewers']} viewers came and went ({counts['bytes'] / 1e6:.0f} MB of stream) while "
        f"{frames} frames were processed; page/stats/metrics requests: slowest {counts['slowest_ms']} ms, "
        f"{counts['failed']} failed; exit code {code}"
    )
    if counts["failed"]:
        print("".join(run.lines))
    print(
        "RssAnon samples (s: --serve/no --serve MB):",
        " ".join(f"{t:.0f}:{a:.0f}/{c:.0f}" for t, _, a, _, c in samples),
    )


if __name__ == "__main__":
    main()
