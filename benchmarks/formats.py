"""The model files ``edgemask-export`` writes, and which of them a models folder holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MODEL_STEMS = {"detector": "face_detector", "classifier": "mask_classifier"}
FORMATS = (("tflite", "int8"), ("tflite", "fp16"), ("tflite", "fp32"), ("onnx", "int8"), ("onnx", "fp32"))
"""Every exported (format, precision); the first is the deployable default."""
RUNTIME_NAMES = {"tflite": "LiteRT", "onnx": "ONNX Runtime"}


@dataclass(frozen=True)
class Variant:
    fmt: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.fmt} {self.precision}"

    def path(self, models_dir: Path, model: str) -> Path:
        return models_dir / f"{MODEL_STEMS[model]}_{self.precision}.{self.fmt}"


VARIANTS = tuple(Variant(f, p) for f, p in FORMATS)
DEFAULT = VARIANTS[0]
VARIANT_NAMES = [v.name for v in VARIANTS]


def available(models_dir: Path, names: list[str] | None = None) -> tuple[list, list]:
    """``(variants whose detector and classifier files both exist, notes naming the missing files)``,
    among the variants ``names`` (e.g. ``"tflite int8"``; default all)."""
    found, notes = [], []
    for v in VARIANTS:
        if names and v.name not in names:
            continue
        missing = [v.path(models_dir, m) for m in MODEL_STEMS if not v.path(models_dir, m).is_file()]
        if missing:
            notes.append(f"{v.name}: skipped, missing {', '.join(p.name for p in missing)}")
        else:
            found.append(v)
    return found, notes
