"""Command-line values are range-checked by the parser, before any work starts, and reach the pipeline
options unchanged."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgemask.app import cli
from edgemask.argtypes import at_least, fraction, side_or_off, size_hw, size_wh


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
