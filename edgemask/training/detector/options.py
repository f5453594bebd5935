"""``edgemask-train detector``'s options; each ``dest`` names a field of
:class:`~edgemask.training.detector.fit.DetectorTrainConfig` or
:class:`~edgemask.training.detector.augment.DetectorAugment`. Imports no TensorFlow."""

from __future__ import annotations

import argparse

from edgemask.argtypes import at_least, fraction, in_range, whole_in_range
from edgemask.training.detector.augment import DetectorAugment
from edgemask.training.detector.config import DetectorTrainConfig
from edgemask.training.loop_options import add_loop_arguments

DESCRIPTION = (
    "Fine-tune YuNet-n (from its source ONNX, rebuilt trainable in Keras) on VOC scenes: every annotated "
    "box is a face, whatever its mask class. Landmarks are distilled from the frozen source model. "
    "Writes checkpoints, history.csv and, at the end, the best epoch as a .keras model for edgemask-export."
)
EXAMPLES = """examples:
  edgemask-train detector --data ../shared/assets/datasets/scenes_train --out runs/det1
  (interrupted? add --resume to the same command: it continues after the last finished epoch)
  edgemask-export --models yunet_masked --yunet-masked runs/det1/face_detector_yunet_masked.keras
"""


def view_side(value: str) -> int:
    """A training view side: a multiple of 32 (YuNet's padding) from 64 to 1024."""
    side = whole_in_range(64, 1024)(value)
    if side % 32:
        raise argparse.ArgumentTypeError(f"{side} is not a multiple of 32")
    return side


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DetectorTrainConfig(data="")
    a = DetectorAugment()
    p.add_argument("--data", required=True, help="VOC scenes folder (images/ + annotations/)")
    p.add_argument("--out", default=d.out, help="run folder: checkpoints, history, model (%(default)s)")
    p.add_argument(
        "--source", default=None, help="YuNet ONNX file to start from (default: yunet_n_dynamic.onnx)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out after its last epoch")
    p.add_argument(
        "--input-size",
        type=view_side,
        default=d.input_size,
        help="square training view side, a multiple of 32 (default %(default)s)",
    )
    p.add_argument(
        "--val-size",
        type=view_side,
        default=d.val_size,
        help="long side the held-out scenes are scored at, as the runtime runs (default %(default)s)",
    )
    add_loop_arguments(
        p,
        epochs=d.epochs,
        batch_size=d.batch_size,
        max_batch_size=512,
        learning_rate=d.learning_rate,
        learning_rate_help="AdamW peak, after warm-up (default %(default)s)",
    )
    p.add_argument("--warmup-steps", type=at_least(0), default=d.warmup_steps, help="(default %(default)s)")
    p.add_argument(
        "--val-fraction",
        type=in_range(0.01, 0.9),
        default=d.val_fraction,
        help="share of scenes held out, by a stable hash of the file name (default %(default)s)",
    )
    p.add_argument(
        "--patience",
        type=at_least(1),
        default=d.patience,
        help="epochs without a better held-out AP before stopping (default %(default)s)",
    )
    p.add_argument("--seed", type=at_least(0), default=d.seed, help="(default %(default)s)")
    p.add_argument("--threads", type=whole_in_range(1, 256), default=d.threads, help="(default %(default)s)")
    p.add_argument("--limit", type=at_least(1), default=None, help="use only the first N scenes")
    p.add_argument(
        "--shrink-prob",
        type=fraction,
        default=a.shrink_prob,
        help="share of views scaled down further and padded, for faces under 16 px (default %(default)s)",
    )
    p.add_argument(
        "--shrink-min",
        type=in_range(0.1, 1.0),
        default=a.shrink_min,
        help="smallest share of the view a shrunk crop fills (default %(default)s)",
    )
    p.add_argument("--flip-prob", type=fraction, default=a.flip_prob, help="(default %(default)s)")
