"""Which model files ``edgemask-run`` loads: an explicit path, or a model's default file (named by the
formats table) in ``$EDGEMASK_MODELS``, the checkout's ``models/`` or ``./models``."""

from __future__ import annotations

import os
from pathlib import Path

from edgemask import assets
from edgemask.core.formats import AUTO, MODELS, default_precision, model_filename

MODELS_ENV = "EDGEMASK_MODELS"


class ModelNotFound(FileNotFoundError):
    """No file for a model: the message names the file looked for and how to make it."""


def model_dirs() -> list[Path]:
    """Where default models are looked up: ``$EDGEMASK_MODELS`` alone if set, else the checkout's
    ``models/`` then ``./models``."""
    env = os.environ.get(MODELS_ENV)
    if env:
        return [Path(env)]
    return list(dict.fromkeys([assets.REPO_ROOT / "models", Path.cwd() / "models"]))


def resolve_model(choice: str | os.PathLike, fmt: str, flag: str, precision: str = AUTO) -> Path:
    """``choice`` is a model key of the formats table (its file of ``fmt`` and ``precision``; ``auto``:
    the precision fastest on this CPU, :func:`~edgemask.core.formats.default_precision`) or a path."""
    if str(choice) in MODELS:
        if precision == AUTO:
            precision = default_precision(str(choice))
        filename = model_filename(str(choice), fmt, precision)
        candidates = [d / filename for d in model_dirs()]
    else:
        filename, candidates = Path(choice).name, [Path(choice)]
    for path in candidates:
        if path.is_file():
            return path
    raise ModelNotFound(
        f"{flag} model not found: {candidates[0]}. Create it with edgemask-export (see edgemask-export "
        f"--help), pass --{flag} PATH, or point ${MODELS_ENV} at a folder holding {filename}"
    )
