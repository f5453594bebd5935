"""Self-describing model files: what the runtime needs to run a model, stored inside the model itself.

ONNX files carry it as the ``metadata_props`` entry ``"edgemask"``; TFLite files as a ``metadata.json``
member of a zip archive appended to the flatbuffer (interpreters ignore trailing bytes, and ``zipfile``
finds the archive from the end). Either way it is the JSON of :class:`ModelMeta`, which also carries a
:class:`Checksum` of the model bytes (see :mod:`edgemask.core.integrity`).
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

METADATA_KEY = "edgemask"
TFLITE_MEMBER = "metadata.json"
ZIP_MEMBER_HEADER = b"PK\x03\x04"
ZIP_NAME_OFFSET = 30
"""A zip member's name follows its 30-byte local header, which starts with ``ZIP_MEMBER_HEADER``."""


class MetadataError(ValueError):
    """A model file without edgemask metadata, or with metadata this version cannot read."""


class DamagedModelError(MetadataError):
    """A model file whose bytes are not what its exporter wrote: cut short, or changed."""

    def __init__(self, path: str | os.PathLike, detail: str) -> None:
        super().__init__(
            f"{path}: damaged or truncated model file ({detail}); export it again or restore a good copy"
        )


@dataclass(frozen=True)
class Checksum:
    """SHA-256 of a model file's bytes, written by the exporter and checked by the loader.

    ``length`` is how many leading bytes it covers (TFLite: the flatbuffer before the metadata archive);
    ``None`` means the whole file with this digest replaced by zeros (ONNX, where the digest sits inside
    the bytes it covers)."""

    sha256: str
    length: int | None = None


@dataclass(frozen=True)
class PriorHead:
    """One SSD head: Caffe ``PriorBox`` parameters plus the conv/pool ``chain`` that sets its map size.

    ``chain`` lists ``(kernel, stride, pad, ceil_mode)`` for every spatial op from the input to the head,
    so the feature-map size (and the priors) can be computed for any input size.
    """

    min_size: float
    max_size: float | None
    aspect_ratios: tuple[float, ...]
    flip: bool
    clip: bool
    step: float | None
    offset: float
    chain: tuple[tuple[int, int, int, bool], ...]


@dataclass(frozen=True)
class SSDConfig:
    """Caffe ``DetectionOutput`` semantics, applied in numpy by the runtime."""

    heads: tuple[PriorHead, ...]
    variances: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    nms_threshold: float = 0.45
    top_k: int = 400
    keep_top_k: int = 200
    background_label: int = 0


@dataclass(frozen=True)
class GridConfig:
    """YuNet's anchor-free heads, decoded in numpy by :mod:`edgemask.core.ops.yunet`.

    One output per stride and kind, named ``{cls,obj,bbox,kps}_{stride}``, each ``(1, cells, C)`` with
    cells in row-major order over the ``(H / stride, W / stride)`` grid. The face score is
    ``sqrt(cls * obj)``; a box is ``centre = (col + dx, row + dy) * stride``,
    ``size = exp(dw, dh) * stride``; landmark k is ``(col + kx_k, row + ky_k) * stride``. Inputs are padded
    at the bottom and right to multiples of ``pad_multiple``.
    """

    strides: tuple[int, ...] = (8, 16, 32)
    pad_multiple: int = 32
    score: str = "sqrt(cls*obj)"
    landmarks: tuple[str, ...] = (
        "right_eye",
        "left_eye",
        "nose_tip",
        "right_mouth_corner",
        "left_mouth_corner",
    )
    top_k: int = 5000
    keep_top_k: int = 750


@dataclass(frozen=True)
class ModelMeta:
    """Everything a model file must say about itself.

    ``family`` names the network (``res10``, ``yunet``, ``mobilenetv2``): the runtime picks the detector
    class by it. ``input_size`` is ``(height, width)``; ``None`` dimensions mean the file accepts any size
    (dynamic). ``operating_point`` holds the family's default settings (sizes of the detector passes), the
    ones the export gate checked.
    ``channel_order`` is what the model expects (``"RGB"`` or ``"BGR"``); pixels go in as 0-255 values,
    normalization (``mean``/``scale`` for documentation) already happens inside the model.
    ``failed_gate`` lists why the export gate refused a file that ``edgemask-export --keep-failed``
    installed anyway; the loader warns about such a file.
    """

    task: str
    precision: str
    input_size: tuple[int | None, int | None]
    labels: tuple[str, ...]
    channel_order: str = "RGB"
    layout: str = "NHWC"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    thresholds: dict[str, float] = field(default_factory=dict)
    family: str = ""
    operating_point: dict[str, Any] = field(default_factory=dict)
    ssd: SSDConfig | None = None
    grid: GridConfig | None = None
    outputs: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    edgemask_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    failed_gate: tuple[str, ...] = ()
    checksum: Checksum | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        try:
            d = json.loads(text)
            checksum = d.pop("checksum", None)
            if checksum is not None:
                checksum = Checksum(**checksum)
            grid = d.pop("grid", None)
            if grid is not None:
                grid = GridConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in grid.items()})
            ssd = d.pop("ssd", None)
            if ssd is not None:
                heads = tuple(
                    PriorHead(
                        **{**h, "aspect_ratios": tuple(h["aspect_ratios"]), "chain": _tuples(h["chain"])}
                    )
                    for h in ssd.pop("heads")
                )
                ssd = SSDConfig(
                    heads=heads, **{k: tuple(v) if isinstance(v, list) else v for k, v in ssd.items()}
                )
            return cls(
                ssd=ssd,
                grid=grid,
                checksum=checksum,
                **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()},
            )
        except (TypeError, KeyError, AttributeError, ValueError) as e:  # JSONDecodeError is a ValueError
            raise MetadataError(f"unreadable edgemask metadata: {e}") from e


def _tuples(rows: list[list]) -> tuple[tuple, ...]:
    return tuple(tuple(r) for r in rows)


def append_tflite_metadata(path: str | os.PathLike, meta: ModelMeta) -> None:
    """Attach ``meta`` to a ``.tflite`` file in place (replacing earlier metadata is not supported)."""
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(TFLITE_MEMBER, meta.to_json())


def read_tflite_metadata(path: str | os.PathLike) -> ModelMeta:
    """The archive's ``metadata.json``; a file whose archive is damaged or gone raises
    :class:`DamagedModelError` if it shows signs of having had one (see :func:`lost_tflite_metadata`)."""
    try:
        with zipfile.ZipFile(path) as zf:
            text = zf.read(TFLITE_MEMBER).decode()
    except (zipfile.BadZipFile, KeyError, EOFError, zlib.error, UnicodeDecodeError) as e:
        if lost_tflite_metadata(path, e):
            raise DamagedModelError(path, f"its metadata archive is unreadable: {e}") from e
        raise MetadataError(
            f"{path}: no edgemask metadata (not exported by edgemask-export, or the file's end is missing)"
        ) from e
    try:
        return ModelMeta.from_json(text)
    except MetadataError as e:
        raise DamagedModelError(path, str(e)) from e


def lost_tflite_metadata(path: str | os.PathLike, error: Exception) -> bool:
    """Whether a ``.tflite`` file without readable metadata once had it: an archive that is there but
    fails its CRC, or the archive's first header still present (the end was cut off)."""
    if not isinstance(error, KeyError | zipfile.BadZipFile) or "CRC" in str(error):
        return True
    with open(path, "rb") as f:
        data = f.read()
    name = TFLITE_MEMBER.encode()
    start = data.find(name)
    while start >= 0:
        if data[start - ZIP_NAME_OFFSET : start - ZIP_NAME_OFFSET + 4] == ZIP_MEMBER_HEADER:
            return True
        start = data.find(name, start + 1)
    return False


def read_onnx_metadata(custom_metadata: dict[str, str], path: str | os.PathLike) -> ModelMeta:
    """From onnxruntime's ``get_modelmeta().custom_metadata_map`` (no ``onnx`` package needed)."""
    if METADATA_KEY not in custom_metadata:
        raise MetadataError(f"{path}: no edgemask metadata (not exported by edgemask-export?)")
    try:
        return ModelMeta.from_json(custom_metadata[METADATA_KEY])
    except MetadataError as e:
        raise DamagedModelError(path, str(e)) from e


def read_metadata(path: str | os.PathLike) -> ModelMeta:
    """The metadata of a ``.tflite`` or ``.onnx`` file."""
    path = Path(path)
    if path.suffix == ".tflite":
        return read_tflite_metadata(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        try:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own exception types for unparsable files
            raise DamagedModelError(path, f"ONNX Runtime cannot read it: {first_line(e)}") from e
        return read_onnx_metadata(sess.get_modelmeta().custom_metadata_map, path)
    raise MetadataError(f"{path}: unknown model format {path.suffix!r} (expected .tflite or .onnx)")


def first_line(error: Exception) -> str:
    """A runtime's error message, first line only: their messages run to stack dumps."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
