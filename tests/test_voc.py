"""PASCAL VOC parsing and ground-truth crops."""

import warnings

import cv2
import numpy as np
import pytest

from edgemask.assets import AssetError, dataset
from edgemask.evaluation.voc import (
    VocError,
    iter_face_crops,
    iter_scenes,
    load_scenes,
    parse_annotation,
)
from edgemask.labels import IGNORE

XML = """<annotation><folder>images</folder><filename>{name}</filename>
<size><width>40</width><height>30</height><depth>3</depth></size>
<object><name>with_mask</name><difficult>0</difficult>
<bndbox><xmin>10</xmin><ymin>5</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object>
<object><name>mask_weared_incorrect</name><difficult>1</difficult>
<bndbox><xmin>0</xmin><ymin>20</ymin><xmax>8</xmax><ymax>30</ymax></bndbox></object>
</annotation>"""


@pytest.fixture
def scenes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    image = np.arange(30 * 40 * 3, dtype=np.uint32).reshape(30, 40, 3) % 251
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image.astype(np.uint8))
    (tmp_path / "annotations" / "a.xml").write_text(XML.format(name="a.png"))
    return tmp_path, image.astype(np.uint8)


def test_parse_annotation(scenes):
    folder, _ = scenes
    ann = parse_annotation(folder / "annotations" / "a.xml")
    assert (ann.filename, ann.width, ann.height) == ("a.png", 40, 30)
    assert [o.name for o in ann.objects] == ["with_mask", "mask_weared_incorrect"]
    assert ann.objects[0].box == (10.0, 5.0, 20.0, 15.0)
    assert (ann.objects[0].width, ann.objects[0].height) == (10.0, 10.0)
    assert ann.objects[1].difficult and not ann.objects[0].difficult


def test_crops_are_the_annotated_pixels(scenes):
    folder, image = scenes
    crops = list(iter_face_crops(folder))
    assert [c.name for c in crops] == ["with_mask", "mask_weared_incorrect"]
    assert np.array_equal(crops[0].image, image[5:15, 10:20])
    assert crops[0].box == (10, 5, 20, 15)


def test_margin_grows_and_clamps(scenes):
    folder, image = scenes
    crops = list(iter_face_crops(folder, margin=0.5, classes=("with_mask", "mask_weared_incorrect")))
    assert crops[0].box == (5, 0, 25, 20)  # 10 px box + 5 px per side; top clamped at 0
    assert np.array_equal(crops[0].image, image[0:20, 5:25])
    assert crops[1].box == (0, 15, 12, 30)  # clamped at left and bottom


def test_scene_loader_keeps_classes_labels_and_ignores_the_third_class(scenes):
    folder, image = scenes
    (scene,) = load_scenes(folder)
    assert scene.classes == ("with_mask", "mask_weared_incorrect")
    assert scene.labels.tolist() == [0, IGNORE]
    np.testing.assert_array_equal(scene.boxes, [[10, 5, 20, 15], [0, 20, 8, 30]])
    assert np.array_equal(scene.image, image)


BAD_BOXES = """<annotation><filename>c.png</filename>
<size><width>40</width><height>30</height><depth>3</depth></size>
<object><name>with_mask</name><bndbox><xmin>30</xmin><ymin>20</ymin><xmax>60</xmax><ymax>50</ymax></bndbox></object>
<object><name>without_mask</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>
<object><name>without_mask</name><bndbox><xmin>50</xmin><ymin>5</ymin><xmax>60</xmax><ymax>9</ymax></bndbox></object>
<object><name>hat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>
</annotation>"""


def test_bad_boxes_and_unknown_classes_are_skipped_counted_and_clipped(scenes):
    folder, _ = scenes
    (folder / "annotations" / "a.xml").unlink()
    cv2.imwrite(str(folder / "images" / "c.png"), np.zeros((30, 40, 3), np.uint8))
    (folder / "annotations" / "c.xml").write_text(BAD_BOXES)
    loaded = load_scenes(folder)
    with pytest.warns(UserWarning) as caught:
        (scene,) = loaded
    # The box reaching past the corner is clipped to the image; the zero-width box, the box entirely
    # outside and the unknown class are skipped, each with a warning and a count.
    np.testing.assert_array_equal(scene.boxes, [[30, 20, 40, 30]])
    assert len(caught) == 3
    assert loaded.skipped == {"box without area in the image": 2, "unknown class": 1}


def test_broken_annotation_and_missing_image_are_skipped_with_warning(scenes):
    folder, _ = scenes
    (folder / "annotations" / "broken.xml").write_text("<annotation><size>")
    (folder / "annotations" / "orphan.xml").write_text(XML.format(name="nowhere.png"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [s.image_path.name for s in iter_scenes(folder)]
    assert names == ["a.png"]
    assert len(caught) == 2
    with pytest.raises(VocError):
        parse_annotation(folder / "annotations" / "broken.xml")


def test_non_numeric_image_size_is_a_voc_error(scenes):
    folder, _ = scenes
    path = folder / "annotations" / "odd.xml"
    path.write_text(XML.format(name="a.png").replace("<width>40</width>", "<width>wide</width>"))
    with pytest.raises(VocError, match="non-numeric image size"):
        parse_annotation(path)


def test_every_kind_of_bad_scene_is_counted_by_the_loader_and_the_good_one_kept(scenes):
    folder, _ = scenes
    ann = folder / "annotations"
    ann.joinpath("b_broken.xml").write_text("<annotation><size>")
    ann.joinpath("c_size.xml").write_text(XML.format(name="a.png").replace("<height>30<", "<height>x<"))
    ann.joinpath("d_orphan.xml").write_text(XML.format(name="nowhere.png"))
    (folder / "images" / "e.png").write_bytes(b"not an image")
    ann.joinpath("e.xml").write_text(XML.format(name="e.png"))
    loaded = load_scenes(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [s.name for s in loaded] == ["a.png"]
    assert loaded.skipped == {"unreadable annotation": 2, "image not found": 1, "unreadable image": 1}
    assert len(caught) == 4


def test_skips_after_the_limit_are_not_counted(scenes):
    folder, _ = scenes
    (folder / "images" / "z.png").write_bytes(b"")
    (folder / "annotations" / "z.xml").write_text(XML.format(name="z.png"))
    loaded = load_scenes(folder, limit=1)
    assert [s.name for s in loaded] == ["a.png"] and loaded.skipped == {}
    assert next(load_scenes(folder)).name == "a.png"  # the loader is an iterator, as before


def test_folder_layout_is_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="images/ and annotations/"):
        next(iter_scenes(tmp_path))


def test_real_scene_annotation():
    try:
        folder = dataset("scenes_dev")
    except AssetError:
        pytest.skip("shared scenes_dev not available")
    ann = parse_annotation(folder / "annotations" / "maksssksksss0.xml")
    assert (ann.width, ann.height) == (512, 366)
    assert [o.name for o in ann.objects] == ["without_mask", "with_mask", "without_mask"]
    assert ann.objects[0].box == (79.0, 105.0, 109.0, 142.0)


def test_unreadable_scene_image_is_skipped_with_warning(scenes):
    folder, _ = scenes
    (folder / "images" / "b.png").write_bytes(b"")
    (folder / "annotations" / "b.xml").write_text(XML.format(name="b.png"))
    with pytest.warns(UserWarning, match="b.png: empty file"):
        crops = list(iter_face_crops(folder))
    assert [c.source.name for c in crops] == ["a.png", "a.png"]
