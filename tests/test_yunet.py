"""YuNet's pure pieces: input geometry, grid decoding and NMS by hand and by property, and the whole
decoder against OpenCV's own ``FaceDetectorYN`` on the source ONNX files and a real scene."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgemask import assets
from edgemask.core.detectors.yunet import frame_pass
from edgemask.core.metadata import GridConfig
from edgemask.core.ops.boxes import iou_matrix
from edgemask.core.ops.yunet import decode, decode_stride, grid_cells, input_geometry, padded_side, select

GRID = GridConfig()


def test_padded_side_by_hand() -> None:
    assert [padded_side(s, 32) for s in (1, 31, 32, 33, 64, 65)] == [32, 32, 32, 64, 64, 96]


def test_geometry_of_a_400x300_frame_at_640() -> None:
    g = input_geometry(300, 400, 640, 32)
    assert (g.scale, g.resized, g.padded) == (1.6, (480, 640), (480, 640))
    g = input_geometry(267, 400, 640, 32)  # 427.2 rows -> 427, padded to 448
    assert (g.resized, g.padded) == ((427, 640), (448, 640))
    assert input_geometry(300, 400, None, 32).padded == (320, 416)


@given(
    h=st.integers(1, 3000),
    w=st.integers(1, 3000),
    long_side=st.integers(32, 1600),
    multiple=st.sampled_from([8, 16, 32]),
)
def test_geometry_properties(h: int, w: int, long_side: int, multiple: int) -> None:
    g = input_geometry(h, w, long_side, multiple)
    assert max(g.resized) == long_side
    for padded, resized, side in zip(g.padded, g.resized, (h, w), strict=True):
        assert padded % multiple == 0 and resized <= padded < resized + multiple
        # The aspect ratio survives up to rounding (and a side of at least one pixel).
        assert abs(resized - max(1.0, side * g.scale)) <= 0.5 + 1e-9


def test_grid_cells_are_row_major_col_row() -> None:
    cells = grid_cells(64, 96, 32)  # 2 rows x 3 cols
    assert cells.tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]


def test_decode_stride_by_hand() -> None:
    cells = np.array([[2, 1]], np.float32)  # column 2, row 1
    cls, obj = np.array([0.81]), np.array([0.25])
    bbox = np.array([[0.5, 0.25, np.log(2.0), 0.0]])
    kps = np.arange(10, dtype=np.float32)[None] / 10
    boxes, scores, landmarks = decode_stride(cls, obj, bbox, kps, cells, 16)
    # centre ((2 + 0.5) * 16, (1 + 0.25) * 16) = (40, 20); size (2 * 16, 1 * 16)
    np.testing.assert_allclose(boxes, [[24, 12, 56, 28]])
    np.testing.assert_allclose(scores, [0.45])  # sqrt(0.81 * 0.25)
    np.testing.assert_allclose(
        landmarks[0, :4], [(2 + 0.0) * 16, (1 + 0.1) * 16, (2 + 0.2) * 16, (1 + 0.3) * 16]
    )


def test_decode_refuses_outputs_of_another_input_size() -> None:
    outputs = {f"{k}_{s}": np.zeros((1, (64 // s) * (64 // s), n)) for s in GRID.strides for k, n in
               (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))}  # fmt: skip
    decode(outputs, (64, 64), GRID)
    with pytest.raises(ValueError, match="stride 8"):
        decode(outputs, (64, 96), GRID)


@given(
    st.lists(
        st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50), st.floats(0, 1)),
        max_size=40,
    ),
    st.floats(0.0, 0.9),
    st.floats(0.1, 0.9),
)
def test_select_keeps_confident_separated_boxes_best_first(rows, conf: float, iou: float) -> None:
    a = np.array(rows, np.float64).reshape(-1, 5)
    boxes = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], axis=1)
    kept = select(boxes, a[:, 4], conf, iou, GRID)
    scores = a[kept, 4]
    assert (scores > conf).all() and (np.diff(scores) <= 0).all()
    overlaps = iou_matrix(boxes[kept], boxes[kept])
    np.fill_diagonal(overlaps, 0)
    assert (overlaps <= iou + 1e-9).all()
    # Every box left out is below the threshold or overlaps a kept box with a score at least its own.
    for i in set(range(len(a))) - set(kept.tolist()):
        if a[i, 4] > conf:
            by = iou_matrix(boxes[i : i + 1], boxes[kept])[0]
            assert ((by > iou) & (scores >= a[i, 4])).any()


def test_frame_pass_puts_the_scaled_frame_top_left_on_black() -> None:
    frame = np.full((300, 400, 3), 200, np.uint8)
    frame[:, :, 0] = 10  # blue channel, to see the channel order
    p = frame_pass(frame, 200, 32)
    assert p.blob.shape == (1, 160, 224, 3) and p.resized_hw == (150, 200) and p.frame_hw == (300, 400)
    assert (p.blob[0, :150, :200] == [10, 200, 200]).all() and not p.blob[0, 150:].any()
    assert not p.blob[0, :, 200:].any()
    rgb = frame_pass(frame, 200, 32, bgr=False)
    assert (rgb.blob[0, 0, 0] == [200, 200, 10]).all()


def source_files() -> list[Path]:
    try:
        return [assets.find(a.relpath) for a in (assets.YUNET_N, assets.YUNET_S)]
    except assets.AssetError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("index", [0, 1], ids=["yunet_n", "yunet_s"])
def test_decoder_matches_opencv_face_detector_yn(index: int, scenes_dir: Path, tmp_path: Path) -> None:
    """OpenCV's FaceDetectorYN decodes the same network on its own; our numpy decoder must agree."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    source = source_files()[index]
    image = cv2.imread(str(scenes_dir / "images" / "maksssksksss0.jpg"))
    p = frame_pass(image, 640, GRID.pad_multiple)
    h, w = p.size
    model = onnx.load(source)  # OpenCV's importer needs a fixed input shape
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, h, w), strict=True):
        dim.Clear()
        dim.dim_value = value
    onnx.save(model, tmp_path / "fixed.onnx")
    opencv = cv2.FaceDetectorYN.create(str(tmp_path / "fixed.onnx"), "", (w, h), 0.3, 0.3, 5000)
    faces = opencv.detect(p.blob[0])[1]
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    x = p.blob.transpose(0, 3, 1, 2).astype(np.float32)
    boxes, scores, landmarks = decode(
        dict(zip(names, session.run(None, {"input": x}), strict=True)), (h, w), GRID
    )
    kept = select(boxes, scores, 0.3, 0.3, GRID)
    ours = np.concatenate(
        [boxes[kept, :2], boxes[kept, 2:] - boxes[kept, :2], landmarks[kept], scores[kept, None]], 1
    )
    assert faces is not None and len(faces) == len(ours) >= 4
    theirs = faces[np.argsort(-faces[:, -1], kind="stable")]
    np.testing.assert_allclose(ours, theirs, atol=1e-3)
