"""What edgemask-export says, without a conversion: bad input in one whole line naming the file or the
flag (exit 2, nothing written), and which library chatter it hides unless -v."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from edgemask.core.native_log import KEEP_ENV
from edgemask.export.chatter import tensorflow_chatter_dropped
from edgemask.export.cli import configure_logging, main
from edgemask.export.sources import DEFAULT_KERAS

CLASSIFIER_ONLY = ["--models", "classifier", "--formats", "onnx", "--precisions", "fp32"]
REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_a_runtime_model_file_given_as_classifier_is_named_in_one_whole_line(tmp_path: Path, caplog) -> None:
    detector = REPO_MODELS / "face_detector_yunet_int8.tflite"
    out = tmp_path / "out"
    assert main([*CLASSIFIER_ONLY, "--classifier", str(detector), "--out", str(out)]) == 2
    first, closing = error_lines(caplog)
    assert first == (
        f"{detector}: an exported LiteRT model file; --classifier takes the Keras classifier (.keras) "
        "that edgemask-train writes"
    )
    assert closing == f"nothing was written to {out}" and not out.exists()


def test_a_missing_classifier_file_is_reported_as_missing(tmp_path: Path, caplog) -> None:
    gone = tmp_path / "mine.keras"
    assert main([*CLASSIFIER_ONLY, "--classifier", str(gone), "--out", str(tmp_path / "out")]) == 2
    assert error_lines(caplog)[0] == f"{gone}: Keras classifier file not found"


def test_the_default_classifier_missing_says_how_to_make_one(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(Path, "is_file", lambda p: False if p == DEFAULT_KERAS else Path.exists(p))
    assert main([*CLASSIFIER_ONLY, "--out", str(tmp_path / "out")]) == 2
    assert error_lines(caplog)[0] == (
        f"{DEFAULT_KERAS}: Keras classifier file not found (train one with edgemask-train, or pass "
        "--classifier PATH)"
    )


@pytest.mark.parametrize(
    ("models", "flag", "default"),
    [(["classifier"], "--gate-scenes", "scenes_dev"), (["yunet"], "--gate-scenes", "scenes_dev")],
)
def test_a_missing_default_data_set_names_the_flag(
    tmp_path: Path, monkeypatch, caplog, models: list[str], flag: str, default: str
) -> None:
    monkeypatch.setenv("EDGEMASK_ASSETS", str(tmp_path / "no_assets"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yunet = ["--yunet", str(tmp_path / "yunet.onnx")]
    argv = ["--models", *models, "--formats", "onnx", "--precisions", "fp32", *yunet, "--out", str(tmp_path)]
    assert main(argv) == 2
    message = error_lines(caplog)[0]
    assert message.startswith(f"{flag}: no folder given, and its default datasets/{default} is not under ")
    assert message.endswith(f"pass {flag} FOLDER or set $EDGEMASK_ASSETS")


def test_gate_scenes_help_speaks_of_the_classifier_too(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--gate-scenes GATE_SCENES VOC scenes: the detectors are compared on them, the classifier on" in text
    )


SEEN_IN_AN_EXPORT = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796418420.273824   21630 port.cc:153] oneDNN custom operations are on.\n",
    "I0000 00:00:1796418420.274463   21630 cudart_stub.cc:31] Could not find cuda drivers on your machine\n",
    "E0000 00:00:1796418442.030817   21630 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n",
    "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: UINT8\n",
]
KEPT = [
    "E0000 00:00:1796418442.030817   21630 model_builder.cc:12] cannot build the graph\n",
    "WARNING calibration: only 8 face crops\n",
    "Traceback (most recent call last):\n",
]


def test_tensorflow_chatter_on_fd_2_is_dropped_and_the_rest_kept(capfd, monkeypatch) -> None:
    monkeypatch.delenv(KEEP_ENV, raising=False)
    with tensorflow_chatter_dropped():
        for line in [*SEEN_IN_AN_EXPORT, *KEPT]:
            os.write(2, line.encode())
    assert capfd.readouterr().err == "".join(KEPT)
    monkeypatch.setenv(KEEP_ENV, "1")
    with tensorflow_chatter_dropped():
        os.write(2, SEEN_IN_AN_EXPORT[-1].encode())
    assert capfd.readouterr().err == SEEN_IN_AN_EXPORT[-1]


@pytest.mark.parametrize("verbose", [False, True])
def test_other_libraries_info_lines_only_with_verbose(verbose: bool, monkeypatch) -> None:
    for name in (KEEP_ENV, "TF_CPP_MIN_LOG_LEVEL"):
        # set before deleted, so monkeypatch undoes what configure_logging sets: a leaked
        # EDGEMASK_NATIVE_LOG=1 let LiteRT's INFO line through in every later test's subprocess
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    configure_logging(verbose)
    assert root.isEnabledFor(logging.INFO) == verbose  # ONNX Runtime's "Increased scale[...]" lines
    assert logging.getLogger("edgemask.export").isEnabledFor(logging.INFO)
    assert (os.environ.get(KEEP_ENV) == "1") == verbose
