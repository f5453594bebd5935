"""TensorFlow's native log lines, dropped from an export's output unless ``-v``: its C++ start-up notes
(``I0000 ... port.cc:153] oneDNN custom operations are on``), CUDA probes on a machine without a GPU and
the quantizer's ``fully_quantize: 0, inference_type: 6, ...`` line go straight to file descriptor 2, past
Python's logging. Everything else written there still shows."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager

from edgemask.core.native_log import native_lines_dropped

ABSL_NOTE = re.compile(r"^[IW]\d{4} \S+\s+\d+ \S+:\d+\] ")
"""absl's INFO and WARNING lines: severity, date, time, thread, ``file:line]``."""
CUDA_PROBE = re.compile(r"^E\d{4} \S+\s+\d+ cuda\w*\.cc:\d+\] ")
ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
QUANTIZER_NOTE = "fully_quantize: "


def is_tensorflow_chatter(line: str) -> bool:
    return bool(
        ABSL_NOTE.match(line) or CUDA_PROBE.match(line) or line.startswith((ABSL_PREAMBLE, QUANTIZER_NOTE))
    )


def tensorflow_chatter_dropped() -> AbstractContextManager[None]:
    """Run the block with TensorFlow's native chatter dropped (``$EDGEMASK_NATIVE_LOG=1`` keeps it)."""
    return native_lines_dropped(is_tensorflow_chatter)
