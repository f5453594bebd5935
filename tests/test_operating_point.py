"""One operating point per detector file: the shipped files record their family's, the runtime runs it,
and the export gate and int8 calibration feed exactly the network inputs the runtime builds for it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgemask.core.detectors import DetectorOptions, default_passes, load_detector, res10, yunet
from edgemask.core.formats import DEFAULT_VARIANT, DETECTORS, MODELS, family_of
from edgemask.core.imageio import list_images, read_image
from edgemask.export.calibration import runtime_passes

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
    kind = family_of(family)
    assert (detector.family, meta.family) == (kind, kind)
    assert meta.operating_point == FAMILIES[kind].OPERATING_POINT
    assert detector.conf_threshold == (MODELS[family].confidence or FAMILIES[kind].DEFAULT_CONFIDENCE)


@pytest.mark.parametrize("family", DETECTORS)
def test_gate_and_calibration_inputs_are_the_runtime_inputs(family: str, frames: list[np.ndarray]) -> None:
    """The gate loads files with only the score threshold lowered; calibration builds the inputs from
    the metadata the file will carry, through the same runtime class."""
    runtime = load_detector(shipped(family))
    gate = load_detector(shipped(family), DetectorOptions(conf=0.05))
    for frame in frames:
        expected = runtime.passes(frame)
        for other in (gate.passes(frame), runtime_passes(runtime.backend.meta, frame)):
            assert [p.size for p in other] == [p.size for p in expected]
            assert all(np.array_equal(a.blob, b.blob) for a, b in zip(other, expected, strict=True))


@pytest.mark.parametrize(
    ("family", "moved"), [("yunet", {"long_side": 320}), ("res10", {"small_face_size": 0})]
)
def test_calibration_follows_the_operating_point_a_file_records(
    family: str, moved: dict, frames: list[np.ndarray]
) -> None:
    """Not the family's module defaults: a file recording another operating point is calibrated on the
    inputs that point gives (the same as asking the runtime for it by option)."""
    meta = load_detector(shipped(family)).backend.meta
    assert meta.operating_point != moved
    key, value = next(iter(moved.items()))
    option = DetectorOptions(size=value) if key == "long_side" else DetectorOptions(small_face_size=value)
    by_option = load_detector(shipped(family), option)
    planned = replace(meta, operating_point=moved)
    for frame in frames:
        expected, got = by_option.passes(frame), runtime_passes(planned, frame)
        assert (
            [p.size for p in got]
            == [p.size for p in expected]
            != [p.size for p in default_passes(family, frame)]
        )
        assert all(np.array_equal(a.blob, b.blob) for a, b in zip(got, expected, strict=True))


def test_yunet_operating_point_shapes(frames: list[np.ndarray]) -> None:
    """A 400-px frame is enlarged to the 640-px long side and padded to multiples of 32."""
    for frame in frames:
        (p,) = default_passes("yunet", frame)
        (h, w), (rh, rw) = frame.shape[:2], p.resized_hw
        assert max(rh, rw) == yunet.DEFAULT_LONG_SIDE and abs(rh / rw - h / w) < 1 / min(rh, rw)
        assert all(s % 32 == 0 and r <= s < r + 32 for s, r in zip(p.size, p.resized_hw, strict=True))
