"""Which model files ``edgemask-run`` loads: an explicit path, or a model's default file (named by the
formats table) in ``$EDGEMASK_MODELS``, the checkout's ``models/``, ``./models`` or the files installed
with the package (a wheel carries the deployable files as ``edgemask/models/``)."""

from __future__ import annotations

import os
from pathlib import Path

from edgemask import assets
from edgemask.core.formats import AUTO, MODELS, default_precision, model_filename

MODELS_ENV = "EDGEMASK_MODELS"
INSTALLED_MODELS = Path(__file__).resolve().parent.parent / "models"
"""Package data of an installed wheel; absent in a checkout, whose ``models/`` is the one home of the
files."""
TASK_OF_FLAG = {"detector": "detect", "classifier": "classify"}


class ModelNotFound(FileNotFoundError):
    """No file for a model: the message names the file looked for and how to make it."""


class UnknownModel(ValueError):
    """A model name that is neither a key of the formats table for this flag nor a file."""


def model_dirs() -> list[Path]:
    """Where default models are looked up: ``$EDGEMASK_MODELS`` alone if set, else the checkout's
    ``models/``, ``./models`` and the installed package data."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return [Path(env)]
    checkout = [assets.REPO_ROOT / "models"] if (assets.REPO_ROOT / "pyproject.toml").is_file() else []
    return list(dict.fromkeys([*checkout, Path.cwd() / "models", INSTALLED_MODELS]))


def model_keys(flag: str) -> list[str]:
    """The formats table's keys a ``--flag`` accepts (``--detector``: the detector families)."""
    return [key for key, m in MODELS.items() if m.task == TASK_OF_FLAG.get(flag, m.task)]


def looks_like_a_path(choice: str) -> bool:
    """A suffix or a folder part marks a file name; a bare word is meant as a model key."""
    path = Path(choice)
    return bool(path.suffix) or len(path.parts) > 1 or path.exists()


def resolve_model(choice: str | os.PathLike, fmt: str, flag: str, precision: str = AUTO) -> Path:
    """``choice`` is a model key of the formats table (its file of ``fmt`` and ``precision``; ``auto``:
    the precision fastest on this CPU, :func:`~edgemask.core.formats.default_precision`) or a path."""
    keys = model_keys(flag)
    if str(choice) in keys:
        if precision == AUTO:
            precision = default_precision(str(choice))
        filename = model_filename(str(choice), fmt, precision)
        candidates = [d / filename for d in model_dirs()]
    elif looks_like_a_path(str(choice)):
        filename, candidates = Path(choice).name, [Path(choice)]
    else:
        raise UnknownModel(
            f"unknown {flag} {str(choice)!r}; choose one of {', '.join(keys)} (or give a model file's path)"
        )
    for path in candidates:
        if path.is_file():
            return path
    raise ModelNotFound(
        f"{flag} model not found: {candidates[0]}. Create it with edgemask-export (see edgemask-export "
        f"--help), pass --{flag} PATH, or point ${MODELS_ENV} at a folder holding {filename}"
    )
