"""The optional parts of edgemask (pip extras) and what needs them. A command whose extra is missing
says which one to install, in one line and before doing any work, instead of stopping with a traceback
halfway (edgemask-train used to write its 565 MB crop cache first)."""

from __future__ import annotations

import importlib.util

EXTRAS = {
    "train": ("tensorflow", "keras", "matplotlib"),
    "export": ("tensorflow", "keras", "tf2onnx", "onnx"),
    "peers": ("tensorflow", "tf_keras"),
    "distributed": ("ray",),
}
"""Modules each extra of pyproject.toml brings, by import name."""


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` that cannot be imported here (looked up, not imported)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install, or an import hook refusing it
            found = False
        if not found:
            missing.append(name)
    return missing


def missing_extra(extra: str, what: str) -> str | None:
    """One line naming what ``what`` lacks and the extra to install, or None if nothing is missing."""
    missing = missing_modules(EXTRAS[extra])
    if not missing:
        return None
    return f"{what} needs {', '.join(missing)}, not installed here: pip install 'edgemask[{extra}]'"
