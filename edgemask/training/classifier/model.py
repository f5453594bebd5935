"""The mask classifier: raw RGB uint8 pixels -> Rescaling -> MobileNetV2 (ImageNet) -> head -> softmax(2).

Normalization lives inside the model so every exporter and runtime feeds the same 0-255 pixels.
MobileNetV2's convolutional weights do not depend on the input size, so the 224 px ImageNet file that
:func:`edgemask.assets.keras_home` provides serves every ``--input-size``.
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any

from edgemask.assets import MOBILENET_V2_NO_TOP
from edgemask.labels import LABELS

BACKBONE_NAME = "mobilenetv2"


class KerasFileError(ValueError):
    """A Keras model file that cannot be loaded: damaged, truncated, or not a model."""


def load_keras_model(path: str | os.PathLike) -> Any:
    """A ``.keras`` file, checked first to be a whole zip archive (every member's CRC): Keras reports a
    damaged archive as "File not found"."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise KerasFileError(
            f"{path}: not a loadable Keras model: damaged, truncated or not a .keras zip archive ({e})"
        ) from e
    if broken is not None:
        raise KerasFileError(f"{path}: not a loadable Keras model: damaged ({broken} fails its CRC check)")
    configure_keras_home()
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad archive
        message = first_sentence(str(e))
        raise KerasFileError(f"{path}: not a loadable Keras model ({type(e).__name__}: {message})") from e


def first_sentence(text: str) -> str:
    """The first line of ``text`` up to its first full stop: Keras's messages run on for paragraphs, and
    a cut at a fixed length ends mid-word."""
    line = (text.strip().splitlines() or [""])[0]
    return re.split(r"(?<=\.)\s+(?=[A-Z])", line, maxsplit=1)[0]


def configure_keras_home() -> str | None:
    """Point KERAS_HOME at the offline ImageNet weights; must run before ``import keras``. Returns the
    weights file, or None when absent (Keras will then try to download)."""
    from edgemask.assets import keras_home

    home = keras_home()
    if home is None:
        return None
    os.environ.setdefault("KERAS_HOME", str(home))
    path = home / "models" / os.path.basename(MOBILENET_V2_NO_TOP)
    return str(path) if path.exists() else None


def build_classifier(
    input_size: int = 224,
    fine_tune_from: int | None = 100,
    dropout: float = 0.3,
    head_units: int = 128,
    imagenet: bool = True,
):
    """Build the (uncompiled) Keras model.

    ``fine_tune_from``: index of the first backbone layer that trains (MobileNetV2 has 154 layers; lower
    ones keep generic ImageNet features); None freezes the whole backbone. BatchNorm layers always run in
    inference mode so fine-tuning on small batches does not wreck their statistics.
    """
    weights_file = configure_keras_home() if imagenet else None
    import keras

    weights = None
    if imagenet:
        weights = weights_file or "imagenet"
    base = keras.applications.MobileNetV2(
        input_shape=(input_size, input_size, 3), include_top=False, weights=weights, name=BACKBONE_NAME
    )
    set_trainable(base, fine_tune_from)
    inputs = keras.Input((input_size, input_size, 3), name="rgb_uint8_pixels")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(head_units, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="mask_probs", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="edgemask_classifier")


def set_trainable(base, fine_tune_from: int | None) -> None:
    """Freeze backbone layers below ``fine_tune_from`` (all of them when None); BatchNorm stays frozen."""
    import keras

    base.trainable = fine_tune_from is not None
    if fine_tune_from is None:
        return
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= fine_tune_from and not isinstance(layer, keras.layers.BatchNormalization)


def input_size_of(model) -> int:
    """The square input side of a Keras classifier."""
    return int(model.input_shape[1])
