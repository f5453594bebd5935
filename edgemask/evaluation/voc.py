"""PASCAL VOC scenes (``images/`` + ``annotations/*.xml``): parse them, load them (the one scene loader
of training, export and the benchmarks) and cut ground-truth face crops.

Boxes are VOC pixel corners ``[xmin, ymin, xmax, ymax]``; crops go through the runtime's own crop rule
(:func:`edgemask.core.ops.boxes.face_crop_boxes`). Bad input never stops a run: unreadable annotations,
missing or undecodable images, unknown classes and boxes with no area inside the image are skipped with a
warning and counted in the ``skipped`` Counter of the :class:`Scenes` that :func:`load_scenes` returns.
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
    try:
        width, height = (int(float(_text(size, k, source))) for k in ("width", "height"))
    except ValueError as e:
        raise VocError(f"{source}: non-numeric image size ({e})") from e
    return VocAnnotation(_text(root, "filename", source), width, height, tuple(objects))


@dataclass
class VocScene:
    image_path: Path
    annotation: VocAnnotation


def iter_scenes(folder: str | os.PathLike, skipped: Counter[str] | None = None) -> Iterator[VocScene]:
    """Scenes of ``folder`` (``annotations/*.xml`` naming files in ``images/``), sorted by annotation name.

    Unparseable annotations and annotations whose image is missing are skipped with a warning and
    counted by reason in ``skipped`` when it is given."""
    skipped = Counter() if skipped is None else skipped
    folder = Path(folder)
    ann_dir, img_dir = folder / "annotations", folder / "images"
    if not ann_dir.is_dir() or not img_dir.is_dir():
        raise FileNotFoundError(f"{folder}: a VOC scenes folder needs images/ and annotations/")
    for xml in sorted(ann_dir.glob("*.xml")):
        try:
            ann = parse_annotation(xml)
        except VocError as e:
            skipped["unreadable annotation"] += 1
            warnings.warn(f"skipping annotation: {e}", stacklevel=2)
            continue
        image_path = img_dir / ann.filename
        if not image_path.is_file():
            image_path = img_dir / (xml.stem + Path(ann.filename).suffix)
        if not image_path.is_file():
            skipped["image not found"] += 1
            warnings.warn(f"skipping {xml.name}: image {ann.filename} not found", stacklevel=2)
            continue
        yield VocScene(image_path, ann)


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


def usable_objects(
    annotation: VocAnnotation, width: int, height: int, source: str
) -> tuple[list[VocObject], Counter[str]]:
    """The annotation's faces clipped to the image, and why the others were left out: unknown classes and
    boxes with no area inside the image (zero size, inverted, or wholly outside) are skipped with a
    warning. A box reaching past the border is clipped, not skipped: the face is in the picture."""
    kept, skipped = [], Counter()
    for obj in annotation.objects:
        if obj.name not in VOC_CLASSES:
            skipped["unknown class"] += 1
            warnings.warn(f"{source}: skipping a box of unknown class {obj.name!r}", stacklevel=3)
            continue
        x1, y1, x2, y2 = obj.box
        box = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
        if box[2] <= box[0] or box[3] <= box[1]:
            skipped["box without area in the image"] += 1
            warnings.warn(f"{source}: skipping box {obj.box} (no area inside the image)", stacklevel=3)
            continue
        kept.append(VocObject(obj.name, box, obj.difficult))
    return kept, skipped


class Scenes(Iterator[Scene]):
    """Decoded scenes of a VOC folder in name order, read one at a time (a training set does not fit in
    memory at once); ``skipped`` counts by reason the scenes and boxes left out so far, so it is complete
    once the scenes have been read to the end."""

    def __init__(self, folder: str | os.PathLike, limit: int | None = None, min_faces: int = 0) -> None:
        self.folder = Path(folder)
        self.skipped: Counter[str] = Counter()
        self._scenes = self._read(limit, min_faces)

    def __next__(self) -> Scene:
        return next(self._scenes)

    def _read(self, limit: int | None, min_faces: int) -> Iterator[Scene]:
        count = 0
        for voc in iter_scenes(self.folder, self.skipped):
            if limit is not None and count >= limit:
                return
            if len(voc.annotation.objects) < min_faces:
                continue
            try:
                image = read_image(voc.image_path)
            except ImageError as e:
                self.skipped["unreadable image"] += 1
                warnings.warn(f"skipping scene: {e}", stacklevel=3)
                continue
            objects, left_out = usable_objects(
                voc.annotation, image.shape[1], image.shape[0], voc.image_path.name
            )
            self.skipped.update(left_out)
            if len(objects) < min_faces:
                continue
            count += 1
            yield _scene(voc.image_path, image, objects)


def _scene(path: Path, image: np.ndarray, objects: list[VocObject]) -> Scene:
    labels = [LABELS.index(o.name) if o.name in LABELS and not o.difficult else IGNORE for o in objects]
    return Scene(
        path.name,
        path,
        image,
        np.array([o.box for o in objects], np.float64).reshape(-1, 4),
        tuple(o.name for o in objects),
        np.array(labels, np.int64),
    )


def load_scenes(folder: str | os.PathLike, limit: int | None = None, min_faces: int = 0) -> Scenes:
    """The one scene loader: the scenes of a VOC folder with at least ``min_faces`` usable faces, at most
    ``limit`` of them. Bad annotations, images and boxes are skipped with a warning and counted in the
    result's ``skipped`` (:class:`Scenes`)."""
    return Scenes(folder, limit, min_faces)


def skip_lines(skipped: Counter[str]) -> list[str]:
    """One line per reason, for the callers' reports."""
    return [f"skipped while loading scenes: {n} × {why}" for why, n in sorted(skipped.items())]


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
