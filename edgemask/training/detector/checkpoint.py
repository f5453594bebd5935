"""The detector run's files: a checkpoint (weights, optimizer variables and the run's state in one
``.npz``) and the best epoch's weights. Written whole or not at all (a temporary file renamed into
place), so a run killed mid-write keeps its previous checkpoint; a file that cannot be read back is
refused by name. Numpy only."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back: truncated, corrupt, or of another model."""


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def numbered(prefix: str, values: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}_{i}": np.asarray(v) for i, v in enumerate(values)}


def unnumbered(z: np.lib.npyio.NpzFile, prefix: str) -> list[np.ndarray]:
    count = sum(name.startswith(prefix + "_") for name in z.files)
    return [z[f"{prefix}_{i}"] for i in range(count)]


def save_checkpoint(path: Path, weights: list[np.ndarray], optimizer: list[np.ndarray], state: dict) -> None:
    arrays = numbered("weight", weights) | numbered("optimizer", optimizer)
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), np.uint8)
    write_arrays(path, arrays)


def read_checkpoint(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """``(weights, optimizer variables, state)``; anything unreadable is a :class:`CheckpointError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            weights, optimizer = unnumbered(z, "weight"), unnumbered(z, "optimizer")
            state = json.loads(z["state"].tobytes().decode())
    except READ_ERRORS as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(e).__name__}: {e})") from e
    if not weights or not isinstance(state, dict):
        raise CheckpointError(f"{path}: damaged checkpoint (no weights or no state)")
    return weights, optimizer, state


def save_weights(path: Path, weights: list[np.ndarray]) -> None:
    write_arrays(path, numbered("weight", weights))


def read_weights(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            weights = unnumbered(z, "weight")
    except READ_ERRORS as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(e).__name__}: {e})") from e
    if not weights:
        raise CheckpointError(f"{path}: damaged checkpoint (no weights)")
    return weights
