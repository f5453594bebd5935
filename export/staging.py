"""Never leave a half-written or unverified model in ``models/``: every file is written to a hidden
temporary name next to its destination, checked there, and only then moved into place with
``os.replace`` (atomic on one file system). Anything that goes wrong removes the temporary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final`` (same suffix, so runtimes recognize it); always cleaned up.

    The caller writes and verifies the temporary file, then calls :func:`install` inside the block.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".partial{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def install(tmp: Path, final: Path) -> None:
    """Move a verified temporary file over ``final`` atomically (readers see the old or the new file)."""
    os.chmod(tmp, 0o644)  # mkstemp made it private; a model file is meant to be shared
    os.replace(tmp, final)
