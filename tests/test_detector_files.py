"""``--detector-files``: a detector given by path is checked before any work and named by its file."""

import argparse
import shutil

import pytest
from conftest import MODELS

from edgemask.core.detectors import DetectorOptions
from edgemask.core.formats import DEFAULT_VARIANT, Variant
from edgemask.evaluation.systems import detector_file, detector_file_systems

YUNET = MODELS / "face_detector_yunet_fp32.tflite"
pytestmark = pytest.mark.skipif(not YUNET.is_file(), reason="needs the committed YuNet file in models/")


def test_a_detector_file_is_accepted_and_scored_with_the_given_classifier(tmp_path):
    tuned = tmp_path / "yunet_tuned.tflite"
    shutil.copy(YUNET, tuned)
    (system,) = detector_file_systems(
        [detector_file(str(tuned))],
        lambda family: (DetectorOptions(conf=0.4), f"{family} conf 0.4"),
        DEFAULT_VARIANT,
    )
    assert system.name == "edgemask yunet_tuned.tflite, yunet conf 0.4"
    assert (system.detector, system.variant, system.origin) == (
        "yunet",
        Variant("tflite", "fp32"),
        tuned.name,
    )
    assert system.files(MODELS) == (tuned, DEFAULT_VARIANT.path(MODELS, "classifier"))
    assert system.options.conf == 0.4


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.tflite", None, "no such file"),
        ("notes.txt", b"hello", "unknown model format"),
        ("broken.tflite", b"not a flatbuffer", "broken.tflite"),
    ],
)
def test_bad_detector_files_are_refused_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(argparse.ArgumentTypeError, match=message) as caught:
        detector_file(str(path))
    assert "\n" not in str(caught.value)


def test_a_classifier_file_is_not_a_detector():
    classifier = DEFAULT_VARIANT.path(MODELS, "classifier")
    with pytest.raises(argparse.ArgumentTypeError, match="not a face detector file"):
        detector_file(str(classifier))
