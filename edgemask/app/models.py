"""Which model files ``edgemask-run`` loads: an explicit path, or a model's default file (named by the
formats table) in ``$EDGEMASK_MODELS``, the checkout's ``models/``, ``./models`` or the files installed
with the package (a wheel carries the deployable files as ``edgemask/models/``); with ``auto`` format or
precision, the fastest of the matching files as measured on this machine (:mod:`.autoselect`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgemask import assets
from edgemask.app.autoselect import Candidate
from edgemask.core.formats import AUTO, DEFAULT_FORMAT, MODELS, VARIANTS, default_precision, model_filename

MODELS_ENV = "EDGEMASK_MODELS"
INSTALLED_MODELS = Path(__file__).resolve().parent.parent / "models"
"""Package data of an installed wheel; absent in a checkout, whose ``models/`` is the one home of the
files."""
TASK_OF_FLAG = {"detector": "detect", "classifier": "classify"}

Choose = Callable[[str, list[Candidate]], Path]
"""Picks one of a model's candidate files (:meth:`.autoselect.Chooser.choose`)."""


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


def candidates(model: str, fmt: str, precision: str, dirs: list[Path] | None = None) -> list[Candidate]:
    """The model's default files that exist in ``dirs`` (default: :func:`model_dirs`), one per variant
    matching ``fmt`` and ``precision`` (``auto`` matches any), in the formats table's order."""
    dirs = model_dirs() if dirs is None else dirs
    found = []
    for variant in VARIANTS:
        if fmt not in (AUTO, variant.format) or precision not in (AUTO, variant.precision):
            continue
        path = next((p for d in dirs if (p := variant.path(d, model)).is_file()), None)
        if path is not None:
            found.append(Candidate(variant, path))
    return found


def resolve_model(
    choice: str | os.PathLike, fmt: str, flag: str, precision: str = AUTO, choose: Choose | None = None
) -> Path:
    """``choice`` is a model key the flag accepts (its file of ``fmt`` and ``precision``) or a path.
    With ``auto`` in either, ``choose`` picks among the matching files; without ``choose``, ``auto`` is
    the default format and the precision :func:`~edgemask.core.formats.default_precision` names."""
    keys = model_keys(flag)
    if str(choice) in keys:
        model = str(choice)
        if choose is not None and AUTO in (fmt, precision) and (found := candidates(model, fmt, precision)):
            return choose(model, found)
        fmt = DEFAULT_FORMAT if fmt == AUTO else fmt
        precision = default_precision(model) if precision == AUTO else precision
        filename = model_filename(model, fmt, precision)
        paths = [d / filename for d in model_dirs()]
    elif looks_like_a_path(str(choice)):
        filename, paths = Path(choice).name, [Path(choice)]
    else:
        raise UnknownModel(
            f"unknown {flag} {str(choice)!r}; choose one of {', '.join(keys)} (or give a model file's path)"
        )
    for path in paths:
        if path.is_file():
            return path
    raise ModelNotFound(
        f"{flag} model not found: {paths[0]}. Create it with edgemask-export (see edgemask-export "
        f"--help), pass --{flag} PATH, or point ${MODELS_ENV} at a folder holding {filename}"
    )
