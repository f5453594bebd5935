"""Command-line values are range-checked by the parser, before any work starts, and reach the pipeline
options unchanged."""

from __future__ import annotations

import argparse
import importlib.util
import sys

import pytest
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

from edgemask.app import cli
from edgemask.argtypes import COSTLY_NETWORK_SIDE, at_least, fraction, side_or_off, size_hw, size_wh
from edgemask.export.cli import build_parser as export_parser
from edgemask.training.cli import eval_parser, train_main, train_parser


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--threads", "0"),
        ("--margin", "-5"),
        ("--margin", "5"),
        ("--min-face", "-1"),
        ("--max-frames", "0"),
        ("--detector-size", "1"),
        ("--small-face-size", "10"),
        ("--conf", "1.5"),
        ("--retries", "-1"),
        ("--camera-size", "big"),
    ],
)
def test_out_of_range_options_are_refused_by_the_parser(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--camera", "0", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_size_options() -> None:
    args = cli.build_parser().parse_args(
        ["--camera", "0", "--detector-size", "480", "--small-face-size", "off"]
    )
    options = cli.pipeline_options(args)
    assert (options.detector.size, options.detector.small_face_size) == (480, 0)
    defaults = cli.pipeline_options(cli.build_parser().parse_args(["--camera", "0"]))
    assert (defaults.detector.size, defaults.detector.small_face_size) == (None, None)
    assert (defaults.margin, defaults.min_face) == (0.1, 4)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--camera", "0", "--detector-size", "640x480"])


@given(st.integers(-1000, 1000), st.integers(-5, 50))
def test_at_least_accepts_exactly_the_values_at_or_above_the_minimum(value: int, minimum: int) -> None:
    parse = at_least(minimum)
    if value >= minimum:
        assert parse(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=f"at least {minimum}"):
            parse(str(value))


@given(st.floats(-2, 2, allow_nan=False))
def test_fraction_is_the_closed_unit_interval(value: float) -> None:
    if 0.0 <= value <= 1.0:
        assert fraction(repr(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            fraction(repr(value))


def test_sizes_and_off() -> None:
    assert size_wh("640x480") == (640, 480) and size_wh("300") == (300, 300)
    assert size_hw("640x480") == (480, 640)
    assert [side_or_off()(v) for v in ("off", "0", "None", "512")] == [0, 0, 0, 512]
    for bad, parse in (
        ("x", size_wh),
        ("0x5", size_wh),
        ("16", size_hw),
        ("31", side_or_off()),
        ("1.5", at_least(1)),
    ):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--detector-size", "5000"), ("--small-face-size", "4097"), ("--threads", "1000")],
)
def test_sizes_that_cannot_work_are_refused(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--camera", "0", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: {value}: expected a whole number from" in capsys.readouterr().err


def test_costly_sizes_get_one_warning_each() -> None:
    parse = cli.build_parser().parse_args
    assert cli.costly_sizes(parse(["--camera", "0", "--detector-size", str(COSTLY_NETWORK_SIDE)])) == []
    warnings = cli.costly_sizes(
        parse(["--camera", "0", "--detector-size", "2560", "--small-face-size", "1920"])
    )
    assert warnings == [
        "--detector-size 2560: 16x the pixels of a 640-px input; expect about 16x the detector's time and "
        "memory per frame",
        "--small-face-size 1920: 9x the pixels of a 640-px input; expect about 9x the detector's time and "
        "memory per frame",
    ]


TRAIN_REFUSED = [
    ("--input-size", "8"),
    ("--epochs", "0"),
    ("--batch-size", "0"),
    ("--learning-rate", "0"),
    ("--fine-tune-from", "200"),
    ("--dropout", "1"),
    ("--unmasked-weight", "-1"),
    ("--val-fraction", "1"),
    ("--val-low-res", "0"),
    ("--patience", "0"),
    ("--ema", "1.5"),
    ("--steps-per-epoch", "0"),
    ("--time-limit", "-3"),
    ("--low-res-prob", "2"),
    ("--occlusion-prob", "-0.1"),
    ("--low-res-min", "1"),
    ("--zoom", "3"),
    ("--occlusion-masked-prob", "2"),
    ("--mask-hue-prob", "-1"),
    ("--low-res-jpeg-prob", "1.5"),
    ("--scene-val-fraction", "1"),
    ("--patches-per-scene", "-1"),
]


@pytest.mark.parametrize(("flag", "value"), TRAIN_REFUSED)
def test_training_options_are_range_checked(flag: str, value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_parser().parse_args(["classifier", "--data", "x", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_low_res_range_must_be_ordered(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_main(["classifier", "--data", "x", "--low-res-min", "40", "--low-res-max", "20"])
    assert exit_info.value.code == 2
    assert "--low-res-min 40 is above --low-res-max 20" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("parser", "argv"),
    [
        (eval_parser, ["--model", "m.tflite", "--batch-size", "0"]),
        (eval_parser, ["--model", "m.tflite", "--margin", "2"]),
        (export_parser, ["--detector-size", "5000x300"]),
        (export_parser, ["--calib-images", "0"]),
        (export_parser, ["--gate-images", "-2"]),
    ],
)
def test_eval_and_export_options_are_range_checked(parser, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(argv)
    assert exit_info.value.code == 2


def script_parser(name: str):
    """The ``build_parser`` of a benchmark script (they import their siblings by plain name)."""
    folder = REPO / "benchmarks"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(folder))
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
        del sys.modules[spec.name]
    return module.build_parser()


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("memory", ["--interpreters", "0"]),
        ("memory", ["--rounds", "0"]),
        ("memory", ["--load-runs", "-1"]),
    ],
)
def test_benchmark_options_are_range_checked(script: str, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        script_parser(script).parse_args(argv)
    assert exit_info.value.code == 2
