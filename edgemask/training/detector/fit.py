"""One resumable detector fine-tuning run: YuNet from its source ONNX, rebuilt trainable in Keras.

Each step: a batch of random views; the frozen source model (the teacher) runs on it once, pricing the
SimOTA assignment, marking confident small faces to ignore and giving the landmark targets; then one SGD
step of the student on :func:`~edgemask.training.detector.loss.detector_loss`. Learning rate: linear
warm-up, then cosine decay. After each epoch: AP@0.5 on the held-out scenes, a checkpoint (weights,
optimizer, history), early stopping on that AP. The best epoch is saved as a Keras model with a dynamic
input, ready for ``edgemask-export``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edgemask.core.formats import MODELS
from edgemask.core.metadata import GridConfig
from edgemask.core.ops.yunet import HEAD_KINDS, decode_boxes, select
from edgemask.evaluation.detection_metrics import DetectionEvaluator
from edgemask.evaluation.voc import skip_lines
from edgemask.training.detector.assign import Priors, Targets, image_targets, priors_for
from edgemask.training.detector.checkpoint import (
    CheckpointError,
    read_checkpoint,
    read_weights,
    save_checkpoint,
    save_weights,
)
from edgemask.training.detector.config import DetectorTrainConfig
from edgemask.training.detector.data import (
    Batch,
    FaceScene,
    held_out_batches,
    load_face_scenes,
    split_scenes,
    steps_per_epoch,
    train_batches,
)
from edgemask.training.detector.loss import detector_loss
from edgemask.training.detector.record import training_record

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"
BEST = "best.weights.npz"
HISTORY = "history.csv"
MODEL = f"{MODELS['yunet_masked'].stem}.keras"
EVAL_CONFIDENCE = 0.02
"""Score floor for the held-out AP: low, so the whole precision-recall curve counts."""
REPORT_CONFIDENCE = 0.5
NMS = 0.3
TARGET_KEYS = ("positive", "boxes", "obj_weight", "landmarks", "landmark_weight")


def learning_rate(step: int, total: int, cfg: DetectorTrainConfig) -> float:
    """Linear warm-up to ``cfg.learning_rate``, then cosine decay to 0 at ``total`` steps."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def source_path(cfg: DetectorTrainConfig) -> Path:
    if cfg.source:
        return Path(cfg.source)
    from edgemask.assets import YUNET_N, find

    return find(YUNET_N.relpath)


def stack_heads(outputs: dict[str, Any], strides: tuple[int, ...]) -> dict[str, Any]:
    """Every stride's head outputs joined along the cells, in :func:`priors_for` order."""
    from keras import ops

    heads = {kind: ops.concatenate([outputs[f"{kind}_{s}"] for s in strides], axis=1) for kind in HEAD_KINDS}
    heads["cls"], heads["obj"] = heads["cls"][..., 0], heads["obj"][..., 0]
    return heads


def batch_targets(
    batch: Batch, teacher: dict[str, np.ndarray], priors: Priors, radius: float
) -> dict[str, np.ndarray]:
    """The batch's stacked targets from the teacher's stacked heads (numpy)."""
    boxes = decode_boxes(teacher["bbox"], priors.cells, priors.strides[:, None])
    scores = np.sqrt(np.clip(teacher["cls"], 0, 1) * np.clip(teacher["obj"], 0, 1))
    per_image: list[Targets] = [
        image_targets(priors, boxes[i], scores[i], teacher["kps"][i], faces, ref, radius)
        for i, (faces, ref) in enumerate(zip(batch.faces, batch.reference_sides, strict=True))
    ]
    return {k: np.stack([getattr(t, k) for t in per_image]) for k in TARGET_KEYS}


@dataclass
class Trainer:
    """The student, the teacher, the optimizer and their compiled steps."""

    cfg: DetectorTrainConfig
    student: Any
    teacher: Any
    optimizer: Any
    priors: Priors
    val_priors: Priors
    strides: tuple[int, ...]

    def __post_init__(self) -> None:
        import tensorflow as tf

        def loss_of(x: Any, targets: dict[str, Any], training: bool) -> dict[str, Any]:
            heads = stack_heads(self.student(x, training=training), self.strides)
            priors = self.priors if x.shape[1] == self.cfg.input_size else self.val_priors
            cells, per_cell = tf.constant(priors.cells), tf.constant(priors.strides[:, None])
            return detector_loss(heads, targets, cells, per_cell, self.cfg.weights)

        @tf.function(reduce_retracing=True)
        def train_step(x: Any, targets: dict[str, Any]) -> dict[str, Any]:
            with tf.GradientTape() as tape:
                parts = loss_of(x, targets, True)
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(
                zip(tape.gradient(parts["total"], variables), variables, strict=True)
            )
            return parts

        @tf.function(reduce_retracing=True)
        def teacher_step(x: Any) -> dict[str, Any]:
            return stack_heads(self.teacher(x, training=False), self.strides)

        @tf.function(reduce_retracing=True)
        def student_step(x: Any) -> dict[str, Any]:
            return stack_heads(self.student(x, training=False), self.strides)

        self.train_step, self.teacher_step, self.student_step = train_step, teacher_step, student_step
        self.loss_of = tf.function(lambda x, t: loss_of(x, t, False), reduce_retracing=True)

    def targets(self, batch: Batch, priors: Priors) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        x = batch.images.astype(np.float32)
        teacher = {k: np.asarray(v) for k, v in self.teacher_step(x).items()}
        return x, batch_targets(batch, teacher, priors, self.cfg.radius)

    def step(self, batch: Batch, lr: float) -> dict[str, float]:
        x, targets = self.targets(batch, self.priors)
        self.optimizer.learning_rate.assign(lr)
        return {k: float(v) for k, v in self.train_step(x, targets).items()}

    def evaluate(self, scenes: list[FaceScene]) -> dict[str, float]:
        """Held-out loss and AP@0.5 / recall / precision at the runtime's threshold, faces of any class."""
        evaluator = DetectionEvaluator(labels=("face",))
        at_threshold = DetectionEvaluator(labels=("face",))
        losses = []
        for batch in held_out_batches(scenes, self.cfg.batch_size, self.cfg.val_size):
            x, targets = self.targets(batch, self.val_priors)
            losses.append(float(self.loss_of(x, targets)["total"]) * len(x))
            heads = {k: np.asarray(v) for k, v in self.student_step(x).items()}
            boxes = decode_boxes(heads["bbox"], self.val_priors.cells, self.val_priors.strides[:, None])
            scores = np.sqrt(np.clip(heads["cls"], 0, 1) * np.clip(heads["obj"], 0, 1))
            for i, faces in enumerate(batch.faces):
                for ev, floor in ((evaluator, EVAL_CONFIDENCE), (at_threshold, REPORT_CONFIDENCE)):
                    keep = select(boxes[i], scores[i], floor, NMS, GridConfig())
                    zeros = np.zeros(len(keep), np.int64)
                    ev.add(faces, np.zeros(len(faces), np.int64), boxes[i][keep], zeros, scores[i][keep])
        s, t = evaluator.summary(), at_threshold.summary()
        return {
            "val_loss": sum(losses) / len(scenes),
            "val_ap": s["ap"]["face"],
            "val_recall": t["recall"],
            "val_precision": t["precision"],
        }


def build_trainer(cfg: DetectorTrainConfig) -> Trainer:
    import keras

    from edgemask.export.onnx_to_keras import build_keras

    path = source_path(cfg)
    strides = GridConfig().strides
    student = build_keras(path, None, batch_size=None, name="yunet_masked")
    teacher = build_keras(path, None, batch_size=None, name="yunet_teacher")
    teacher.trainable = False
    optimizer = keras.optimizers.AdamW(
        cfg.learning_rate, weight_decay=cfg.weight_decay, clipnorm=cfg.clipnorm
    )
    optimizer.build(student.trainable_variables)
    priors = priors_for(cfg.input_size, cfg.input_size, strides)
    val_priors = priors_for(cfg.val_size, cfg.val_size, strides)
    return Trainer(cfg, student, teacher, optimizer, priors, val_priors, strides)


def save_run(path: Path, trainer: Trainer, state: dict) -> None:
    optimizer = [np.asarray(v) for v in trainer.optimizer.variables]
    save_checkpoint(path, trainer.student.get_weights(), optimizer, state)


def restore(trainer: Trainer, path: Path) -> dict:
    weights, opt, state = read_checkpoint(path)
    expected = [w.shape for w in trainer.student.get_weights()]
    if [w.shape for w in weights] != expected or len(opt) != len(trainer.optimizer.variables):
        raise CheckpointError(f"{path}: damaged checkpoint (not this model's weights or optimizer)")
    trainer.student.set_weights(weights)
    for var, value in zip(trainer.optimizer.variables, opt, strict=True):
        var.assign(value)
    return state


def export_model(cfg: DetectorTrainConfig, weights: list[np.ndarray], out: Path) -> None:
    """The best weights in a fresh copy of the source graph (batch 1, any size): what the exporter takes."""
    from edgemask.export.onnx_to_keras import build_keras

    model = build_keras(source_path(cfg), None, name="yunet_masked")
    model.set_weights(weights)
    model.save(out)


def write_history(path: Path, history: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def configure_threads(threads: int) -> None:
    """TensorFlow's thread pools, if TensorFlow has not started them yet (then they stay as they are)."""
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log.warning("TensorFlow is already running: its thread pools stay as they are, not %d", threads)


def run_epoch(trainer: Trainer, scenes: list[FaceScene], epoch: int, step0: int, total: int) -> dict:
    cfg = trainer.cfg
    steps = steps_per_epoch(len(scenes), cfg.batch_size, cfg.steps_per_epoch)
    batches = train_batches(
        scenes, cfg.batch_size, cfg.input_size, cfg.augment, cfg.seed * 1000 + epoch, cfg.steps_per_epoch
    )
    sums: dict[str, float] = {}
    bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}", unit="step", leave=True)
    for i, batch in enumerate(bar):
        parts = trainer.step(batch, learning_rate(step0 + i, total, cfg))
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{sums['total'] / (i + 1):.3f}")
    return {f"train_{k}": v / steps for k, v in sums.items()}


def start_state(trainer: Trainer, out: Path, resume: bool) -> dict:
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise FileExistsError(f"{out}: a run is already here; pass --resume to continue it or a new --out")
    if resume and checkpoint.exists():
        state = restore(trainer, checkpoint)
        log.info("resuming %s after epoch %d", out, state["epoch"])
        return state
    return {"epoch": 0, "step": 0, "best_ap": -1.0, "best_epoch": 0, "history": [], "seconds": 0.0}


def train_detector(cfg: DetectorTrainConfig) -> dict:
    """Run (or resume) the fine-tuning; returns the run's summary."""
    configure_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg)
    state = start_state(trainer, out, cfg.resume)
    scenes, skipped = load_face_scenes(cfg.data, cfg.limit)
    for line in skip_lines(skipped):
        log.warning(line)
    train, held = split_scenes(scenes, cfg.val_fraction)
    log.info("%d training scenes, %d held out", len(train), len(held))
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    total = cfg.epochs * steps_per_epoch(len(train), cfg.batch_size, cfg.steps_per_epoch)
    best = trainer.student.get_weights() if state["epoch"] == 0 else read_weights(out / BEST)
    started = time.monotonic() - state["seconds"]
    while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
        epoch = state["epoch"]
        row = {"epoch": epoch + 1, "lr": learning_rate(state["step"], total, cfg)}
        row |= run_epoch(trainer, train, epoch, state["step"], total)
        row |= trainer.evaluate(held)
        row["seconds"] = round(time.monotonic() - started, 1)
        state["step"] += steps_per_epoch(len(train), cfg.batch_size, cfg.steps_per_epoch)
        state["epoch"], state["seconds"] = epoch + 1, row["seconds"]
        state["history"].append(row)
        log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        if row["val_ap"] > state["best_ap"]:
            state["best_ap"], state["best_epoch"] = row["val_ap"], epoch + 1
            best = trainer.student.get_weights()
            save_weights(out / BEST, best)
        save_run(out / CHECKPOINT, trainer, state)
        write_history(out / HISTORY, state["history"])
        if cfg.time_limit_min is not None and row["seconds"] > cfg.time_limit_min * 60:
            log.info("time limit reached after epoch %d", epoch + 1)
            break
    export_model(cfg, best, out / MODEL)
    summary = {
        "model": str(out / MODEL),
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_ap": state["best_ap"],
        "train_seconds": state["seconds"],
        "train_scenes": len(train),
        "held_out_scenes": len(held),
    }
    record = training_record(out, summary)
    (out / MODEL).with_suffix(".training.json").write_text(json.dumps(record, indent=2) + "\n")
    return summary
