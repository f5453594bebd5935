"""The sweep's pure parts on hand-made scenes and rows: the half split, filtering by confidence, the
per-half numbers, the winner per family and the default-choice rule. No model runs here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgemask.core.detectors import DetectorOptions
from edgemask.core.formats import DEFAULT_VARIANT
from edgemask.evaluation.frame_result import FrameResult
from edgemask.evaluation.sweep import (
    Run,
    Setting,
    above,
    choose_default,
    half_indices,
    meets_targets,
    res10_grid,
    sweep_rows,
    verdict_lines,
    winner,
    yunet_grid,
)
from edgemask.evaluation.timing import frame_round
from edgemask.evaluation.voc import Scene

MASK, NO_MASK = 0, 1


@given(st.integers(min_value=0, max_value=500))
def test_halves_split_the_scenes_exactly(n):
    halves = half_indices(n)
    even, odd = set(halves["even"]), set(halves["odd"])
    assert even.isdisjoint(odd)
    assert even | odd == set(range(n))
    assert (len(even), len(odd)) == ((n + 1) // 2, n // 2)


scores = st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=20)


@given(scores, st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_filtering_twice_is_filtering_at_the_higher_threshold(face_scores, a, b):
    n = len(face_scores)
    result = FrameResult.build(np.arange(4 * n).reshape(n, 4), [MASK] * n, [1.0] * n, face_scores)
    twice, once = above(above(result, a), b), above(result, max(a, b))
    assert twice.face_scores.tolist() == once.face_scores.tolist()
    assert all(s > max(a, b) for s in once.face_scores)
    assert len(once) == sum(s > max(a, b) for s in face_scores)


def scene(name: str, boxes: list, labels: list) -> Scene:
    return Scene(
        name, Path(name), np.zeros((100, 200, 3), np.uint8), np.array(boxes, float), (), np.array(labels)
    )


def test_rows_score_each_half_and_each_confidence_on_hand_made_scenes():
    # Four scenes with one 20-px face each (masked, unmasked, masked, unmasked); every scene answers
    # its face found with score 0.9 and label correct, plus a false box with score 0.5 on scene 0.
    boxes = [[10, 10, 30, 30]]
    scenes = [scene(f"s{i}", boxes, [i % 2]) for i in range(4)]
    results = []
    for i in range(4):
        found = [[10, 10, 30, 30]] + ([[100, 50, 130, 80]] if i == 0 else [])
        results.append(
            FrameResult.build(found, [i % 2] * len(found), [1.0] * len(found), [0.9, 0.5][: len(found)])
        )
    run = Run(Setting("yunet", 320), results, ms=[2.0, 4.0, 6.0, 8.0])
    rows = sweep_rows([run], scenes, {"yunet": [0.6, 0.3]})
    assert [r["conf"] for r in rows] == [0.3, 0.6]
    low, high = rows
    assert low["ms"] == high["ms"] == 5.0
    # The even half holds scenes 0 and 2 (both masked); the odd half scenes 1 and 3 (both unmasked).
    assert (low["even"]["images"], low["odd"]["images"]) == (2, 2)
    assert low["even"]["recall"] == low["odd"]["recall"] == 1.0
    assert low["even"]["recall_with_mask"] == 1.0 and math.isnan(low["odd"]["recall_with_mask"])
    # The false box (0.5) counts at 0.3 only: 2 hits and 1 false box on the even half.
    assert low["even"]["precision"] == pytest.approx(2 / 3)
    assert high["even"]["precision"] == 1.0
    # Labels are right, but each half has only one class: FAR is undefined on the even half, FRR on the
    # odd one, so no row can be said to meet the targets.
    assert math.isnan(low["even"]["far"]) and low["even"]["frr"] == 0.0
    assert not low["meets_targets"]


def row(
    setting: str,
    even: float,
    odd: float,
    ms: float,
    far: float = 0.01,
    frr: float = 0.01,
    detector: str = "yunet",
    **half: float,
) -> dict:
    """A sweep row whose halves meet every target unless told otherwise."""
    r = {"detector": detector, "setting": setting, "conf": 0.5, "ms": ms}
    for name, m in (("even", even), ("odd", odd)):
        r[name] = {
            "map": m, "far": far, "frr": frr, "recall": 0.8, "recall_lt16": 0.6, "precision": 0.8, **half
        }  # fmt: skip
    r["meets_targets"] = meets_targets(r)
    return r


def test_targets_are_inclusive_and_undefined_rates_fail():
    assert meets_targets(
        row("a", 0.70, 0.70, 1, far=0.02, frr=0.03, recall=0.78, recall_lt16=0.55, precision=0.7)
    )
    assert not meets_targets(row("a", 0.7, 0.7, 1, far=0.0201))
    assert not meets_targets(row("a", 0.7, 0.7, 1, frr=0.0301))
    assert not meets_targets(row("a", 0.7, 0.7, 1, far=float("nan")))
    assert not meets_targets(row("a", 0.7, 0.6999, 1))
    assert not meets_targets(row("a", 0.7, 0.7, 1, recall=0.7799))
    assert not meets_targets(row("a", 0.7, 0.7, 1, recall_lt16=0.5499))
    assert not meets_targets(row("a", 0.7, 0.7, 1, precision=0.6999))


def test_winner_must_be_best_on_both_halves_and_ties_go_to_the_faster():
    rows = [row("slow", 0.8, 0.7, ms=20), row("fast", 0.8, 0.7, ms=10), row("weak", 0.6, 0.6, ms=5)]
    (line,) = winner(rows, "yunet")
    assert "yunet fast, conf 0.5 wins both halves" in line


def test_no_winner_when_each_half_prefers_another_setting():
    rows = [row("even-best", 0.9, 0.60, ms=10), row("odd-best", 0.7, 0.65, ms=10), row("x", 0.5, 0.5, ms=1)]
    lines = winner(rows, "res10")
    assert "even half only: yunet even-best" in lines[0]
    assert "odd half only: yunet odd-best" in lines[1]
    # Worst halves: 0.60, 0.65, 0.5: the odd-best setting is the most robust.
    assert lines[2].endswith("best worst-half mAP: yunet odd-best, conf 0.5")
    assert winner([], "res10") == ["res10: no setting qualifies"]


def test_default_is_the_fastest_setting_meeting_every_target_then_the_best_worst_half():
    rows = [
        row("best but FAR", 0.9, 0.9, ms=5, far=0.05),
        row("imprecise", 0.9, 0.9, ms=5, precision=0.6),
        row("good", 0.8, 0.70, ms=15),
        row("same run, weaker", 0.75, 0.72, ms=8),
        row("same run, stronger", 0.78, 0.74, ms=8),
    ]
    assert choose_default(rows)["setting"] == "same run, stronger"
    assert choose_default(rows[:2]) is None


def test_verdict_lines_name_each_family_and_the_default_with_its_speed():
    rows = [
        row("long side 640", 0.8, 0.8, ms=15, far=0.03),
        row("long side 320", 0.75, 0.72, ms=12),
        row("input 224, small-face 512", 0.7, 0.7, ms=25, detector="res10"),
    ]
    lines = verdict_lines(rows, classic_ms=200)
    targets = "every target on both halves"
    assert lines[0].startswith(f"yunet: best mAP meeting {targets}: yunet long side 320")
    assert lines[1].startswith("yunet: best worst-half mAP at any rate: yunet long side 640")
    assert lines[2].startswith("res10: best mAP") and "input 224, small-face 512" in lines[2]
    # 640 misses FAR; 320 (12 ms) is faster than the res10 row (25 ms): 200 / 12 = 16.7x.
    assert lines[4].startswith("DEFAULT: yunet long side 320, conf 0.5")
    assert lines[4].endswith("16.7x the classic recipe's speed (meets the 10x target)")
    assert verdict_lines(rows, classic_ms=100)[-1].endswith(
        "8.3x the classic recipe's speed (misses the 10x target)"
    )
    assert verdict_lines(rows, classic_ms=None)[-1].endswith("(--classic-ms or the peers)")
    assert verdict_lines(rows[:1], classic_ms=200)[-1] == f"DEFAULT: no setting meets {targets}"


def test_grids_and_what_each_setting_asks_of_the_detector():
    yunet = yunet_grid([320, 640], [None, 0.4], [0.1])
    assert [(s.size, s.nms) for s in yunet] == [(320, None), (320, 0.4), (640, None), (640, 0.4)]
    assert yunet[1].label == "long side 320, nms 0.4, margin 0.1"
    res10 = res10_grid([224], [0, 512], [0.0, 0.2])
    assert [(s.small_face_size, s.margin) for s in res10] == [(0, 0.0), (0, 0.2), (512, 0.0), (512, 0.2)]
    system = res10[0].system(DEFAULT_VARIANT, conf=0.2)
    assert system.options == DetectorOptions(size=224, small_face_size=0, conf=0.2, nms=None)
    assert (system.detector, system.margin) == ("res10", 0.0)
    assert system.name == "edgemask res10 tflite int8, input 224, small-face off, margin 0"


def test_frame_round_times_every_nth_frame_after_an_untimed_call():
    calls = {"a": 0, "b": 0}

    def task(name):
        calls[name] += 1

    tasks = {name: (lambda n=name: task(n)) for name in calls}
    assert frame_round(tasks, index=1, every=3) == {}
    assert calls == {"a": 1, "b": 1}
    timed = frame_round(tasks, index=3, every=3)
    assert set(timed) == {"a", "b"} and all(ms >= 0 for ms in timed.values())
    assert calls == {"a": 3, "b": 3}  # one untimed and one timed call each
