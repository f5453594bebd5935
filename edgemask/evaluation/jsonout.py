"""JSON files of benchmark results: NaN (nothing to count) becomes null, so strict readers accept them."""

from __future__ import annotations

import json
import math
from pathlib import Path


def plain(obj):
    """``obj`` with NaN/inf floats as None, tuples as lists and paths as strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(plain(obj), indent=2, allow_nan=False) + "\n")
