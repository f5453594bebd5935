"""Per-face time of classifier files, side by side: ``MaskClassifier.infer`` on one face crop (batch 1,
the runtime's own preprocessing included) at one thread, interleaved round-robin over the files so a
neighbour's job slows every file alike. Prints one JSON line per file and a markdown table with each
file's median relative to the first one, and which operators each TFLite file runs in float.

A ``.keras`` argument is first converted to a full-integer int8 TFLite file by the exporter's own
converter (calibrated on ``--calib`` scene crops, no gate), so models of several input sizes can be timed
before any of them is exported for real.

    python benchmarks/classifier_time.py path/to/v5/mask_classifier_int8.tflite \\
        models/mask_classifier_int8.tflite runs/c64/mask_classifier.keras --runs 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgemask.assets import dataset
from edgemask.core.classifier import MaskClassifier
from edgemask.core.imageio import read_image
from edgemask.evaluation.timing import round_robin, stats_ms


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def full_integer_tflite(keras_path: Path, calib: Path, folder: Path) -> Path:
    """``keras_path`` converted to a full-integer int8 TFLite file in ``folder`` (metadata included)."""
    from edgemask.export import tflite
    from edgemask.export.calibration import classifier_calibration
    from edgemask.export.sources import load_classifier

    source = load_classifier(keras_path)
    calibration = classifier_calibration(calib, source.meta.input_size[0], 300)
    data = tflite.convert(source, "int8", calibration)
    out = folder / f"{keras_path.parent.name}_{keras_path.stem}_int8.tflite"
    tflite.write(data, out, source.file_meta("int8", tflite.output_names(data, source)))
    return out


def float_ops(path: Path) -> list[str]:
    """Operators of a TFLite file that compute in float (none in a full-integer file but the final
    DEQUANTIZE/QUANTIZE at the edges)."""
    if path.suffix != ".tflite":
        return []
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return sorted(
        {
            op["op_name"]
            for op in interpreter._get_ops_details()
            if any(tensors[i]["dtype"] == np.float32 for i in op["outputs"] if i >= 0)
            and op["op_name"] not in ("DEQUANTIZE", "QUANTIZE")
        }
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help="classifier files (.tflite / .onnx / .keras)")
    p.add_argument("--calib", type=Path, help="scenes for converting .keras files (default scenes_train)")
    p.add_argument("--face", type=Path, help="a face crop image (default: a synthetic 40x32 gradient)")
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="edgemask-time-"))
    calib = args.calib or dataset("scenes_train")
    args.models = [full_integer_tflite(m, calib, tmp) if m.suffix == ".keras" else m for m in args.models]
    if args.face:
        face = read_image(args.face)
    else:
        face = (np.indices((40, 32)).sum(axis=0)[..., None] * [3, 5, 7] % 256).astype(np.uint8)
    names = [f"{i}:{m}" for i, m in enumerate(args.models)]
    classifiers = {n: MaskClassifier(m, args.threads) for n, m in zip(names, args.models, strict=True)}
    load = os.getloadavg()[0]
    samples = round_robin(
        {n: (lambda c=c: c.infer([face])) for n, c in classifiers.items()}, args.runs, args.warmup
    )
    stats = {n: stats_ms(s) for n, s in samples.items()}
    first = stats[names[0]]["median"]
    print(f"CPU {cpu_name()}; load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print("| file | input | median ms | p90 ms | min ms | median × first |\n|---|---|---|---|---|---|")
    for n, m in zip(names, args.models, strict=True):
        s = stats[n]
        size = classifiers[n].input_size
        times = " | ".join(f"{s[k]:.3f}" for k in ("median", "p90", "min"))
        print(f"| {m} | {size} | {times} | {s['median'] / first:.2f} |")
    for m in args.models:
        print(f"{m}: float operators {float_ops(m) or 'none'}")
    for n, m in zip(names, args.models, strict=True):
        print(
            json.dumps(
                {"file": str(m), "input_size": classifiers[n].input_size, "threads": args.threads, **stats[n]}
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
