"""One training run: data -> tf.data with augmentation -> fine-tuned MobileNetV2 -> model, curves,
metrics JSON and model card. Resumable: rerun the same command and it continues from the last epoch.

Checkpoints live in ``run_dir`` (outside git): ``backup/`` (Keras BackupAndRestore: weights, optimizer,
epoch; removed when the run finishes), ``best.keras`` (lowest validation loss so far) and ``history.csv``
(appended across resumes). Decoded crops are cached in ``cache_dir`` for later runs.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgemask.labels import LABELS
from edgemask.training.classifier.augment import AugmentConfig
from edgemask.training.data import (
    DataError,
    Faces,
    class_weights,
    gather,
    load_faces,
    stratified_split,
    subset,
    with_low_res_copies,
)

log = logging.getLogger(__name__)
STRATEGIES = ("default", "mirrored", "multiworker")
SCHEDULES = ("plateau", "cosine")
CALIBRATION_CROPS = 500
"""Training crops whose activation ranges set the simulated int8 rounding (export calibrates on 300)."""


@dataclass
class TrainConfig:
    data: list[str]
    out: str = "models/mask_classifier.keras"
    run_dir: str = "runs/classifier"
    cache_dir: str = "runs/cache"
    input_size: int = 64
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-4
    fine_tune_from: int | None = 100
    dropout: float = 0.3
    unmasked_weight: float = 1.0
    val_fraction: float = 0.1
    val_low_res: tuple[int, ...] = ()
    seed: int = 1234
    patience: int = 4
    keep: str = "best"
    """"best": the epoch with the lowest validation loss; "last": the final epoch (fixed schedule, for when
    the validation set is too easy to rank epochs, as mask12k/val is)."""
    schedule: str = "plateau"
    """"plateau": cut the learning rate when validation loss stalls; "cosine": decay it to zero over the
    planned steps, for fixed schedules whose validation set cannot steer (mask12k/val is near 100 %)."""
    ema: float | None = None
    """Momentum of an exponential moving average of the weights (e.g. 0.998), which validation,
    checkpoints and the shipped model use; None trains without one."""
    strategy: str = "default"
    steps_per_epoch: int | None = None
    time_limit_min: float | None = None
    eval_data: list[str] = field(default_factory=list)
    eval_voc: list[str] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    """VOC scene folders to cut training crops from (see :mod:`edgemask.training.classifier.scenes`)."""
    detector: str | None = None
    """Detector file whose boxes give the runtime-like scene crops; None: ground-truth crops only."""
    incorrect: str = "skip"
    """What the scenes' ``mask_weared_incorrect`` faces train as: ``skip`` or a label."""
    scene_val_fraction: float = 0.1
    """Share of the scenes (all their crops together) held out for validation."""
    patches_per_scene: int = 4
    """Background patches cut from each training scene as occluder textures."""
    init_from: str | None = None
    """A trained classifier (.keras) to start from instead of ImageNet weights (fine-tuning)."""
    balance: bool = False
    """Shift the unmasked output bias so max(FAR, FRR) on the validation crops is smallest."""
    quant_aware: bool = False
    """Fine-tune through simulated int8 rounding (:mod:`~edgemask.training.classifier.quantize`); implies
    keep last."""
    card: str | None = None
    force: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def prepare_data(cfg: TrainConfig) -> tuple[Faces, Faces, dict, np.ndarray]:
    """Read train and validation crops (a seeded stratified split of train when no val/ exists), plus
    the scene crops and a seeded share of their scenes for validation; and the occluder patch bank."""
    train_files = gather(cfg.data, "train")
    if len(train_files) == 0 and not cfg.scenes:
        raise DataError(f"no training images in {', '.join(cfg.data)}")
    val_files = gather(cfg.data, "val")
    val_source = "val/ folders"
    if len(val_files) == 0 and len(train_files):
        keep, held = stratified_split(train_files.labels, cfg.val_fraction, cfg.seed)
        train_files, val_files = subset(train_files, keep), subset(train_files, held)
        val_source = f"stratified {cfg.val_fraction:.0%} of training files (seed {cfg.seed})"
    cache = Path(cfg.cache_dir)
    train = load_faces(train_files, cfg.input_size, "reading train", cache)
    val = load_faces(val_files, cfg.input_size, "reading val", cache)
    bank = np.zeros((0, 1, 1, 3), np.uint8)
    scene_info: dict = {}
    if cfg.scenes:
        from edgemask.core.pipeline import DEFAULT_MARGIN
        from edgemask.training.classifier.scenes import scene_sets

        scene_train, scene_val, bank, scene_info = scene_sets(
            cfg.scenes, cfg.input_size, cfg.detector, cfg.run_dir, DEFAULT_MARGIN, cfg.incorrect,
            cfg.patches_per_scene, cfg.seed, cfg.scene_val_fraction,
        )  # fmt: skip
        train, val = train.joined(scene_train.faces()), val.joined(scene_val.faces())
        val_source += f", plus {cfg.scene_val_fraction:.0%} of the scenes (seed {cfg.seed})"
    if cfg.val_low_res:
        val = with_low_res_copies(val, cfg.val_low_res)
        val_source += f", plus a copy of each at {'/'.join(map(str, cfg.val_low_res))} px and back"
    for name, faces in (("training", train), ("validation", val)):
        empty = [k for k, v in faces.counts().items() if v == 0]
        if empty:
            raise DataError(f"no readable {name} images of {', '.join(empty)}")
    info = {
        "folders": [str(d) for d in cfg.data],
        "train": train.counts(),
        "val": val.counts(),
        "val_source": val_source,
        "skipped": len(train.skipped) + len(val.skipped),
        **({"scenes": scene_info} if scene_info else {}),
    }
    return train, val, info, bank


def make_strategy(name: str):
    """tf.distribute strategy: ``default`` (one device), ``mirrored`` (all local GPUs/CPU), ``multiworker``
    (MultiWorkerMirroredStrategy; workers described by $TF_CONFIG, a single worker without it)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def steps_per_epoch(cfg: TrainConfig, n_train: int) -> int:
    return cfg.steps_per_epoch or math.ceil(n_train / cfg.batch_size)


def make_optimizer(cfg: TrainConfig, steps: int):
    """Adam with the configured learning-rate schedule and optional weight averaging."""
    import keras

    rate = cfg.learning_rate
    if cfg.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate, decay_steps=max(1, cfg.epochs * steps)
        )
    if cfg.ema:
        return keras.optimizers.Adam(rate, use_ema=True, ema_momentum=cfg.ema)
    return keras.optimizers.Adam(rate)


def make_dataset(faces: Faces, batch_size: int, seed: int, augment=None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((faces.images, faces.labels))
    if augment is not None:
        ds = ds.shuffle(len(faces.labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, y), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    return ds.prefetch(tf.data.AUTOTUNE)


def best_logged(history_csv: Path, key: str = "val_loss") -> float | None:
    """The lowest ``key`` in a CSVLogger file, so a resumed run keeps the best checkpoint of earlier runs."""
    rows = read_history(history_csv)
    values = [r[key] for r in rows if key in r and math.isfinite(r[key])]
    return min(values) if values else None


def read_history(history_csv: Path) -> list[dict[str, float]]:
    if not history_csv.is_file():
        return []
    with open(history_csv, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def callbacks_for(cfg: TrainConfig, run_dir: Path, started: float) -> list:
    import keras

    class TimeLimit(keras.callbacks.Callback):
        """Stop after the epoch during which the wall-clock budget ran out."""

        def on_epoch_end(self, epoch, logs=None):
            if cfg.time_limit_min and time.time() - started > 60 * cfg.time_limit_min:
                log.warning(
                    "time limit of %.0f min reached after epoch %d; stopping", cfg.time_limit_min, epoch + 1
                )
                self.model.stop_training = True

    history_csv = run_dir / "history.csv"
    stopping = (
        [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)]
        if cfg.keep == "best" and not cfg.quant_aware
        else []
    )
    checkpoint = (
        []
        if cfg.quant_aware  # the quantized copy is never saved whole: its weights go to the plain model
        else [
            keras.callbacks.ModelCheckpoint(
                str(run_dir / "best.keras"),
                monitor="val_loss",
                save_best_only=True,
                initial_value_threshold=best_logged(history_csv),
            )
        ]
    )
    plateau = (
        [
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.3, patience=max(1, cfg.patience // 2), min_lr=1e-6
            )
        ]
        if cfg.schedule == "plateau"
        else []
    )
    ema_swap = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema else []
    return [
        *ema_swap,
        *stopping,
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        *checkpoint,
        *plateau,
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        TimeLimit(),
    ]


def check_run(cfg: TrainConfig) -> Path:
    """Refuse a run that would overwrite a model or a finished run; returns the run folder, made."""
    out = Path(cfg.out)
    if out.exists() and not cfg.force:
        raise FileExistsError(f"{out} exists; pass --force to replace it")
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {cfg.strategy!r}; choose from {', '.join(STRATEGIES)}")
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose from {', '.join(SCHEDULES)}")
    run_dir = Path(cfg.run_dir)
    if (run_dir / "history.csv").exists() and not (run_dir / "backup").exists():
        raise FileExistsError(f"{run_dir} holds a finished run; pass a new --run-dir (it is kept to resume)")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def compiled_model(cfg: TrainConfig, train_faces: Faces) -> Any:
    """The classifier to train (from ImageNet or ``init_from``, quant-aware if asked), compiled."""
    import keras

    from edgemask.training.classifier.model import build_classifier

    model = build_classifier(cfg.input_size, cfg.fine_tune_from, cfg.dropout)
    if cfg.init_from:
        model.set_weights(keras.models.load_model(cfg.init_from, compile=False).get_weights())
    if cfg.quant_aware:
        from edgemask.training.classifier.quantize import activation_ranges, quant_aware_copy

        sample = np.random.default_rng(cfg.seed).permutation(len(train_faces.labels))[:CALIBRATION_CROPS]
        model = quant_aware_copy(model, activation_ranges(model, train_faces.images[np.sort(sample)]))
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch(cfg, len(train_faces.labels))),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def fit_model(
    cfg: TrainConfig,
    model: Any,
    train_faces: Faces,
    val_faces: Faces,
    bank: np.ndarray,
    run_dir: Path,
    started: float,
) -> None:
    from edgemask.training.classifier.augment import make_augmenter

    train_ds = make_dataset(
        train_faces, cfg.batch_size, cfg.seed, make_augmenter(cfg.augment, cfg.seed, bank)
    )
    val_ds = make_dataset(val_faces, cfg.batch_size, cfg.seed)
    if cfg.steps_per_epoch:
        train_ds = train_ds.repeat()
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        class_weight=class_weights(train_faces.labels, cfg.unmasked_weight),
        callbacks=callbacks_for(cfg, run_dir, started),
        verbose=1 if sys.stdout.isatty() else 2,
    )


def shipped_model(cfg: TrainConfig, model: Any, run_dir: Path) -> Any:
    """The model to ship: the kept epoch's weights in a plain (not quant-aware) classifier."""
    import keras

    from edgemask.training.classifier.model import build_classifier

    best_path = run_dir / "best.keras"
    if cfg.keep == "best" and best_path.is_file() and not cfg.quant_aware:
        model = keras.models.load_model(best_path, compile=False)
    final = build_classifier(cfg.input_size, cfg.fine_tune_from, cfg.dropout, imagenet=False)
    if cfg.quant_aware:
        from edgemask.training.classifier.quantize import plain_weights

        plain_weights(model, final)
    else:
        final.set_weights(model.get_weights())
    return final


def save_model(final: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part.keras")
    final.save(tmp)
    os.replace(tmp, out)


def evaluations_of(cfg: TrainConfig, final: Any, val_faces: Faces) -> dict:
    """Metrics on the validation crops and every ``eval_data`` / ``eval_voc`` folder."""
    from edgemask.training.evaluate import (
        KerasClassifier,
        Predictions,
        evaluate_folder,
        evaluate_voc,
        summarize,
    )

    clf = KerasClassifier(final)
    val_probs = final.predict(val_faces.images.astype(np.float32), batch_size=cfg.batch_size, verbose=0)
    evaluations = {"val": summarize(Predictions([LABELS[i] for i in val_faces.labels], list(val_probs)))}
    for folder in cfg.eval_data:
        evaluations[str(folder)] = evaluate_folder(clf, folder)
    for folder in cfg.eval_voc:
        evaluations[f"{folder} (VOC crops)"] = evaluate_voc(clf, folder)
    return evaluations


def train(cfg: TrainConfig) -> dict:
    """Run training end to end and return the metrics dict that is also written next to the model."""
    started = time.time()
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = Path(cfg.out)
    run_dir = check_run(cfg)
    train_faces, val_faces, data_info, bank = prepare_data(cfg)
    log.info("data: %s", json.dumps(data_info))

    from edgemask.training.classifier.model import configure_keras_home

    configure_keras_home()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    with make_strategy(cfg.strategy).scope():
        model = compiled_model(cfg, train_faces)
    fit_model(cfg, model, train_faces, val_faces, bank, run_dir, started)
    final = shipped_model(cfg, model, run_dir)
    bias_shift = None
    if cfg.balance:
        from edgemask.training.classifier.balance import balance_on

        bias_shift = balance_on(final, val_faces.images, val_faces.labels, cfg.batch_size)
        log.info("unmasked output bias shifted by %.3f (validation minimax FAR/FRR)", bias_shift)
    save_model(final, out)
    train_seconds = time.time() - started
    evaluations = evaluations_of(cfg, final, val_faces)
    history = read_history(run_dir / "history.csv")
    result = {
        "model": str(out),
        "model_bytes": out.stat().st_size,
        "input_size": cfg.input_size,
        "labels": list(LABELS),
        "seed": cfg.seed,
        "config": {
            **{k: v for k, v in asdict(cfg).items() if k != "augment"},
            "augment": cfg.augment.as_dict(),
        },
        "data": data_info,
        "epochs_run": len(history),
        **({"bias_shift": round(bias_shift, 4)} if bias_shift is not None else {}),
        "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(time.time() - started - train_seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), TensorFlow {tf.__version__}",
        **({"load_average": round(load_average, 2)} if load_average is not None else {}),
        "evaluations": evaluations,
    }
    write_outputs(out, result, history, cfg.card)
    return result


def write_outputs(out: Path, result: dict, history: list[dict[str, float]], card: str | None) -> None:
    """Metrics JSON and curves PNG beside the model; the model card section when ``card`` is given."""
    from edgemask.training.card import render_classifier_card, write_section
    from edgemask.training.plots import save_training_curves

    metrics_path = out.with_name(out.stem + ".metrics.json")
    metrics_path.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    if history:
        save_training_curves(history, out.with_name(out.stem + ".curves.png"))
    if card:
        write_section(Path(card), render_classifier_card(result))
