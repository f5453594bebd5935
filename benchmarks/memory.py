"""Footprint of edgemask-run: peak memory on a folder of images, the load-time cost of the model
checksums, and the disk size of a runtime-only install.

Part 1: ``edgemask-run --source <folder> --json`` (default: scenes_dev/images, int8 TFLite, default
detector) in a fresh process per run; its peak resident set size comes from the kernel's accounting of
that one child (``os.wait4``). ``--interpreters 1 2 8`` runs it with that many TFLite interpreters per
model (``MAX_INTERPRETERS``), one row each. The time the resizing costs on shape switches is measured
apart, in this process: one pipeline per row, every image through each of them in turn (the order
rotating), so the machine's load hits them alike; ms per image is the models' time.
Part 2: the checksum at load: each default model file is copied with a checksum (as the exporter seals
it) and ``load_backend`` is timed on both copies, interleaved; plus the verification alone.
Part 3: a fresh venv in a temporary folder with ``pip install -e '.[runtime]'`` (or ``--venv PATH``, an
existing one), and the size of its site-packages.
Target: peak RSS <= 150 MB with the defaults.

``python benchmarks/memory.py --help``; ``--quick`` smoke-runs it on 20 images without the venv.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from edgemask import __version__, assets
from edgemask.app.models import MODELS_ENV, resolve_model
from edgemask.argtypes import DefaultsHelpFormatter, at_least
from edgemask.core.backends import MAX_INTERPRETERS, load_backend
from edgemask.core.formats import DEFAULT_DETECTOR, DETECTORS, FORMATS
from edgemask.core.integrity import tflite_checksum, verify_onnx, verify_tflite
from edgemask.core.metadata import ZIP_MEMBER_HEADER, append_tflite_metadata, read_metadata
from edgemask.core.pipeline import Pipeline, PipelineOptions
from edgemask.evaluation.machine import describe, header_markdown
from edgemask.evaluation.report import write_json

TARGET_MB = 150.0
CHILD = """
import sys
import edgemask.core.backends as backends
backends.MAX_INTERPRETERS = int(sys.argv[1])  # read by every backend as it loads
from edgemask.app.cli import main
sys.exit(main(sys.argv[2:]))
"""
"""The child: edgemask-run's own entry point, with the interpreter bound set first."""
BASELINE_CHILD = "import sys\nfrom edgemask.app.cli import main\nsys.exit(main(sys.argv[1:]))"
"""edgemask-run of another checkout (``--baseline``, first on PYTHONPATH), with its own defaults."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("--source", type=Path, help="images to run on (default: scenes_dev/images)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=DETECTORS, help="detector family")
    p.add_argument("--backend", default="tflite", choices=list(FORMATS), help="model format")
    p.add_argument("--models", type=Path, help="models folder (default: edgemask-run's own lookup)")
    p.add_argument(
        "--interpreters",
        type=at_least(1),
        nargs="+",
        default=[MAX_INTERPRETERS],
        help="TFLite interpreters per model, one row each",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="also run edgemask-run from this checkout (e.g. a worktree of the previous commit) as it is",
    )
    p.add_argument("--rounds", type=at_least(1), default=1, help="runs per row, interleaved")
    p.add_argument("--max-frames", type=at_least(1), help="stop each run after this many images")
    p.add_argument("--load-runs", type=at_least(1), default=20, help="timed loads per model file")
    p.add_argument("--venv", type=Path, help="measure this runtime-only venv instead of making one")
    p.add_argument("--no-venv", action="store_true", help="skip the install-size part")
    p.add_argument("--quick", action="store_true", help="20 images, 5 loads, no venv")
    p.add_argument("--json-out", type=Path, help="write every number as JSON")
    return p


@dataclass(frozen=True)
class Config:
    """One row of part 1: how the child is started."""

    label: str
    child: tuple[str, ...]
    env: dict[str, str]
    interpreters: int | None = None
    cwd: Path | None = None
    """``python -c`` puts its working directory first on sys.path: a baseline runs in its checkout."""


def run_once(args: argparse.Namespace, config: Config) -> dict:
    """One edgemask-run in a child process: peak RSS (MB), wall seconds, models' ms per image."""
    argv = ["--source", str(args.source), "--json", "--quiet", "--detector", args.detector]
    argv += ["--backend", args.backend] + (["--max-frames", str(args.max_frames)] if args.max_frames else [])
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", *config.child, *argv],
            stdout=out,
            stderr=err,
            env=config.env,
            cwd=config.cwd,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"edgemask-run failed ({process.returncode}): {err.read().decode()[-2000:]}")
        records = [json.loads(line) for line in out.read().decode().splitlines()]
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "wall_s": wall,
        "images": len(records),
        "ms_per_image": statistics.fmean(r["ms"]["total"] for r in records) if records else float("nan"),
    }


def configs(args: argparse.Namespace) -> list[Config]:
    rows = [Config(f"this checkout, {n}", (CHILD, str(n)), dict(os.environ), n) for n in args.interpreters]
    if args.baseline:
        env = {**os.environ, "PYTHONPATH": str(args.baseline)}
        rows.append(Config(f"{args.baseline.name} (its defaults)", (BASELINE_CHILD,), env, cwd=args.baseline))
    return rows


def memory_rows(args: argparse.Namespace) -> list[dict]:
    """One row per configuration; the runs of a round interleaved."""
    rows = configs(args)
    runs: dict[str, list[dict]] = {c.label: [] for c in rows}
    for _ in range(args.rounds):
        for config in rows:
            runs[config.label].append(run_once(args, config))
            print(f"{config.label}: {runs[config.label][-1]}", file=sys.stderr)
    timing = interleaved_ms(args)
    return [
        {
            "config": c.label,
            "images": runs[c.label][0]["images"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[c.label]),
            "wall_s": statistics.median(r["wall_s"] for r in runs[c.label]),
            "ms_per_image_alone": statistics.median(r["ms_per_image"] for r in runs[c.label]),
            "ms_per_image_interleaved": timing.get(c.interpreters),
            "interpreters": c.interpreters,
        }
        for c in rows
    ]


def interleaved_ms(args: argparse.Namespace) -> dict[int, float]:
    """Mean models' ms per image for each interpreter bound, all pipelines fed the same images in turn."""
    from edgemask.app.cli import DEFAULT_THREADS
    from edgemask.app.sources import Frame, ImageFiles, list_files

    pipelines = {}
    for n in args.interpreters:
        detector = resolve_model(args.detector, args.backend, "detector")
        classifier = resolve_model("classifier", args.backend, "classifier")
        pipeline = Pipeline.from_paths(detector, classifier, PipelineOptions(threads=DEFAULT_THREADS))
        for backend in (pipeline.detector.backend, pipeline.classifier.backend):
            backend.keep_shapes(n)
        pipelines[n] = pipeline
    totals = dict.fromkeys(pipelines, 0.0)
    images = 0
    order = list(pipelines)
    for item in ImageFiles(list_files(args.source), args.source):
        if not isinstance(item, Frame):
            continue
        for n in order:
            totals[n] += pipelines[n].infer(item.image).timings.total
        order = order[1:] + order[:1]
        images += 1
        if args.max_frames and images >= args.max_frames:
            break
    return {n: total / max(images, 1) for n, total in totals.items()}


def sealed_copy(path: Path, folder: Path) -> Path | None:
    """``path`` as the current exporter writes it (with a checksum); None for ONNX without ``onnx``."""
    original = read_metadata(path)
    meta = replace(original, edgemask_version=__version__, checksum=None)
    target = folder / path.name
    if path.suffix == ".tflite":
        data = path.read_bytes()
        end = original.checksum.length if original.checksum else data.rfind(ZIP_MEMBER_HEADER)
        flatbuffer = data[:end]
        target.write_bytes(flatbuffer)
        append_tflite_metadata(target, replace(meta, checksum=tflite_checksum(flatbuffer)))
        return target
    try:
        import onnx
    except ImportError:
        return None
    from edgemask.export.onnx import write

    write(onnx.load(path), target, meta)
    return target


def median_ms(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        action()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def checksum_rows(args: argparse.Namespace) -> list[dict]:
    """Per default model file: load time without and with a checksum, and the verification alone."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgemask-memory-") as tmp:
        for model, flag in ((args.detector, "detector"), ("classifier", "classifier")):
            plain = resolve_model(model, args.backend, flag)
            sealed = sealed_copy(plain, Path(tmp))
            if sealed is None:
                continue
            meta = read_metadata(sealed)
            data = sealed.read_bytes()
            verify = partial(verify_tflite, sealed, meta)
            if sealed.suffix == ".onnx":
                verify = partial(lambda path, m: verify_onnx(path, path.read_bytes(), m), sealed, meta)
            load_plain, load_sealed = [], []
            for _ in range(args.load_runs):  # interleaved: the machine's load hits both alike
                load_plain.append(median_ms(lambda p=plain: load_backend(p), 1))
                load_sealed.append(median_ms(lambda p=sealed: load_backend(p), 1))
            rows.append(
                {
                    "file": plain.name,
                    "size_mb": len(data) / 1e6,
                    "verify_ms": median_ms(verify, args.load_runs),
                    "load_ms_without": statistics.median(load_plain),
                    "load_ms_with": statistics.median(load_sealed),
                }
            )
    return rows


def venv_size(args: argparse.Namespace) -> dict | None:
    """Size of the site-packages of a runtime-only install (made now in a temporary folder, or given)."""
    if args.no_venv:
        return None
    with tempfile.TemporaryDirectory(prefix="edgemask-venv-") as tmp:
        venv = args.venv
        if venv is None:
            venv = Path(tmp) / "venv"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
            subprocess.run([*pip, "--upgrade", "pip"], check=True)
            subprocess.run([*pip, "-e", f"{assets.REPO_ROOT}[runtime]"], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        packages = sorted(p.name for p in site.glob("*.dist-info"))
        folders = {p.name: disk_mb(p) for p in site.iterdir() if p.is_dir() and not p.name.endswith("-info")}
        return {
            "venv": str(args.venv) if args.venv else "fresh, pip install -e '.[runtime]'",
            "site_packages_mb": disk_mb(site),
            "largest_mb": dict(sorted(folders.items(), key=lambda kv: -kv[1])[:6]),
            "packages": [p.removesuffix(".dist-info") for p in packages],
        }


def disk_mb(path: Path) -> float:
    du = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(du.stdout.split()[0]) / 1024


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown(args: argparse.Namespace, memory: list[dict], checks: list[dict], venv: dict | None) -> str:
    lines = [
        f"edgemask-run --source {args.source} --json --detector {args.detector} --backend {args.backend}",
        "",
        "| edgemask-run (TFLite interpreters per model) | images | peak RSS MB | wall s "
        "| models ms/image, alone | models ms/image, interleaved |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['config']} | {r['images']} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.1f} "
        f"| {r['ms_per_image_alone']:.1f} | {fmt(r['ms_per_image_interleaved'])} |"
        for r in memory
    ]
    lines += [
        "",
        "| model file | MB | verify ms | load ms without checksum | load ms with checksum |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['file']} | {r['size_mb']:.1f} | {r['verify_ms']:.1f} | {r['load_ms_without']:.1f} "
        f"| {r['load_ms_with']:.1f} |"
        for r in checks
    ]
    if venv is not None:
        lines += [
            "",
            f"Runtime-only install ({venv['venv']}): site-packages {venv['site_packages_mb']:.0f} MB",
        ]
        lines.append("largest: " + ", ".join(f"{k} {v:.0f} MB" for k, v in venv["largest_mb"].items()))
        lines.append("packages: " + ", ".join(venv["packages"]))
    default = next((r for r in memory if r["interpreters"] == MAX_INTERPRETERS), None)
    if default is not None:
        peak = default["peak_rss_mb"]
        verdict = "met" if peak <= TARGET_MB else "NOT met"
        lines += ["", f"Target: peak RSS <= {TARGET_MB:.0f} MB with the defaults: {peak:.0f} MB, {verdict}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.max_frames, args.load_runs, args.no_venv = args.max_frames or 20, 5, True
    if args.source is None:
        args.source = assets.dataset("scenes_dev") / "images"
    # The same model files here and in every child (a --baseline checkout would look in its own models/).
    os.environ[MODELS_ENV] = str(args.models or os.environ.get(MODELS_ENV) or assets.REPO_ROOT / "models")
    info = describe()
    memory = memory_rows(args)
    checks = checksum_rows(args)
    venv = venv_size(args)
    print(header_markdown(info))
    print()
    print(markdown(args, memory, checks, venv))
    if args.json_out:
        write_json(args.json_out, {"machine": info, "memory": memory, "checksum": checks, "venv": venv})
    return 0


if __name__ == "__main__":
    sys.exit(main())
