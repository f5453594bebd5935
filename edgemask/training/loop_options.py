"""The options every training stage shares: how many epochs and steps, how large a batch, how fast it
learns, and when it stops on time. One definition, so ``edgemask-train classifier`` and ``detector``
check and explain them alike. Imports no TensorFlow."""

from __future__ import annotations

import argparse

from edgemask.argtypes import at_least, in_range, whole_in_range


def add_loop_arguments(
    p: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    max_batch_size: int,
    learning_rate: float,
    learning_rate_help: str = "(default %(default)s)",
) -> None:
    """``--epochs``, ``--batch-size``, ``--learning-rate``, ``--steps-per-epoch`` and ``--time-limit``
    with a stage's defaults."""
    p.add_argument(
        "--epochs", type=whole_in_range(1, 10_000), default=epochs, help="at most (default %(default)s)"
    )
    p.add_argument(
        "--batch-size",
        type=whole_in_range(1, max_batch_size),
        default=batch_size,
        help="(default %(default)s)",
    )
    p.add_argument(
        "--learning-rate", type=in_range(1e-8, 1.0), default=learning_rate, help=learning_rate_help
    )
    p.add_argument(
        "--steps-per-epoch", type=at_least(1), default=None, help="cap steps per epoch (smoke tests)"
    )
    p.add_argument(
        "--time-limit",
        dest="time_limit_min",
        type=in_range(0.01, 1e6),
        default=None,
        metavar="MIN",
        help="stop after the epoch in which this many minutes have passed",
    )
