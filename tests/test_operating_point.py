"""One operating point per detector family: the shipped files record it, the runtime runs it, and the
export gate and int8 calibration feed exactly the network inputs the runtime builds for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgemask.core.detectors import DetectorOptions, default_passes, load_detector, res10, yunet
from edgemask.core.formats import DEFAULT_VARIANT, DETECTORS
from edgemask.core.imageio import list_images, read_image

FAMILIES = {"res10": res10, "yunet": yunet}
REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


def shipped(family: str) -> Path:
    path = DEFAULT_VARIANT.path(REPO_MODELS, family)
    if not path.is_file():
        pytest.skip(f"{path.name} not exported yet (edgemask-export --int8)")
    return path


@pytest.fixture(scope="module")
def frames(scenes_dir: Path) -> list[np.ndarray]:
    """Real scenes of different aspect ratios (landscape, portrait) and a tiny frame."""
    images = [read_image(p) for p in list_images(scenes_dir / "images")[:6]]
    assert len({im.shape[:2] for im in images}) > 1
    return [*images, np.full((5, 7, 3), 128, np.uint8)]


@pytest.mark.parametrize("family", DETECTORS)
def test_shipped_file_records_its_family_operating_point(family: str) -> None:
    detector = load_detector(shipped(family))
    meta = detector.backend.meta
    assert (detector.family, meta.family) == (family, family)
    assert meta.operating_point == FAMILIES[family].OPERATING_POINT
    assert detector.conf_threshold == FAMILIES[family].DEFAULT_CONFIDENCE


@pytest.mark.parametrize("family", DETECTORS)
def test_gate_and_calibration_inputs_are_the_runtime_inputs(family: str, frames: list[np.ndarray]) -> None:
    """The gate loads files with only the score threshold lowered; calibration calls default_passes."""
    runtime = load_detector(shipped(family))
    gate = load_detector(shipped(family), DetectorOptions(conf=0.05))
    for frame in frames:
        expected = runtime.passes(frame)
        for other in (gate.passes(frame), default_passes(family, frame)):
            assert [p.size for p in other] == [p.size for p in expected]
            assert all(np.array_equal(a.blob, b.blob) for a, b in zip(other, expected, strict=True))


def test_yunet_operating_point_shapes(frames: list[np.ndarray]) -> None:
    """A 400-px frame is enlarged to the 640-px long side and padded to multiples of 32."""
    for frame in frames:
        (p,) = default_passes("yunet", frame)
        (h, w), (rh, rw) = frame.shape[:2], p.resized_hw
        assert max(rh, rw) == yunet.DEFAULT_LONG_SIDE and abs(rh / rw - h / w) < 1 / min(rh, rw)
        assert all(s % 32 == 0 and r <= s < r + 32 for s, r in zip(p.size, p.resized_hw, strict=True))
