"""Label and counter placement: inside the picture always, above the box when there is room, off the
labels placed before where it can be, and the counter in the corner that hides the fewest faces."""

from __future__ import annotations

import itertools

from hypothesis import assume, given
from hypothesis import strategies as st

from edgemask.app.labels_layout import Rect, counter_corner, label_spots, place_labels

PICTURE = (640, 480)


@st.composite
def boxes_in_a_picture(draw, max_boxes: int = 12):
    pw, ph = draw(st.integers(20, 800)), draw(st.integers(20, 800))
    boxes = []
    for _ in range(draw(st.integers(0, max_boxes))):
        x1, y1 = draw(st.integers(0, pw - 1)), draw(st.integers(0, ph - 1))
        boxes.append((x1, y1, draw(st.integers(x1 + 1, pw)), draw(st.integers(y1 + 1, ph))))
    sizes = [(draw(st.integers(1, 120)), draw(st.integers(1, 40))) for _ in boxes]
    return boxes, sizes, (pw, ph)


@given(boxes_in_a_picture())
def test_every_label_stays_inside_the_picture_at_its_size(case) -> None:
    boxes, sizes, (pw, ph) = case
    for spot, (w, h) in zip(place_labels(boxes, sizes, (pw, ph)), sizes, strict=True):
        assert (spot.x2 - spot.x1, spot.y2 - spot.y1) == (w, h)
        if w <= pw and h <= ph:
            assert 0 <= spot.x1 < spot.x2 <= pw and 0 <= spot.y1 < spot.y2 <= ph


@st.composite
def separate_boxes_with_room(draw):
    """Boxes on a grid of cells (so they never overlap), each label fitting inside its box and above it."""
    cells = draw(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 5)), unique=True, max_size=20))
    boxes, sizes = [], []
    for col, row in cells:
        x0, y0 = col * 80, row * 80
        h = draw(st.integers(1, 30))
        y1 = y0 + draw(st.integers(h, 40))
        x1 = x0 + draw(st.integers(0, 30))
        box = (x1, y1, x1 + draw(st.integers(10, 50)), y1 + draw(st.integers(h, 80 - (y1 - y0))))
        assume(box[3] <= y0 + 80 and box[3] - box[1] >= h)
        boxes.append(box)
        sizes.append((draw(st.integers(1, box[2] - box[0])), h))
    return boxes, sizes


@given(separate_boxes_with_room())
def test_separate_boxes_with_room_get_separate_labels_above_them(case) -> None:
    boxes, sizes = case
    spots = place_labels(boxes, sizes, PICTURE)
    for a, b in itertools.combinations(spots, 2):
        assert a.overlap(b) == 0
    for box, spot in zip(boxes, spots, strict=True):
        assert (spot.x1, spot.y2) == (box[0], box[1])


def test_a_label_without_room_above_goes_inside_the_top_of_its_box() -> None:
    (spot,) = place_labels([(100, 5, 200, 100)], [(60, 14)], PICTURE)
    assert spot == Rect(100, 5, 160, 19)


def test_a_label_at_the_right_edge_is_moved_in() -> None:
    (spot,) = place_labels([(620, 100, 640, 120)], [(60, 14)], PICTURE)
    assert spot == Rect(580, 86, 640, 100)


def test_a_taken_spot_sends_the_label_below_its_box() -> None:
    """Two faces side by side, the left label wider than its box: the right one goes below its box."""
    boxes = [(100, 100, 120, 130), (125, 100, 145, 130)]
    left, right = place_labels(boxes, [(60, 14), (60, 14)], PICTURE)
    assert left == Rect(100, 86, 160, 100)
    assert right == label_spots(boxes[1], (60, 14), PICTURE)[2] == Rect(125, 130, 185, 144)


def test_a_taken_spot_tries_the_box_right_edge_first() -> None:
    """A wide face beside a narrow one whose label reaches over: the right edge still has room."""
    boxes = [(100, 100, 120, 130), (130, 100, 260, 160)]
    _, right = place_labels(boxes, [(60, 14), (60, 14)], PICTURE)
    assert right == Rect(200, 86, 260, 100)


def test_the_counter_goes_where_it_hides_no_face() -> None:
    top_left_face = (0, 0, 50, 50)
    assert counter_corner((80, 20), [], PICTURE) == Rect(0, 0, 80, 20)
    assert counter_corner((80, 20), [top_left_face], PICTURE) == Rect(560, 0, 640, 20)
    crowded_top = [top_left_face, (600, 0, 640, 40)]
    assert counter_corner((80, 20), crowded_top, PICTURE) == Rect(0, 460, 80, 480)


@given(boxes_in_a_picture(max_boxes=6))
def test_no_corner_hides_fewer_faces_than_the_counter(case) -> None:
    boxes, _, picture = case
    size = (min(60, picture[0]), min(16, picture[1]))
    chosen = counter_corner(size, boxes, picture)
    hidden = sum(chosen.overlap(b) > 0 for b in boxes)
    for x, y in ((0, 0), (picture[0] - size[0], 0), (0, picture[1] - size[1])):
        corner = Rect(x, y, x + size[0], y + size[1])
        assert hidden <= sum(corner.overlap(b) > 0 for b in boxes)
