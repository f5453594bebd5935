"""The local engine of the sort: the frame loop's sink that cuts each processed image's crops and files
them in the output folder, in this process."""

from __future__ import annotations

import os

from edgemask.app.sinks import BaseSink, Processed
from edgemask.app.sorting.crops import crop_rows
from edgemask.app.sorting.manifest import SortFolder


class SortSink(BaseSink):
    """``--sort-into``: every processed image's faces into ``folder`` (which it closes)."""

    def __init__(self, folder: SortFolder, margin: float) -> None:
        self.folder = folder
        self.margin = margin

    def write(self, item: Processed) -> None:
        frame, faces = item.frame, item.result.faces
        source = os.path.abspath(frame.name)
        self.folder.record(crop_rows(source, frame.key, frame.digest or "", frame.image, faces, self.margin))

    def close(self) -> None:
        self.folder.close()

    def summary(self) -> list[str]:
        return [f"crops and manifest in {self.folder.out_dir}"]
