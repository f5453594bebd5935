"""Every system the benchmarks compare, built the same way for the latency and the accuracy runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
from formats import Variant
from peers import AizooDetector, ClassicRecipe

from edgemask.assets import DETECTOR_CAFFEMODEL, DETECTOR_PROTOTXT, fetch, find
from edgemask.pipeline import Pipeline

PYIMAGESEARCH = "peers/pyimagesearch_mobilenetv2/face_mask_detector.model"
AIZOO = "peers/aizoo_facemask_ssd/face_mask_detection.tflite"
CLASSIC_NAMES = {
    "predict": "classic: cv2.dnn + Keras predict per face",
    "call": "classic: cv2.dnn + Keras model(x) per face",
    "batch": "classic: cv2.dnn + Keras model(x) per frame",
}
AIZOO_NAME = "AIZOO SSD (LiteRT fp32)"


def edgemask_name(variant: Variant) -> str:
    return f"edgemask {variant.name}"


def build_systems(
    models_dir: Path,
    variants: list[Variant],
    threads: int,
    classic_calls: tuple[str, ...] = ("predict",),
    aizoo: bool = True,
    **detector_options,
) -> dict[str, Callable]:
    """Name → ``infer(image_bgr)``: the edgemask pipeline per variant (runtime defaults unless
    ``detector_options`` such as ``conf_threshold`` or ``small_face_size`` say otherwise), then the classic
    recipe once per Keras calling style, then AIZOO. OpenCV is held to ``threads`` for all of them."""
    cv2.setNumThreads(threads)
    systems: dict[str, Callable] = {}
    for v in variants:
        pipeline = Pipeline.from_paths(
            v.path(models_dir, "detector"), v.path(models_dir, "classifier"), threads, **detector_options
        )
        systems[edgemask_name(v)] = pipeline.infer
    if classic_calls:
        prototxt, caffemodel, keras_file = (
            fetch(DETECTOR_PROTOTXT),
            fetch(DETECTOR_CAFFEMODEL),
            find(PYIMAGESEARCH),
        )
        for call in classic_calls:
            systems[CLASSIC_NAMES[call]] = ClassicRecipe(
                prototxt, caffemodel, keras_file, threads, call
            ).infer
    if aizoo:
        systems[AIZOO_NAME] = AizooDetector(find(AIZOO), threads).infer
    return systems
