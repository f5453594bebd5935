"""The one label vocabulary: classifier outputs, data folders, VOC class names and reported names.

A class has one *name* (``with_mask``), used by the model files, the training folders, the VOC
annotations and the sorted-crop folders, and one *short* name (``mask``) that users see in JSON lines
and summaries. Either form is accepted wherever a label is read back.
"""

from __future__ import annotations

LABELS = ("with_mask", "without_mask")
"""Classifier output order. Index 0 is a masked face."""
SHORT = {"with_mask": "mask", "without_mask": "no_mask"}
"""Reported names, as in ``edgemask-run --json``."""
INCORRECT = "mask_weared_incorrect"
"""The third VOC class of the scene sets: a mask below the nose. Neither label; scored apart."""
VOC_CLASSES = (*LABELS, INCORRECT)
IGNORE = -1
"""Label index of a face that is scored neither as masked nor as unmasked (``mask_weared_incorrect``, VOC
``difficult``): a detection of it is neither hit nor miss."""


def short_name(label: str) -> str:
    """``with_mask`` → ``mask``; an unknown label is reported as it is."""
    return SHORT.get(label, label)


def label_index(name: str) -> int:
    """Index into :data:`LABELS` of a class name or a short name; ``ValueError`` for anything else."""
    for i, label in enumerate(LABELS):
        if name in (label, SHORT[label]):
            return i
    raise ValueError(f"unknown label {name!r}; expected one of {LABELS} or {tuple(SHORT.values())}")


def full_name(name: str) -> str:
    """``mask`` or ``with_mask`` → ``with_mask`` (the folder and class name)."""
    return LABELS[label_index(name)]
