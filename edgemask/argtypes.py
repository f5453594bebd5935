"""Value parsers for every edgemask command line: each checks its range, so a bad value is refused by
argparse (usage line, exit 2) before any work starts."""

from __future__ import annotations

import argparse
from collections.abc import Callable

MIN_NETWORK_SIDE = 32
"""Detector inputs are padded or rounded to multiples of 32 px; nothing smaller can run."""
MAX_NETWORK_SIDE = 4096
"""Past a 4K frame's long side. The detector's time and working memory grow with the input's pixels
(YuNet int8: 21 MB at 640², 82 MB at 1280², 326 MB at 2560²), so 4096² needs ~0.8 GB, more than a small
device has."""
COSTLY_NETWORK_SIDE = 1280
"""Above this long side a detector input is accepted with a warning: 4x a 640-px input's pixels."""
MAX_THREADS = 256
"""Thread counts are capped well above any core count a device has: each thread is an OS thread."""


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after an option's help, unless the help names its default already, there is none
    or the option is a flag: argparse's own formatter printed ``(default: scenes_dev from the assets)
    (default: None)`` and ``(default: False)``."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.nargs == 0:
            return text
        return super()._get_help_string(action)


def _number(text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what}") from None


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: must be at least {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def whole_in_range(low: int, high: int) -> Callable[[str], int]:
    """A whole number in ``[low, high]``."""

    def parse(text: str) -> int:
        value = int(_number(text, int))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: expected a whole number from {low} to {high}")
        return value

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def in_range(low: float, high: float) -> Callable[[str], float]:
    """A number in ``[low, high]``."""

    def parse(text: str) -> float:
        value = float(_number(text, float))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text}: expected a value from {low:g} to {high:g}")
        return value

    parse.__name__ = f"number in [{low:g}, {high:g}]"
    return parse


fraction = in_range(0.0, 1.0)
network_side = whole_in_range(MIN_NETWORK_SIDE, MAX_NETWORK_SIDE)
thread_count = whole_in_range(1, MAX_THREADS)


def side_or_off(minimum: int = MIN_NETWORK_SIDE, maximum: int = MAX_NETWORK_SIDE) -> Callable[[str], int]:
    """A network side in pixels (``minimum`` to ``maximum``), or ``off`` / ``0`` (returned as 0)."""
    side = whole_in_range(minimum, maximum)

    def parse(text: str) -> int:
        return 0 if text.lower() in ("off", "none", "0") else side(text)

    parse.__name__ = "size or off"
    return parse


def size_wh(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)`` (width, height); ``"300"`` → ``(300, 300)``; both positive."""
    w, _, h = text.lower().partition("x")
    try:
        size = (int(w), int(h or w))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad size {text!r}: expected N or WIDTHxHEIGHT, e.g. 300 or 640x480"
        ) from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: sizes must be positive")
    return size


def size_hw(text: str) -> tuple[int, int]:
    """A network input ``N`` or ``WxH`` → ``(height, width)``, each side from 32 to 4096 px."""
    width, height = size_wh(text)
    if not MIN_NETWORK_SIDE <= min(width, height) <= max(width, height) <= MAX_NETWORK_SIDE:
        raise argparse.ArgumentTypeError(
            f"bad size {text!r}: each side must be from {MIN_NETWORK_SIDE} to {MAX_NETWORK_SIDE}"
        )
    return height, width


DEFAULT_HOST = "127.0.0.1"
"""Where a server listens unless told otherwise: this machine only, so nothing is exposed by accident."""
MAX_PORT = 65535


def host_port(text: str) -> tuple[str, int]:
    """``"8080"`` → ``("127.0.0.1", 8080)``; ``"0.0.0.0:8080"``, ``"[::]:8080"`` (IPv6 in brackets);
    port 0 asks the system for a free port."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise argparse.ArgumentTypeError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
    if not host or any(c.isspace() or c in "[]/" for c in host):
        raise argparse.ArgumentTypeError(f"{text!r}: expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080")
    if not (port.isascii() and port.isdigit()) or int(port) > MAX_PORT:
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be a whole number from 0 to {MAX_PORT}")
    return host, int(port)
