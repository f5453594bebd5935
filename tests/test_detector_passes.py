"""The detector's scale passes: sizes for squashed, keep-aspect and fixed-size runs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.core.detectors.res10 import (
    DEFAULT_INPUT_SIZE,
    PAIRED_INPUT_SIZE,
    SIZE_STEP,
    ScalePass,
    scale_passes,
)


def test_passes_hand_computed() -> None:
    classic, small = scale_passes(300, 640)
    assert classic.network_size(366, 512) == (300, 300)
    # 366x512 scaled to a 640 longest side is 457.5x640; the short side rounds to 448.
    assert small.network_size(366, 512) == (448, 640)
    assert ScalePass((360, 480), keep_aspect=False).network_size(1080, 1920) == (360, 480)
    assert scale_passes(300, None) == (classic,)
    assert scale_passes(640, 300) == (ScalePass(640, keep_aspect=False),)


def test_default_squashed_size_depends_on_the_small_face_pass() -> None:
    squashed, small = scale_passes(None, 512)
    assert squashed == ScalePass(PAIRED_INPUT_SIZE, keep_aspect=False)
    assert small.size == 512 and small.keep_aspect
    assert scale_passes(None, None) == (ScalePass(DEFAULT_INPUT_SIZE, keep_aspect=False),)
    assert scale_passes(None, 200) == (ScalePass(DEFAULT_INPUT_SIZE, keep_aspect=False),)


@given(h=st.integers(1, 4000), w=st.integers(1, 4000), size=st.sampled_from([320, 640, 800]))
@settings(max_examples=100, deadline=None)
def test_keep_aspect_sizes_are_steps_close_to_the_aspect(h: int, w: int, size: int) -> None:
    nh, nw = ScalePass(size, keep_aspect=True).network_size(h, w)
    assert nh % SIZE_STEP == 0 and nw % SIZE_STEP == 0
    assert max(nh, nw) == size
    assert abs(min(nh, nw) - min(h, w) * size / max(h, w)) <= SIZE_STEP / 2 or min(nh, nw) == SIZE_STEP
