"""The detector stage's settings (no TensorFlow, so the command line can build them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgemask.training.detector.augment import DetectorAugment


@dataclass(frozen=True)
class LossWeights:
    """libfacedetection.train's weights for YuNet."""

    obj: float = 1.0
    cls: float = 1.0
    box: float = 5.0
    landmarks: float = 0.1


@dataclass(frozen=True)
class DetectorTrainConfig:
    data: str
    out: str = "runs/detector"
    source: str | None = None
    """YuNet ONNX file to start from (default: the stock yunet_n_dynamic.onnx from the assets)."""
    input_size: int = 416
    """Training views are square at this side: ~0.11 s per image per step on 2 cores, against 0.27 s at
    640; crops of 0.5-1.5 of the short side keep face sizes near the runtime's at long side 640."""
    val_size: int = 640
    """Held-out scenes are scored whole at this long side: the runtime's (YuNet's DEFAULT_LONG_SIDE)."""
    batch_size: int = 8
    epochs: int = 20
    learning_rate: float = 3e-4
    """AdamW: the source graph's convolutions carry folded BatchNorm scales, so its gradients span four
    orders of magnitude across layers (up to ~1600 on one batch); plain SGD at any rate that moves the
    small layers wrecks the large ones in a step. Adam's per-weight steps do not care."""
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    clipnorm: float = 10.0
    val_fraction: float = 0.1
    patience: int = 8
    radius: float = 2.5
    """SimOTA's centre region, in strides."""
    seed: int = 0
    threads: int = 2
    steps_per_epoch: int | None = None
    limit: int | None = None
    time_limit_min: float | None = None
    resume: bool = False
    augment: DetectorAugment = field(default_factory=DetectorAugment)
    weights: LossWeights = field(default_factory=LossWeights)
