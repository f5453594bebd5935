"""What gets exported: each source model as a Keras model plus the metadata its files will carry.

Every source ends up as a Keras model taking raw 0-255 pixels (normalization inside), so one export path
(:mod:`export.tflite`, :mod:`export.onnx`) serves the YuNet ONNX graph, the res10 Caffe detector and the
Keras classifier alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgemask import __version__
from edgemask.assets import REPO_ROOT, file_digest
from edgemask.core.detectors import res10, yunet
from edgemask.core.formats import FORMATS, MODELS, format_of
from edgemask.core.metadata import GridConfig, ModelMeta
from edgemask.core.ops.yunet import HEAD_KINDS
from edgemask.export.caffe_proto import CaffeFormatError, read_caffemodel, read_prototxt
from edgemask.labels import LABELS

CAFFE_MEAN = (104.0, 177.0, 123.0)
DEFAULT_KERAS = REPO_ROOT / "models" / "mask_classifier.keras"
"""The classifier edgemask-train writes, and edgemask-export converts unless --classifier names another."""
DETECTOR_LABELS = ("background", "face")


class SourceError(ValueError):
    """A source model that cannot be exported: unreadable, or not what edgemask expects."""


@dataclass(frozen=True)
class ExportSource:
    """A Keras model ready to convert, and the metadata every file made from it carries."""

    name: str  # the model's key in edgemask.core.formats.MODELS
    model: Any  # keras.Model, ``x (batch, h, w, 3) float32 0-255 -> outputs``
    meta: ModelMeta
    input_shape: tuple[int | None, ...]
    output_names: tuple[str, ...]  # the Keras model's outputs, in the order of ``keras_outputs``

    def keras_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Run the Keras model; outputs as float32 arrays in ``output_names`` order."""
        y = self.model(x.astype(np.float32), training=False)
        if isinstance(y, dict):
            return [np.asarray(y[k], np.float32) for k in self.output_names]
        return [np.asarray(y, np.float32)]

    def output_shapes(self) -> dict[str, tuple[int | None, ...]]:
        out = self.model.output
        if isinstance(out, dict):
            return {k: tuple(out[k].shape) for k in self.output_names}
        return {self.output_names[0]: tuple(out.shape)}

    def file_meta(self, precision: str, outputs: tuple[str, ...], **extra: Any) -> ModelMeta:
        return replace(self.meta, precision=precision, outputs=outputs, extra={**self.meta.extra, **extra})


def load_res10(
    prototxt: str | os.PathLike, caffemodel: str | os.PathLike, size: tuple[int, int] | None = None
) -> ExportSource:
    """OpenCV's res10 SSD rebuilt in Keras; ``size`` ``(h, w)`` fixes the input, None keeps it dynamic."""
    from edgemask.export.caffe_net import ssd_config
    from edgemask.export.caffe_to_keras import build_caffe_ssd

    prototxt, caffemodel = Path(prototxt), Path(caffemodel)
    net = read_prototxt(prototxt)
    weights = read_caffemodel(caffemodel)
    try:
        ssd, caffe_thresholds = ssd_config(net)
        model = build_caffe_ssd(net, weights, CAFFE_MEAN, size)
    except CaffeFormatError as e:
        raise CaffeFormatError(f"{prototxt} + {caffemodel.name}: {e}") from e
    meta = ModelMeta(
        task="detect",
        precision="",
        input_size=size if size else (None, None),
        labels=DETECTOR_LABELS,
        channel_order="BGR",
        mean=CAFFE_MEAN,
        thresholds={"confidence": res10.DEFAULT_CONFIDENCE, "nms": caffe_thresholds["nms"]},
        family=res10.FAMILY,
        operating_point=dict(res10.OPERATING_POINT),
        ssd=ssd,
        sources={prototxt.name: file_digest(prototxt), caffemodel.name: file_digest(caffemodel)},
        edgemask_version=__version__,
        extra={"caffe_confidence_threshold": caffe_thresholds["confidence"]},
    )
    h, w = size if size else (None, None)
    return ExportSource("res10", model, meta, (1, h, w, 3), ("loc", "conf"))


def load_yunet(path: str | os.PathLike, size: tuple[int, int] | None = None) -> ExportSource:
    """YuNet's ONNX file rebuilt in Keras (NHWC BGR pixels in, the 12 head outputs out); ``size``
    ``(h, w)`` fixes the input (multiples of 32), None keeps it dynamic."""
    from edgemask.export.onnx_graph import OnnxConversionError
    from edgemask.export.onnx_to_keras import build_keras

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: YuNet ONNX file not found (pass --yunet or set $EDGEMASK_ASSETS)")
    try:
        model = build_keras(path, size)
    except OnnxConversionError as e:
        raise SourceError(f"{path}: cannot rebuild as a YuNet detector: {e}") from e
    names = tuple(f"{kind}_{s}" for kind in HEAD_KINDS for s in GridConfig().strides)
    missing = sorted(set(names) - set(model.output))
    if missing:
        raise SourceError(f"{path}: not a YuNet detector (no outputs {', '.join(missing)})")
    meta = ModelMeta(
        task="detect",
        precision="",
        input_size=size if size else (None, None),
        labels=DETECTOR_LABELS,
        channel_order="BGR",
        thresholds={"confidence": yunet.DEFAULT_CONFIDENCE, "nms": yunet.DEFAULT_NMS},
        family=yunet.FAMILY,
        operating_point=dict(yunet.OPERATING_POINT),
        grid=GridConfig(),
        sources={path.name: file_digest(path)},
        edgemask_version=__version__,
    )
    h, w = size if size else (None, None)
    return ExportSource("yunet", model, meta, (1, h, w, 3), names)


def load_fine_tuned_yunet(
    keras_path: str | os.PathLike, onnx_path: str | os.PathLike, size: tuple[int, int] | None = None
) -> ExportSource:
    """A YuNet fine-tuned by ``edgemask-train detector``: its ``.keras`` weights in the source ONNX graph
    rebuilt at ``size`` (so a fixed-size fallback is the same network), with the training record
    (``<stem>.training.json`` beside the file, when there) and its own score threshold (the model
    table's) in the metadata."""
    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise SourceError(
            f"{keras_path}: fine-tuned YuNet not found (train one with edgemask-train detector)"
        )
    from edgemask.training.classifier.model import KerasFileError, load_keras_model

    base = load_yunet(onnx_path, size)
    try:
        weights = load_keras_model(keras_path).get_weights()
    except KerasFileError as e:
        raise SourceError(str(e)) from e
    if [w.shape for w in weights] != [w.shape for w in base.model.get_weights()]:
        raise SourceError(
            f"{keras_path}: not a fine-tuned {Path(onnx_path).name} (its weights differ in shape)"
        )
    base.model.set_weights(weights)
    record = keras_path.with_suffix(".training.json")
    training = json.loads(record.read_text()) if record.is_file() else {}
    meta = replace(
        base.meta,
        thresholds={**base.meta.thresholds, "confidence": MODELS["yunet_masked"].confidence},
        sources={**base.meta.sources, keras_path.name: file_digest(keras_path)},
        extra={**base.meta.extra, "training": training},
    )
    return replace(base, name="yunet_masked", meta=meta)


def load_classifier(path: str | os.PathLike) -> ExportSource:
    """The trained Keras classifier, checked to be ``(s, s, 3)`` pixels -> 2 softmax probabilities."""
    path = Path(path)
    if not path.is_file():
        hint = " (train one with edgemask-train, or pass --classifier PATH)" if path == DEFAULT_KERAS else ""
        raise SourceError(f"{path}: Keras classifier file not found{hint}")
    if path.suffix.lower() in {f.suffix for f in FORMATS.values()}:
        raise SourceError(
            f"{path}: an exported {format_of(path).runtime} model file; --classifier takes the Keras "
            "classifier (.keras) that edgemask-train writes"
        )
    from edgemask.training.classifier.model import KerasFileError, load_keras_model

    try:
        model = load_keras_model(path)
    except KerasFileError as e:
        raise SourceError(str(e)) from e
    return classifier_source(model, path)


def classifier_source(model: Any, path: Path) -> ExportSource:
    """Validate a loaded Keras classifier and describe it; ``path`` is the file it came from."""
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise SourceError(f"{path}: expected one square (size, size, 3) image input, got {model.input_shape}")
    if isinstance(model.output_shape, list) or tuple(model.output_shape)[1:] != (len(LABELS),):
        raise SourceError(f"{path}: expected 2 outputs (with_mask, without_mask), got {model.output_shape}")
    size = int(shape[1])
    probe = np.random.default_rng(0).integers(0, 256, (2, size, size, 3)).astype(np.float32)
    probs = np.asarray(model(probe, training=False))
    if not (np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
        raise SourceError(f"{path}: outputs are not softmax probabilities (rows must sum to 1)")
    mean, scale = rescaling_of(model)
    meta = ModelMeta(
        task="classify",
        precision="",
        input_size=(size, size),
        labels=LABELS,
        family="mobilenetv2",
        channel_order="RGB",
        mean=mean,
        scale=scale,
        sources={path.name: file_digest(path)},
        edgemask_version=__version__,
    )
    return ExportSource("classifier", model, meta, (None, size, size, 3), ("probs",))


def rescaling_of(model: Any) -> tuple[tuple[float, ...], float]:
    """``(mean, scale)`` of the model's first Rescaling layer (``x * s + o`` = ``(x - mean) * scale``)."""
    import keras

    for layer in nested_layers(model):
        if isinstance(layer, keras.layers.Rescaling):
            s = float(np.ravel(layer.scale)[0])
            o = float(np.ravel(layer.offset)[0])
            return (-o / s,) * 3, s
    return (0.0, 0.0, 0.0), 1.0


def nested_layers(model: Any) -> list[Any]:
    """Every layer, depth first, including those inside nested models (e.g. a MobileNetV2 backbone)."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(nested_layers(layer))
    return found
