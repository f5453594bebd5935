"""What one image contributes to a sort: its face crops and manifest rows, computed without touching the
disk, so the local loop and a distributed worker cut exactly the same crops and a single writer
(:class:`~edgemask.app.sorting.manifest.SortFolder`) files them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgemask.app.outfiles import safe_name
from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.core.pipeline import Box, Face


@dataclass(frozen=True)
class SortedFace:
    """One face of a sorted image: ``pixels`` is exactly what the classifier saw, ``name`` the crop file's
    name before any numbering (derived from the source and the face's index)."""

    index: int
    label: str
    box: Box
    score: float
    face_score: float
    pixels: np.ndarray
    name: str


@dataclass(frozen=True)
class SortedImage:
    """An image's faces for the sort, with the source it came from, its path inside the input (``key``)
    and the SHA-256 of its bytes."""

    source: str
    key: str
    digest: str
    faces: tuple[SortedFace, ...]


def crop_name(key: str, index: int) -> str:
    """``day1/img_001.jpg``, face 2 → ``day1__img_001_face2.jpg``: one safe path component per image's
    path inside the input and face."""
    return f"{safe_name(os.path.splitext(key)[0])}_face{index}.jpg"


def crop_rows(
    source: str, key: str, digest: str, image: np.ndarray, faces: Sequence[Face], margin: float
) -> SortedImage:
    """The crops of ``image``'s ``faces``: each face's own crop box (``Face.crop``), or for a face without
    one the same rule the pipeline applies, grown by ``margin``. ``source`` is what the manifest records
    (the file's absolute path), ``key`` its path inside the input, which names the crops."""
    h, w = image.shape[:2]
    sorted_faces = []
    for k, face in enumerate(faces):
        box = face.crop if face.crop is not None else tuple(face_crop_boxes(face.box, margin, w, h)[0])
        sorted_faces.append(
            SortedFace(
                k,
                face.label,
                face.box,
                face.score,
                face.face_score,
                crop(image, box).copy(),
                crop_name(key, k),
            )
        )
    return SortedImage(source, key, digest, tuple(sorted_faces))
