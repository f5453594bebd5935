"""The mask classifier through the shipped int8 file: batching never changes an answer, and nothing in
gives nothing out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemask.core.classifier import MAX_BATCH, MaskClassifier
from edgemask.core.formats import DEFAULT_VARIANT

MODELS = Path(__file__).resolve().parent.parent / "models"


@pytest.fixture(scope="module")
def classifier() -> MaskClassifier:
    path = DEFAULT_VARIANT.path(MODELS, "classifier")
    if not path.is_file():
        pytest.skip(f"{path.name} not exported yet")
    return MaskClassifier(path)


def test_batches_answer_as_single_faces(classifier: MaskClassifier) -> None:
    rng = np.random.default_rng(7)
    sizes = rng.integers(8, 90, (9, 2))
    faces = [rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8) for h, w in sizes]
    together = classifier.infer(faces)  # batches of 4, 4 and 1
    assert len(faces) > 2 * MAX_BATCH
    assert together.shape == (9, 2)
    one_by_one = np.concatenate([classifier.infer([f]) for f in faces])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=0.02)  # softmax, after int8 rounding


def test_no_faces_give_an_empty_answer(classifier: MaskClassifier) -> None:
    assert classifier.infer([]).shape == (0, 2)
