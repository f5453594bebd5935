"""Stage 1: face detectors, one class per family, picked by the family a model file names."""

from __future__ import annotations

import os

import numpy as np

from edgemask.core.backends import Backend, BackendError, load_backend
from edgemask.core.detectors import res10, yunet
from edgemask.core.detectors.base import Detections, Detector, DetectorOptions, Pass
from edgemask.core.detectors.res10 import Res10Detector
from edgemask.core.detectors.yunet import YuNetDetector

__all__ = [
    "Detections",
    "Detector",
    "DetectorOptions",
    "Pass",
    "Res10Detector",
    "YuNetDetector",
    "default_passes",
    "detector_for",
    "load_detector",
]


def load_detector(
    path: str | os.PathLike, options: DetectorOptions | None = None, threads: int = 1
) -> Detector:
    """The detector class of the file's family, with ``options`` overriding the file's operating point."""
    return detector_for(load_backend(path, threads), options)


def detector_for(backend: Backend, options: DetectorOptions | None = None) -> Detector:
    """The detector class of ``backend``'s family, at the operating point its metadata records unless
    ``options`` override it."""
    options = options or DetectorOptions()
    family = backend.meta.family
    if family == YuNetDetector.family:
        if options.small_face_size:
            raise ValueError("YuNet runs one pass; --small-face-size is a res10 option")
        return YuNetDetector(backend, options.conf, options.nms, options.size)
    if family == Res10Detector.family:
        return Res10Detector(backend, options.conf, options.nms, options.size, options.small_face_size)
    raise BackendError(f"{backend.path}: not a face detector edgemask knows (family {family!r})")


def default_passes(family: str, image: np.ndarray) -> list[Pass]:
    """The network inputs a ``family`` detector builds for ``image`` at the family's default operating
    point, for a file with a dynamic input in the family's channel order. Only for where there is no
    model file nor its metadata (preprocessing digests across machines); with a file, ask its
    detector's ``passes``."""
    if family == res10.FAMILY:
        return res10.frame_passes(image, res10.scale_passes(None, res10.DEFAULT_SMALL_FACE_SIZE))
    if family == yunet.FAMILY:
        return [yunet.frame_pass(image, yunet.DEFAULT_LONG_SIDE, yunet.PAD_MULTIPLE)]
    raise ValueError(f"unknown detector family {family!r}")
