"""PASCAL VOC scenes (``images/`` + ``annotations/*.xml``): parse them, load them (the one scene loader
of training, export and the benchmarks) and cut ground-truth face crops.

Boxes are VOC pixel corners ``[xmin, ymin, xmax, ymax]``; crops go through the runtime's own crop rule
(:func:`edgemask.core.ops.boxes.face_crop_boxes`). Bad input never stops a run: unreadable annotations,
missing or undecodable images, unknown classes and boxes outside the image are skipped with a warning
and counted in :data:`SCENE_SKIPS`.
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgemask.core.imageio import ImageError, read_image
from edgemask.core.ops.boxes import crop, face_crop_boxes
from edgemask.labels import IGNORE, LABELS, VOC_CLASSES


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
            SCENE_SKIPS["unreadable annotation"] += 1
            warnings.warn(f"skipping annotation: {e}", stacklevel=2)
            continue
        image_path = img_dir / ann.filename
        if not image_path.is_file():
            image_path = img_dir / (xml.stem + Path(ann.filename).suffix)
        if not image_path.is_file():
            SCENE_SKIPS["image not found"] += 1
            warnings.warn(f"skipping {xml.name}: image {ann.filename} not found", stacklevel=2)
            continue
        yield VocScene(image_path, ann)


SCENE_SKIPS = Counter()
"""Why annotated faces and scenes were left out, since the process started (reported by the callers)."""


@dataclass(frozen=True)
class Scene:
    """A decoded scene and its usable annotated faces: ``boxes`` ``(K, 4)`` pixels inside the image,
    ``classes`` their VOC class names, ``labels`` their index into ``LABELS`` (``IGNORE`` for
    ``mask_weared_incorrect`` and VOC ``difficult`` faces: neither hit nor miss when scoring)."""

    name: str
    path: Path
    image: np.ndarray
    boxes: np.ndarray
    classes: tuple[str, ...]
    labels: np.ndarray


def usable_objects(annotation: VocAnnotation, width: int, height: int, source: str) -> list[VocObject]:
    """The annotation's faces, clipped to the image; unknown classes and boxes with no area inside the
    image are skipped with a warning and counted in :data:`SCENE_SKIPS`."""
    kept = []
    for obj in annotation.objects:
        if obj.name not in VOC_CLASSES:
            SCENE_SKIPS["unknown class"] += 1
            warnings.warn(f"{source}: skipping a box of unknown class {obj.name!r}", stacklevel=3)
            continue
        x1, y1, x2, y2 = obj.box
        box = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        if box[2] <= box[0] or box[3] <= box[1]:
            SCENE_SKIPS["box without area in the image"] += 1
            warnings.warn(f"{source}: skipping box {obj.box} (no area inside the image)", stacklevel=3)
            continue
        kept.append(VocObject(obj.name, box, obj.difficult))
    return kept


def load_scenes(folder: str | os.PathLike, limit: int | None = None, min_faces: int = 0) -> Iterator[Scene]:
    """The one scene loader: decoded scenes of a VOC folder in name order, with at least ``min_faces``
    usable faces, at most ``limit`` of them. Unreadable images are skipped with a warning (and counted
    in :data:`SCENE_SKIPS`), as are the bad annotations of :func:`iter_scenes` and :func:`usable_objects`."""
    count = 0
    for voc in iter_scenes(folder):
        if limit is not None and count >= limit:
            return
        if len(voc.annotation.objects) < min_faces:
            continue
        try:
            image = read_image(voc.image_path)
        except ImageError as e:
            SCENE_SKIPS["unreadable image"] += 1
            warnings.warn(f"skipping scene: {e}", stacklevel=2)
            continue
        objects = usable_objects(voc.annotation, image.shape[1], image.shape[0], voc.image_path.name)
        if len(objects) < min_faces:
            continue
        count += 1
        labels = [LABELS.index(o.name) if o.name in LABELS and not o.difficult else IGNORE for o in objects]
        yield Scene(
            voc.image_path.name,
            voc.image_path,
            image,
            np.array([o.box for o in objects], np.float64).reshape(-1, 4),
            tuple(o.name for o in objects),
            np.array(labels, np.int64),
        )


@dataclass(frozen=True)
class FaceCrop:
    """A ground-truth face cut from a scene, BGR uint8, with where it came from."""

    image: np.ndarray
    name: str
    box: tuple[int, int, int, int]
    source: Path


def iter_face_crops(
    folder: str | os.PathLike, margin: float = 0.0, classes: tuple[str, ...] = VOC_CLASSES
) -> Iterator[FaceCrop]:
    """Every annotated face of the given classes in a scenes folder, cut by the runtime's crop rule."""
    for scene in load_scenes(folder):
        wanted = [i for i, name in enumerate(scene.classes) if name in classes]
        h, w = scene.image.shape[:2]
        for i, box in zip(wanted, face_crop_boxes(scene.boxes[wanted], margin, w, h), strict=True):
            x1, y1, x2, y2 = (int(v) for v in box)
            yield FaceCrop(crop(scene.image, box), scene.classes[i], (x1, y1, x2, y2), scene.path)
