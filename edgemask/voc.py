"""PASCAL VOC scenes (``images/`` + ``annotations/*.xml``): parse boxes and cut ground-truth face crops.

Pure (no TensorFlow): evaluation, benchmarks and runtime tests share it. Boxes are VOC pixel corners
``[xmin, ymin, xmax, ymax]``; crops go through :mod:`edgemask.preprocess` like the runtime's detections.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemask.imageio import ImageError, read_image
from edgemask.preprocess import clamp_box, crop, expand_box

VOC_CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")


class VocError(ValueError):
    """An annotation file that cannot be parsed or lacks required fields."""


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    width: int
    height: int
    objects: tuple[VocObject, ...] = field(default_factory=tuple)


def _text(node: ET.Element, tag: str, source: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None:
        raise VocError(f"{source}: missing <{tag}>")
    return child.text.strip()


def parse_annotation(path: str | os.PathLike) -> VocAnnotation:
    """Read one VOC XML file."""
    source = str(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise VocError(f"{source}: {e}") from e
    size = root.find("size")
    if size is None:
        raise VocError(f"{source}: missing <size>")
    objects = []
    for obj in root.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise VocError(f"{source}: object without <bndbox>")
        try:
            box = tuple(float(_text(bndbox, k, source)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as e:
            raise VocError(f"{source}: non-numeric box ({e})") from e
        difficult = obj.find("difficult")
        objects.append(
            VocObject(
                name=_text(obj, "name", source),
                box=box,  # type: ignore[arg-type]
                difficult=difficult is not None and (difficult.text or "0").strip() == "1",
            )
        )
    return VocAnnotation(
        filename=_text(root, "filename", source),
        width=int(float(_text(size, "width", source))),
        height=int(float(_text(size, "height", source))),
        objects=tuple(objects),
    )


@dataclass
class VocScene:
    image_path: Path
    annotation: VocAnnotation


def iter_scenes(folder: str | os.PathLike) -> Iterator[VocScene]:
    """Scenes of ``folder`` (``annotations/*.xml`` naming files in ``images/``), sorted by annotation name.

    Unparseable annotations and annotations whose image is missing are skipped with a warning."""
    folder = Path(folder)
    ann_dir, img_dir = folder / "annotations", folder / "images"
    if not ann_dir.is_dir() or not img_dir.is_dir():
        raise FileNotFoundError(f"{folder}: a VOC scenes folder needs images/ and annotations/")
    for xml in sorted(ann_dir.glob("*.xml")):
        try:
            ann = parse_annotation(xml)
        except VocError as e:
            warnings.warn(f"skipping annotation: {e}", stacklevel=2)
            continue
        image_path = img_dir / ann.filename
        if not image_path.is_file():
            image_path = img_dir / (xml.stem + Path(ann.filename).suffix)
        if not image_path.is_file():
            warnings.warn(f"skipping {xml.name}: image {ann.filename} not found", stacklevel=2)
            continue
        yield VocScene(image_path, ann)


@dataclass
class FaceCrop:
    """A ground-truth face cut from a scene, BGR uint8, with where it came from."""

    image: np.ndarray
    name: str
    box: tuple[int, int, int, int]
    source: Path


def face_boxes(objects: tuple[VocObject, ...], margin: float, width: int, height: int) -> np.ndarray:
    """Integer crop boxes: object boxes grown by ``margin`` of their size per side, clamped to the image."""
    if not objects:
        return np.zeros((0, 4), dtype=np.int64)
    return clamp_box(expand_box(np.array([o.box for o in objects]), margin), width, height)


def iter_scene_images(folder: str | os.PathLike) -> Iterator[tuple[VocScene, np.ndarray]]:
    """Scenes with their decoded BGR image; unreadable images are skipped with a warning."""
    for scene in iter_scenes(folder):
        try:
            yield scene, read_image(scene.image_path)
        except ImageError as e:
            warnings.warn(f"skipping scene: {e}", stacklevel=2)


def iter_face_crops(
    folder: str | os.PathLike, margin: float = 0.0, classes: tuple[str, ...] = VOC_CLASSES
) -> Iterator[FaceCrop]:
    """Every annotated face of the given classes in a scenes folder; unreadable images are warned about."""
    for scene, image in iter_scene_images(folder):
        objects = tuple(o for o in scene.annotation.objects if o.name in classes)
        if not objects:
            continue
        boxes = face_boxes(objects, margin, image.shape[1], image.shape[0])
        for obj, box in zip(objects, boxes, strict=True):
            yield FaceCrop(crop(image, box), obj.name, tuple(int(v) for v in box), scene.image_path)  # type: ignore[arg-type]
