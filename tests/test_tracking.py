"""The pure tracker: overlaps, matching, motion, track life, label votes and the counting line."""

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.core.tracking.association import greedy_match, match_subsets, overlaps
from edgemask.core.tracking.counting import CountLine, CountLineError, LineCounter, crossings
from edgemask.core.tracking.motion import MotionModel, to_boxes, to_state
from edgemask.core.tracking.tracker import NO_TRACK, Tracker, TrackerOptions
from edgemask.core.tracking.votes import FIRST, SECOND, Vote, VoteRule, log_odds, needs_look, observe

CROWD_DIGEST = "97d8b5b97790b7b6"
"""SHA-256 (first 16 hex digits) of :func:`crowd_ids` on x86-64 (numpy 2.4): arm64 must give the same."""


def test_overlap_of_half_shifted_boxes_is_a_third_and_grows_with_the_buffer():
    a, b = np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]])
    assert overlaps(a, b, 0.0)[0, 0] == pytest.approx(50 / 150)
    # grown by half a side: [-5, -5, 15, 15] and [0, -5, 20, 15] share 15 x 20 of 400 + 400 - 300
    assert overlaps(a, b, 0.5)[0, 0] == pytest.approx(300 / 500)


def test_greedy_match_takes_the_best_pair_first_and_respects_the_floor():
    similarity = np.array([[0.9, 0.8], [0.85, 0.1]])
    found = greedy_match(similarity, 0.2)
    assert found.pairs.tolist() == [[0, 0]]
    assert found.tracks.tolist() == [1] and found.detections.tolist() == [1]


def test_match_subsets_reports_indices_of_the_whole_matrix():
    similarity = np.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.7], [0.0, 0.6, 0.0]])
    found = match_subsets(similarity, np.array([1, 2]), np.array([1, 2]), 0.5)
    assert sorted(found.pairs.tolist()) == [[1, 2], [2, 1]]
    assert found.tracks.size == 0 and found.detections.size == 0


def test_motion_predicts_with_velocity_and_corrects_by_the_gains():
    model = MotionModel(position_gain=0.5, velocity_gain=0.25, coast_decay=0.5)
    state, velocity = np.array([[10.0, 20.0, 8.0, 8.0]]), np.array([[2.0, 0.0, 0.0, 0.0]])
    predicted = model.predict(state, velocity)
    assert predicted.tolist() == [[12.0, 20.0, 8.0, 8.0]]
    corrected, new_velocity = model.correct(predicted, velocity, np.array([[16.0, 20.0, 8.0, 8.0]]))
    assert corrected.tolist() == [[14.0, 20.0, 8.0, 8.0]]  # half of the 4-pixel surprise
    assert new_velocity.tolist() == [[3.0, 0.0, 0.0, 0.0]]  # a quarter of it
    assert model.coast(new_velocity).tolist() == [[1.5, 0.0, 0.0, 0.0]]
    assert to_boxes(to_state(np.array([[1.0, 2.0, 5.0, 10.0]]))).tolist() == [[1.0, 2.0, 5.0, 10.0]]


def walk(frame: int) -> np.ndarray:
    """Two faces: one walking right 3 px a frame, one standing still."""
    return np.array([[10 + 3 * frame, 10, 40 + 3 * frame, 40], [200, 200, 230, 230]], float)


def test_tracks_are_confirmed_after_their_hits_and_keep_their_ids():
    tracker = Tracker(TrackerOptions(confirm_hits=3))
    ids = [tracker.update(walk(f), np.array([0.9, 0.9])).ids.tolist() for f in range(6)]
    assert ids[:2] == [[NO_TRACK, NO_TRACK]] * 2
    assert ids[2:] == [[1, 2]] * 4
    assert tracker.people == 2


@pytest.mark.parametrize("missed", [1, 5, 10])
def test_a_track_survives_missed_frames_up_to_its_buffer(missed):
    tracker = Tracker(TrackerOptions(lost_frames=10))
    for f in range(5):
        tracker.update(walk(f), np.array([0.9, 0.9]))
    for f in range(5, 5 + missed):
        assert tracker.update(walk(f)[1:], np.array([0.9])).ended.size == 0
    back = tracker.update(walk(5 + missed), np.array([0.9, 0.9]))
    assert back.ids.tolist() == [1, 2]


def test_a_track_ends_after_its_buffer_and_its_id_is_never_reused():
    tracker = Tracker(TrackerOptions(lost_frames=4, confirm_hits=1))
    first = tracker.update(walk(0), np.array([0.9, 0.9]))
    ended = [tracker.update(walk(f)[1:], np.array([0.9])).ended.tolist() for f in range(1, 7)]
    assert ended == [[], [], [], [], [first.keys[0]], []]  # missed frames 1..4 kept, the 5th ends it
    again = tracker.update(walk(7), np.array([0.9, 0.9]))
    assert again.ids.tolist() == [3, 2]
    assert sorted(tracker.reset().tolist()) == sorted(again.keys.tolist())
    assert tracker.update(walk(8), np.array([0.9, 0.9])).ids.tolist() == [4, 5]


def test_low_scores_keep_a_track_alive_but_start_none():
    tracker = Tracker(TrackerOptions(high_score=0.6, confirm_hits=1, lost_frames=0))
    assert tracker.update(walk(0)[:1], np.array([0.9])).ids.tolist() == [1]
    assert tracker.update(walk(1)[:1], np.array([0.3])).ids.tolist() == [1]
    faint = tracker.update(walk(2), np.array([0.3, 0.3]))
    assert faint.ids.tolist() == [1, NO_TRACK] and faint.keys[1] == NO_TRACK


def test_a_track_that_was_not_seen_last_frame_is_not_rescued_by_a_low_score():
    tracker = Tracker(TrackerOptions(high_score=0.6, confirm_hits=1, lost_frames=5))
    tracker.update(walk(0)[:1], np.array([0.9]))
    tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert tracker.update(walk(2)[:1], np.array([0.3])).ids.tolist() == [NO_TRACK]
    assert tracker.update(walk(3)[:1], np.array([0.9])).ids.tolist() == [1]


grid_faces = st.lists(
    st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=12, unique=True
).map(lambda cells: np.array([[60 * x, 60 * y, 60 * x + 30, 60 * y + 30] for x, y in cells], float))


@settings(max_examples=40, deadline=None)
@given(grid_faces, st.randoms(use_true_random=False))
def test_permuting_detections_permutes_their_ids(boxes, rng):
    scores = np.full(len(boxes), 0.9)
    plain, shuffled = Tracker(TrackerOptions(confirm_hits=1)), Tracker(TrackerOptions(confirm_hits=1))
    plain.update(boxes, scores)
    shuffled.update(boxes, scores)
    order = np.array(rng.sample(range(len(boxes)), len(boxes)))
    step = boxes + np.array([4.0, 2.0, 4.0, 2.0])
    assert shuffled.update(step[order], scores).ids.tolist() == plain.update(step, scores).ids[order].tolist()


@settings(max_examples=40, deadline=None)
@given(grid_faces, st.integers(1, 6))
def test_ids_are_unique_within_every_frame(boxes, frames):
    tracker = Tracker(TrackerOptions(confirm_hits=1))
    for f in range(frames):
        ids = tracker.update(boxes + 2 * f, np.full(len(boxes), 0.9)).ids
        assert len(set(ids.tolist())) == len(ids)


def test_log_odds_are_capped():
    assert log_odds(0.5, 4.0) == 0.0
    assert log_odds(0.9, 4.0) == pytest.approx(math.log(9))
    assert log_odds(1.0, 4.0) == 4.0 and log_odds(0.0, 4.0) == -4.0


def test_hysteresis_stops_flips_on_alternating_noisy_looks():
    rule = VoteRule(decay=0.8, switch_margin=1.5)
    vote, labels = Vote(), []
    for frame, p in enumerate([0.8, 0.3, 0.7, 0.3, 0.7, 0.25, 0.7, 0.3] * 4):
        vote = observe(vote, p, frame, 100.0, rule)
        labels.append(vote.label)
    assert set(labels) == {FIRST}
    # without hysteresis the sign of the same sums flips: the margin is what holds the label
    flat = Vote()
    signs = set()
    for frame, p in enumerate([0.8, 0.3, 0.7, 0.3, 0.7, 0.25, 0.7, 0.3] * 4):
        flat = observe(flat, p, frame, 100.0, VoteRule(decay=0.8, switch_margin=0.0))
        signs.add(flat.label)
    assert signs == {FIRST, SECOND}


def test_a_lasting_change_does_flip_the_vote_once():
    rule = VoteRule()
    vote = Vote()
    for frame in range(5):
        vote = observe(vote, 0.95, frame, 100.0, rule)
    labels = []
    for frame in range(5, 15):
        vote = observe(vote, 0.02, frame, 100.0, rule)
        labels.append(vote.label)
    assert labels[-1] == SECOND and labels.count(SECOND) == len(labels) - labels.index(SECOND)
    assert vote.score > 0.9


def test_a_settled_track_is_looked_at_again_when_the_rule_says_so():
    rule = VoteRule(recheck_frames=10, growth=1.5, settled=3.0)
    settled = Vote(log_odds=6.0, label=FIRST, looks=3, last_frame=100, last_area=400.0)
    assert needs_look(Vote(), 0, 400.0, rule)
    assert not needs_look(settled, 109, 500.0, rule)
    assert needs_look(settled, 110, 400.0, rule)  # K frames old
    assert needs_look(settled, 101, 600.0, rule)  # grown 1.5 times
    assert needs_look(Vote(log_odds=2.0, looks=3, last_frame=100, last_area=400.0), 101, 400.0, rule)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,3,4,5", "1,2,nan,4", "5,5,5,5", ""])
def test_malformed_count_lines_are_refused(text):
    with pytest.raises(CountLineError):
        CountLine.parse(text)


def test_a_count_line_outside_the_frame_is_refused():
    CountLine.parse("0,240,640,240").check_inside(640, 480)
    with pytest.raises(CountLineError, match="outside the 640x480 frame"):
        CountLine.parse("0,240,700,240").check_inside(640, 480)


def test_crossings_of_a_segment_not_an_infinite_line():
    line = CountLine(100, 100, 200, 100)  # drawn left to right: down is "in"
    start = np.array([[150, 90], [150, 110], [250, 90], [100, 90], [150, 90], [150, 100]], float)
    end = np.array([[150, 110], [150, 90], [250, 110], [100, 110], [160, 95], [150, 110]], float)
    # down, up, beyond the right end, through the left end point, short of the line, from on it
    assert crossings(line, start, end).tolist() == [1, -1, 0, 1, 0, 0]


def test_back_and_forth_counts_in_and_out_per_label_and_forgets_ended_tracks():
    counter = LineCounter(CountLine(0, 100, 300, 100))
    path = [90, 110, 90, 110, 120]
    for y in path:
        counter.update(np.array([7, 8]), np.array([[50.0, y], [400.0, y]]), ["mask", "no_mask"])
    assert counter.counts == {("mask", "in"): 2, ("mask", "out"): 1}
    counter.forget(np.array([7]))
    counter.update(np.array([7]), np.array([[50.0, 90.0]]), ["mask"])
    assert counter.counts == {("mask", "in"): 2, ("mask", "out"): 1}


def crowd_ids(frames: int = 300, seed: int = 0) -> list[list[int]]:
    """The public ids a tracker gives 20 faces under a shaking camera, a tenth of them missed each frame."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(5) * 120 + 20, np.arange(4) * 110 + 20), -1).reshape(-1, 2)
    boxes = np.concatenate([grid, grid + 30], axis=1).astype(np.float64)
    tracker = Tracker()
    ids = []
    for _ in range(frames):
        shift = np.tile(rng.normal(0, 2, 2), 2) + np.tile(rng.normal(0, 0.5, (len(boxes), 2)), 2)
        boxes = boxes + shift  # the camera shakes, each face jitters; sizes stay
        seen = rng.random(len(boxes)) >= 0.1
        update = tracker.update(boxes[seen], rng.uniform(0.6, 1.0, int(seen.sum())))
        row = np.full(len(boxes), -1)
        row[seen] = update.ids
        ids.append(row.tolist())
    return ids


def test_a_crowd_keeps_one_id_per_face_and_the_same_ids_on_every_machine():
    """20 faces, a tenth missed each frame: every face keeps one id for good. The digest of every frame's
    ids is the one computed on x86-64, so this test passing under scripts/aarch64_check.sh means the same
    tracks on arm64."""
    ids = np.array(crowd_ids())
    per_face = [set(column[column > 0].tolist()) for column in ids.T]
    assert all(len(face) == 1 for face in per_face)
    assert sorted(face.pop() for face in per_face) == list(range(1, 21))
    assert hashlib.sha256(ids.tobytes()).hexdigest()[:16] == CROWD_DIGEST
