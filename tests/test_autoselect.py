"""The measured file choice: the fastest candidate wins, the cache spares a second measurement and is
invalidated by a changed file or machine, forced choices skip it, and bad caches or files are survived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.app import autoselect
from edgemask.app.autoselect import CACHE_FILE, Candidate, ChoiceCache, Chooser
from edgemask.app.models import MODELS_ENV, candidates, resolve_model
from edgemask.core.formats import Variant


class FakeRuntime:
    """Each run of a file advances a fake clock by that file's cost, so the timings are known exactly;
    ``loads`` counts every file loaded for measurement."""

    def __init__(self, costs: dict[str, float], broken: tuple[str, ...] = ()) -> None:
        self.costs = dict(costs)
        self.broken = broken
        self.now = 0.0
        self.loads: list[str] = []

    def clock(self) -> float:
        return self.now

    def load(self, model: str, path: Path, options: object):
        self.loads.append(path.name)
        if path.name in self.broken:
            raise RuntimeError("not a flatbuffer")

        def run() -> None:
            self.now += self.costs[path.name]

        return run


def shipped(folder: Path, names: dict[str, bytes]) -> list[Candidate]:
    for name, data in names.items():
        (folder / name).write_bytes(data)
    return [Candidate(Variant(*parse(n)), folder / n) for n in names]


def parse(name: str) -> tuple[str, str]:
    stem, suffix = name.rsplit(".", 1)
    return suffix, stem.rsplit("_", 1)[1]


YUNET = {
    "face_detector_yunet_int8.tflite": b"a",
    "face_detector_yunet_fp32.tflite": b"b",
    "face_detector_yunet_fp32.onnx": b"c",
}
COSTS = {"face_detector_yunet_int8.tflite": 0.008, "face_detector_yunet_fp32.tflite": 0.011}
COSTS["face_detector_yunet_fp32.onnx"] = 0.0095


def chooser(runtime: FakeRuntime, cache_path: Path, warnings: list[str]) -> Chooser:
    cache = ChoiceCache(cache_path, warnings.append)
    return Chooser(cache, warnings.append, clock=runtime.clock, load=runtime.load)


def test_fastest_is_chosen_and_the_cache_spares_the_second_measurement(tmp_path: Path) -> None:
    files = shipped(tmp_path, YUNET)
    runtime, warnings = FakeRuntime(COSTS), []
    first = chooser(runtime, tmp_path / CACHE_FILE, warnings)
    assert first.choose("yunet", files).name == "face_detector_yunet_int8.tflite"
    (choice,) = first.choices
    assert choice.times_ms == pytest.approx({"tflite int8": 8.0, "tflite fp32": 11.0, "onnx fp32": 9.5})
    assert not choice.cached
    assert sorted(runtime.loads) == sorted(YUNET)

    runtime.loads.clear()
    again = chooser(runtime, tmp_path / CACHE_FILE, warnings)
    before = runtime.now
    assert again.choose("yunet", files).name == "face_detector_yunet_int8.tflite"
    assert runtime.loads == [] and runtime.now == before
    assert again.choices[0].cached and again.choices[0].times_ms == pytest.approx(choice.times_ms, abs=0.01)
    assert "cached" in again.choices[0].summary() and warnings == []


def test_a_changed_file_or_cpu_measures_again(tmp_path: Path, monkeypatch) -> None:
    files = shipped(tmp_path, YUNET)
    runtime, warnings = FakeRuntime(COSTS), []
    chooser(runtime, tmp_path / CACHE_FILE, warnings).choose("yunet", files)
    (tmp_path / "face_detector_yunet_fp32.onnx").write_bytes(b"re-exported")
    runtime.costs["face_detector_yunet_fp32.onnx"] = 0.005
    runtime.loads.clear()
    assert chooser(runtime, tmp_path / CACHE_FILE, warnings).choose("yunet", files).suffix == ".onnx"
    assert sorted(runtime.loads) == sorted(YUNET)

    runtime.loads.clear()
    monkeypatch.setattr(autoselect, "cpu_model", lambda: "another CPU; avx2")
    chooser(runtime, tmp_path / CACHE_FILE, warnings).choose("yunet", files)
    assert sorted(runtime.loads) == sorted(YUNET)


def test_corrupt_cache_is_a_warning_and_is_replaced(tmp_path: Path) -> None:
    files = shipped(tmp_path, YUNET)
    cache_path = tmp_path / CACHE_FILE
    cache_path.write_text('{"version": 1, "entries": {')
    runtime, warnings = FakeRuntime(COSTS), []
    assert chooser(runtime, cache_path, warnings).choose("yunet", files).name.endswith("int8.tflite")
    assert len(warnings) == 1 and "unreadable" in warnings[0]
    assert len(json.loads(cache_path.read_text())["entries"]) == 1


def test_unwritable_cache_folder_keeps_the_choice_in_memory_with_one_warning(tmp_path: Path) -> None:
    files = shipped(tmp_path, YUNET)
    classifier = shipped(tmp_path, {"mask_classifier_int8.tflite": b"d", "mask_classifier_int8.onnx": b"e"})
    runtime = FakeRuntime({**COSTS, "mask_classifier_int8.tflite": 0.003, "mask_classifier_int8.onnx": 0.002})
    (tmp_path / "not_a_folder").write_text("")  # a file where the cache folder should be
    warnings: list[str] = []
    choose = chooser(runtime, tmp_path / "not_a_folder" / CACHE_FILE, warnings)
    assert choose.choose("yunet", files).name == "face_detector_yunet_int8.tflite"
    assert choose.choose("classifier", classifier).name == "mask_classifier_int8.onnx"
    assert len(warnings) == 1 and "kept in memory" in warnings[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_file_that_fails_to_load_is_skipped_for_the_next_best(tmp_path: Path) -> None:
    files = shipped(tmp_path, YUNET)
    runtime, warnings = FakeRuntime(COSTS, broken=("face_detector_yunet_int8.tflite",)), []
    choose = chooser(runtime, tmp_path / CACHE_FILE, warnings)
    assert choose.choose("yunet", files).name == "face_detector_yunet_fp32.onnx"
    assert choose.choices[0].failed == {"tflite int8": "RuntimeError: not a flatbuffer"}
    assert len(warnings) == 1 and "face_detector_yunet_int8.tflite could not run" in warnings[0]
    everything_broken = FakeRuntime(COSTS, broken=tuple(YUNET))
    with pytest.raises(ValueError, match="no yunet file could run"):
        chooser(everything_broken, tmp_path / "other.json", []).choose("yunet", files)


def test_forced_format_precision_or_path_wins(tmp_path: Path, monkeypatch) -> None:
    shipped(tmp_path, YUNET)
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))

    def never(model: str, found: list[Candidate]) -> Path:
        raise AssertionError("measured although the choice was forced")

    assert resolve_model("yunet", "onnx", "detector", "fp32", never).name == "face_detector_yunet_fp32.onnx"
    mine = tmp_path / "mine.tflite"
    mine.write_bytes(b"x")
    assert resolve_model(str(mine), "auto", "detector", "auto", never) == mine
    picked: list[list[str]] = []

    def record(model: str, found: list[Candidate]) -> Path:
        picked.append([c.variant.name for c in found])
        return found[0].path

    resolve_model("yunet", "tflite", "detector", "auto", record)
    resolve_model("yunet", "auto", "detector", "fp32", record)
    assert picked == [["tflite int8", "tflite fp32"], ["tflite fp32", "onnx fp32"]]
    assert [c.variant.name for c in candidates("yunet", "auto", "auto")] == [
        "tflite int8",
        "tflite fp32",
        "onnx fp32",
    ]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=2, max_size=3, unique=True))
def test_the_choice_is_the_cheapest_candidate(tmp_path_factory, costs: list[int]) -> None:
    folder = tmp_path_factory.mktemp("files")
    names = list(YUNET)[: len(costs)]
    files = shipped(folder, {n: YUNET[n] for n in names})
    runtime = FakeRuntime({n: c / 1000 for n, c in zip(names, costs, strict=False)})
    path = chooser(runtime, folder / CACHE_FILE, []).choose("yunet", files)
    assert path.name == names[costs.index(min(costs))]
