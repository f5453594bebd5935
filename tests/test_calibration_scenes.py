"""Classifier calibration from a scenes folder: bad scenes are skipped and counted in its metadata."""

import warnings

import cv2
import numpy as np

from export.calibration import scene_crop_calibration

XML = """<annotation><filename>{name}</filename><size><width>40</width><height>30</height></size>
<object><name>with_mask</name><bndbox><xmin>10</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object>
<object><name>hat</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>"""


def test_skipped_scenes_and_boxes_are_counted(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((30, 40, 3), 90, np.uint8))
    (tmp_path / "images" / "b.png").write_bytes(b"")
    for name in ("a.png", "b.png"):
        (tmp_path / "annotations" / name.replace(".png", ".xml")).write_text(XML.format(name=name))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        calibration = scene_crop_calibration(tmp_path, 32, limit=10)
    # a.png gives its one masked face; its unknown-class box and the empty b.png are the two skips.
    assert (calibration.images, len(calibration.samples), calibration.skipped) == (1, 1, 2)
    assert calibration.samples[0].shape == (1, 32, 32, 3)
