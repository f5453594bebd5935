"""FAR, FRR, confusion and per-class scores on hand-computed cases."""

import math

import numpy as np
import pytest

from edgemask.evaluation.metrics import (
    classification_metrics,
    confusion_matrix,
    format_confusion,
    format_report,
    save_confusion_png,
)

# 4 masked faces (one called unmasked), 3 unmasked faces (one called masked).
Y_TRUE = [0, 0, 0, 0, 1, 1, 1]
Y_PRED = [0, 0, 0, 1, 1, 1, 0]


def test_confusion_rows_are_truth_columns_are_prediction():
    cm = confusion_matrix([0, 0, 1, 1, 1], [1, 1, 1, 0, 1])
    assert cm.tolist() == [[0, 2], [1, 2]]


def test_hand_computed_rates():
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["confusion"] == [[3, 1], [1, 2]]
    assert m["n"] == 7
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["frr"] == pytest.approx(1 / 4)  # masked called unmasked / masked
    assert m["far"] == pytest.approx(1 / 3)  # unmasked called masked / unmasked
    masked, unmasked = m["per_class"]["with_mask"], m["per_class"]["without_mask"]
    assert masked["precision"] == pytest.approx(3 / 4)
    assert masked["recall"] == pytest.approx(3 / 4)
    assert masked["f1"] == pytest.approx(3 / 4)
    assert unmasked["precision"] == pytest.approx(2 / 3)
    assert unmasked["recall"] == pytest.approx(2 / 3)
    assert (masked["support"], unmasked["support"]) == (4, 3)


def test_asymmetric_errors_land_in_the_right_rate():
    # Every unmasked face accepted as masked, every masked face right: FAR 1, FRR 0.
    m = classification_metrics([0, 0, 1, 1], [0, 0, 0, 0])
    assert (m["far"], m["frr"], m["accuracy"]) == (1.0, 0.0, 0.5)
    assert m["per_class"]["with_mask"]["precision"] == pytest.approx(0.5)


def test_missing_class_gives_nan_not_a_crash():
    m = classification_metrics([0, 0], [0, 1])
    assert math.isnan(m["far"])
    assert m["frr"] == 0.5
    assert math.isnan(m["per_class"]["without_mask"]["recall"])


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 2], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix([0, 1], [0])


def test_text_outputs_carry_the_numbers():
    m = classification_metrics(Y_TRUE, Y_PRED)
    table = format_confusion(np.array(m["confusion"]))
    assert table.splitlines()[1].split()[-2:] == ["3", "1"]
    assert table.splitlines()[2].split()[-2:] == ["1", "2"]
    report = format_report(m)
    assert "FAR 0.3333" in report and "FRR 0.2500" in report and "accuracy 0.7143" in report


def test_confusion_png_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cm.png"
    save_confusion_png(np.array([[3, 1], [1, 2]]), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 2000
