"""LiteRT's C++ runtime writes an ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` line straight
to file descriptor 2 when an interpreter is first allocated, tearing progress bars. Python has no switch
for it (only the C++ API's ``LoggerOptions::SetMinimumLogSeverity``), so interpreter set-up runs with
fd 2 captured, and every captured line except the runtime's ``INFO:`` lines is passed on afterwards:
warnings and errors still show, only the chatter goes. ``EDGEMASK_NATIVE_LOG=1`` keeps everything (the
arm64 check reads the XNNPACK line to prove the delegate is in use, as on a Pi).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

STDERR_FD = 2
DROPPED_PREFIX = "INFO: "
KEEP_ENV = "EDGEMASK_NATIVE_LOG"
_lock = threading.RLock()
"""fd 2 is one per process: two threads swapping it at once could leave it pointing at a dead file."""


def native_info_dropped() -> AbstractContextManager[None]:
    """Run the block with fd 2 captured; afterwards write what was captured to ``sys.stderr``, minus the
    native runtime's ``INFO:`` lines."""
    return native_lines_dropped(DROPPED_PREFIX)


@contextmanager
def native_lines_dropped(*prefixes: str) -> Iterator[None]:
    """Run the block with fd 2 captured; afterwards write what was captured to ``sys.stderr``, minus the
    lines starting with one of ``prefixes``."""
    if os.environ.get(KEEP_ENV) == "1":
        yield
        return
    with _lock:
        sys.stderr.flush()
        try:
            saved = os.dup(STDERR_FD)
        except OSError:  # no stderr at all (a daemon): nothing to protect
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), STDERR_FD)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, STDERR_FD)
                os.close(saved)
                capture.seek(0)
                text = capture.read().decode(errors="replace")
                kept = [line for line in text.splitlines(True) if not line.startswith(prefixes)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
