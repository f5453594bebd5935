"""What a tracked run shows: track ids on the picture, people and crossings in the live view's page and
/metrics, and a tracked pipeline that survives dropped, repeated and resized frames and camera resets."""

from __future__ import annotations

from argparse import Namespace

import numpy as np
from live_client import parse_metrics
from runtime_fakes import FakeCapture, read_index
from tracking_fakes import scripted_pipeline, walking_down

from edgemask.app.camera import Backoff
from edgemask.app.draw import caption
from edgemask.app.livepage import render_metrics, render_page
from edgemask.app.liveview import LiveView
from edgemask.app.sources import LiveStream
from edgemask.app.tracking import PeopleSink, people_figures, tracked_pipeline
from edgemask.core.pipeline import Face
from edgemask.core.tracked import TrackedPipeline
from edgemask.core.tracking.counting import CountLine


def test_a_tracked_face_is_captioned_with_its_id_and_its_tracks_vote():
    assert caption(Face((0, 0, 9, 9), "mask", 0.93, 0.9)) == "mask 0.93"
    voted = Face((0, 0, 9, 9), "no_mask", 0.55, 0.9, track=7, track_label="mask", track_score=0.991)
    assert caption(voted) == "#7 mask 0.99"


def crossing_run() -> TrackedPipeline:
    pipeline, _ = scripted_pipeline(walking_down(40), [0.95])
    tracking = TrackedPipeline(pipeline, count_line=CountLine.parse("0,100,640,100"))
    for _ in range(40):
        tracking.infer(np.zeros((480, 640, 3), np.uint8))
    return tracking


def test_people_and_crossings_reach_the_metrics_and_the_page():
    view = LiveView()
    PeopleSink(crossing_run(), None, view)  # hands its figures to the view when made
    samples = parse_metrics(render_metrics(view.snapshot()))
    assert samples[("edgemask_people_total", (("label", "mask"),))] == 1
    assert samples[("edgemask_people_total", (("label", "no_mask"),))] == 0
    assert samples[("edgemask_line_crossings_total", (("direction", "in"), ("label", "mask")))] == 1
    assert samples[("edgemask_line_crossings_total", (("direction", "out"), ("label", "mask")))] == 0
    page = render_page(view.snapshot())
    assert '<td data-stat="people.mask">1</td>' in page
    assert '<td data-stat="crossings.in.total">1</td>' in page


def test_an_untracked_run_has_no_people_metrics():
    assert "edgemask_people_total" not in render_metrics(LiveView().snapshot())


def test_dropped_repeated_and_resized_frames_end_tracks_cleanly():
    boxes = walking_down(30)
    script = boxes[:5] + boxes[10:15] + [boxes[15]] * 5 + boxes[16:30]  # a gap, then a frozen stream
    pipeline, _ = scripted_pipeline(script, [0.9])
    tracking = TrackedPipeline(pipeline, fps=10)
    ids = []
    for k in range(len(script)):
        size = (480, 640, 3) if k < 20 else (360, 640, 3)  # the stream reconnects at another size
        ids.append({f.track for f in tracking.infer(np.zeros(size, np.uint8)).faces})
    assert set().union(*ids[2:20]) == {1}  # the same person across the gap and the repeats
    assert set().union(*ids[22:]) == {2}  # a new track after the resize
    assert people_figures(tracking)["people"] == {"total": 2, "mask": 2, "no_mask": 0}


def test_a_camera_that_reconnects_ends_the_tracks_before_its_first_new_frame():
    captures = iter([FakeCapture(6, period=0.01), FakeCapture(6, start=100, period=0.01)])
    stream = LiveStream("0", lambda: next(captures), Backoff(retries=1, delay=0.0), poll=0.05)
    pipeline, _ = scripted_pipeline([[((40, 10, 80, 40), 0.9)]] * 12, [0.9])
    tracking = tracked_pipeline(pipeline, stream, Namespace(track=None, count_line=None), print)
    assert isinstance(tracking, TrackedPipeline)
    ids = [(read_index(f.image), {face.track for face in tracking.infer(f.image).faces}) for f in stream]
    stream.close()
    assert [stamp for stamp, _ in ids] == [0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105]
    assert [track for _, track in ids] == [{None}] * 2 + [{1}] * 4 + [{None}] * 2 + [{2}] * 4
