"""Quantization helpers and the loader's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgemask.core.backends import MAX_INTERPRETERS, BackendError, dequantize, load_backend, quantize


@given(
    x=arrays(np.float32, 20, elements=st.floats(-3, 3, width=32)),
    scale=st.floats(0.01, 0.1),
    zero=st.integers(-20, 20),
)
@settings(max_examples=60, deadline=None)
def test_quantize_round_trip_within_half_a_step(x, scale, zero) -> None:
    q = quantize(x, scale, zero, np.int8)
    assert q.dtype == np.int8
    back = dequantize(q, scale, zero)
    inside = (x / scale + zero >= -128) & (x / scale + zero <= 127)
    assert np.all(np.abs(back - x)[inside] <= scale / 2 + 1e-6)


def test_quantize_saturates_and_passes_raw_pixels_through() -> None:
    assert quantize(np.array([1000.0, -1000.0]), 1.0, 0, np.int8).tolist() == [127, -128]
    pixels = np.array([0, 17, 255], np.uint8)
    assert quantize(pixels, 1.0, 0, np.uint8) is pixels


def test_loader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="unknown model format"):
        load_backend(tmp_path / "model.pt")
    with pytest.raises(BackendError, match="not found"):
        load_backend(tmp_path / "missing.tflite")


def test_every_format_of_the_table_has_a_runtime_class() -> None:
    from edgemask.core.backends import BACKENDS
    from edgemask.core.formats import FORMATS, format_of, model_filename

    assert set(BACKENDS) == set(FORMATS)
    for name, fmt in FORMATS.items():
        assert format_of(model_filename("yunet", name, fmt.precisions[0])) is fmt
        assert format_of(f"MODEL{fmt.suffix.upper()}") is fmt


CLASSIFIER = Path(__file__).resolve().parent.parent / "models" / "mask_classifier_int8.tflite"


def test_interpreters_are_bounded_and_resizing_gives_the_same_answers() -> None:
    """A new input shape takes over the least recently used interpreter (resized in place) once
    ``max_interpreters`` exist; its answers match a backend that only ever saw that shape."""
    pytest.importorskip("ai_edge_litert")
    rng = np.random.default_rng(0)
    batches = {n: rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8) for n in (1, 2, 3)}
    expected = {n: load_backend(CLASSIFIER).run(x)[0] for n, x in batches.items()}
    backend = load_backend(CLASSIFIER)
    assert backend.max_interpreters == MAX_INTERPRETERS == 1
    for n in (1, 2, 3, 1, 3):
        np.testing.assert_array_equal(backend.run(batches[n])[0], expected[n])
        assert list(backend._by_shape) == [(n, 128, 128, 3)]
    backend.keep_shapes(2)
    for n in (1, 2, 1, 2, 3):
        np.testing.assert_array_equal(backend.run(batches[n])[0], expected[n])
    assert list(backend._by_shape) == [(2, 128, 128, 3), (3, 128, 128, 3)]
