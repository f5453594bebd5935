"""The live view's parts without the CLI: address parsing, the one-slot frame holder, the figures, the
three renderings, and the HTTP server (token, viewer limit, slow and vanished clients)."""

from __future__ import annotations

import argparse
import html
import math
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from live_client import chromium, connect, decode, get, parse_metrics, read_part, stats
from runtime_fakes import read_index, stamp_index

from edgemask.app import livepage, serve
from edgemask.app.draw import annotate
from edgemask.app.livepage import render_metrics, render_page
from edgemask.app.liveview import JPEG_QUALITY, LatestFrame, LiveView, quantile
from edgemask.app.serve import LiveServer
from edgemask.app.sources import Frame
from edgemask.argtypes import host_port
from edgemask.core.pipeline import Face, FrameResult, Timings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0", ("127.0.0.1", 0)),
        ("65535", ("127.0.0.1", 65535)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("localhost:80", ("localhost", 80)),
        ("pi.local:9000", ("pi.local", 9000)),
        ("[::]:8080", ("::", 8080)),
        ("[::1]:0", ("::1", 0)),
    ],
)
def test_host_port_accepts(text: str, expected: tuple[str, int]) -> None:
    assert host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "65536", "-1", "80.5", "host:", ":8080", "::1:8080", "[::1]", "a b:80", "٣"]
)
def test_host_port_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        host_port(text)


DECIMAL_QS = st.sampled_from(["0", "0.01", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95", "0.99", "1"])


@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60), q=DECIMAL_QS)
@settings(max_examples=200, deadline=None)
def test_quantile_is_the_nearest_rank(values: list[float], q: str) -> None:
    ordered = sorted(values)
    rank = max(1, math.ceil(Fraction(q) * len(ordered)))  # the definition, in exact arithmetic
    assert quantile(ordered, float(q)) == ordered[rank - 1]
    assert quantile(ordered, 0.5) <= quantile(ordered, 0.99)


def test_quantile_of_nothing() -> None:
    assert quantile([], 0.5) is None


def frame(index: int, value: int = 90, size: tuple[int, int] = (120, 160)) -> Frame:
    image = stamp_index(np.full((*size, 3), value, np.uint8), index)
    return Frame(image, index, "clip.avi", "clip.avi")


CENTRE_MASK = Face((40, 30, 120, 90), "mask", 0.9, 0.8)
CORNER_BARE = Face((0, 0, 8, 8), "no_mask", 0.6, 0.5)


def test_latest_frame_gives_the_newest_once_and_encodes_it_once(monkeypatch) -> None:
    holder = LatestFrame()
    encodes = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a: encodes.append(1) or real(*a))
    for k in range(5):
        holder.put(frame(k).image, [CENTRE_MASK], 12.5)
    seq, jpeg = holder.next_after(0, timeout=0)
    assert seq == 5 and read_index(decode(jpeg)) == 4  # frames 0-3 were replaced, never encoded
    assert holder.next_after(0, timeout=0) == (5, jpeg)  # a second client: same bytes, no new encoding
    assert len(encodes) == 1
    assert holder.next_after(5, timeout=0.01) is None and not holder.done


def test_end_wakes_waiting_clients_after_the_last_frame() -> None:
    holder = LatestFrame()
    holder.put(frame(0).image, [], None)
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(holder.next_after(1, timeout=30)))
    waiter.start()
    time.sleep(0.05)
    holder.end()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and got == [None] and holder.done
    seq, jpeg = holder.next_after(0, timeout=30)  # a client arriving after the end still gets the last frame
    assert seq == 1 and read_index(decode(jpeg)) == 0


def feed(view: LiveView, item: Frame, faces: list, timings: Timings, fps, shown_fps) -> None:
    """What the loop does with a processed frame: count it in the run's tally, hand it to the view."""
    view.tally.frame(faces, timings)
    view.publish(item, FrameResult(faces, timings), fps, shown_fps)


def fed_view(frames: int = 4) -> LiveView:
    """A view fed ``frames`` frames: the even ones with a masked face and a bare one, the odd ones empty;
    frame k took k+1 ms to detect, 1 ms to classify."""
    view = LiveView(window=3)
    view.describe(
        {"detector": "det.tflite", "family": "yunet", "classifier": "cls.tflite", "runtime": "tflite"},
        {"name": "clip.avi", "kind": "video", "total": frames, "live": False},
    )
    for k in range(frames):
        faces = [CENTRE_MASK, CORNER_BARE] if k % 2 == 0 else []
        timings = Timings(detect=k + 1.0, classify=1.0, total=k + 2.0)
        feed(view, frame(k), faces, timings, fps=10.0 + k, shown_fps=10.0 + k)
    view.tally.skip("broken.jpg", "unreadable file")
    return view


def test_figures_count_every_frame_and_face() -> None:
    figures = fed_view(4).snapshot()
    assert figures["frames"] == 4 and figures["skipped"] == 1
    assert figures["faces"] == {"total": 4, "mask": 2, "no_mask": 2}
    assert figures["last_frame"]["index"] == 3 and figures["last_frame"]["faces"]["total"] == 0
    assert figures["fps"] == 13.0
    detect = figures["ms"]["detect"]
    assert (detect["last"], detect["sum"], detect["count"], detect["mean"]) == (4.0, 10.0, 4, 2.5)
    assert (detect["p50"], detect["p99"]) == (3.0, 4.0)  # quantiles over the last 3 frames: 2, 3, 4 ms
    assert not figures["ended"] and figures["status"] == "running"


def test_figures_freeze_when_the_source_ends() -> None:
    view = fed_view(2)
    view.finish("2 frames processed")
    first = view.snapshot()
    time.sleep(0.02)
    assert view.snapshot() == first
    assert first["ended"] and first["status"] == "ended: 2 frames processed" and view.frames.done


def test_metrics_follow_the_grammar_and_equal_the_figures() -> None:
    figures = fed_view(4).snapshot()
    samples = parse_metrics(render_metrics(figures))
    assert samples[("edgemask_frames_total", ())] == 4
    assert samples[("edgemask_faces_total", (("label", "mask"),))] == 2
    assert samples[("edgemask_faces_total", (("label", "no_mask"),))] == 2
    assert samples[("edgemask_skipped_total", ())] == 1
    assert samples[("edgemask_stage_seconds", (("stage", "detect"), ("quantile", "0.5")))] == 0.003
    assert samples[("edgemask_stage_seconds_sum", (("stage", "detect"),))] == 0.01
    assert samples[("edgemask_stage_seconds_count", (("stage", "total"),))] == 4
    assert samples[("edgemask_source_ended", ())] == 0


def test_metrics_before_the_first_frame_are_nan_not_missing() -> None:
    samples = parse_metrics(render_metrics(LiveView().snapshot()))
    assert math.isnan(samples[("edgemask_stage_seconds", (("stage", "total"), ("quantile", "0.9")))])
    assert math.isnan(samples[("edgemask_fps", ())])
    assert samples[("edgemask_frames_total", ())] == 0


@given(name=st.text(max_size=30))
@settings(max_examples=100, deadline=None)
def test_any_model_file_name_survives_as_a_label(name: str) -> None:
    figures = LiveView().snapshot()
    figures["models"] = {"detector": name, "family": "yunet", "classifier": "c", "runtime": "r"}
    samples = parse_metrics(render_metrics(figures))
    info = next(labels for (metric, labels) in samples if metric == "edgemask_info")
    assert dict(info)["detector"] == name


def test_page_shows_the_figures_and_escapes_names() -> None:
    view = fed_view(4)
    view.describe({"detector": "<b>det</b>.tflite"}, {"name": "<script>alert(1)</script>", "kind": "video"})
    page = render_page(view.snapshot(), token="s3 cr&t")
    assert "<script>alert(1)</script>" not in page and html.escape("<script>alert(1)</script>") in page
    assert "<b>det</b>" not in page
    assert '<img src="/stream.mjpg?token=s3%20cr%26t"' in page
    assert 'data-stats="/stats.json?token=s3%20cr%26t"' in page
    assert '<td data-stat="frames">4</td>' in page
    assert '<td data-stat="faces.mask">2</td>' in page
    assert '<td data-stat="ms.detect.mean" data-digits="1">2.5</td>' in page


def test_page_before_the_first_frame() -> None:
    page = render_page(LiveView().snapshot())
    assert '<td data-stat="last_frame.faces.total">–</td>' in page
    assert '<img src="/stream.mjpg"' in page


@pytest.fixture
def server() -> Iterator[LiveServer]:
    live = LiveServer(("127.0.0.1", 0), LiveView(), token=None, max_clients=2).start()
    yield live
    live.close()


def publish_until(view: LiveView, done: threading.Event, period: float = 0.005) -> threading.Thread:
    """Publish numbered frames (bright: a masked face) until ``done``."""

    def loop() -> None:
        k = 0
        while not done.is_set():
            feed(view, frame(k, 200), [CENTRE_MASK], Timings(1.0, 1.0, 2.0), 30.0, 30.0)
            k += 1
            time.sleep(period)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_stream_parts_are_the_annotated_newest_frames(server: LiveServer) -> None:
    done = threading.Event()
    publish_until(server.view, done)
    try:
        response = connect(server.url, "/stream.mjpg")
        assert response.status == 200
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        indices = []
        for _ in range(5):
            image = decode(read_part(response))
            k = read_index(image)
            indices.append(k)
            annotated = annotate(frame(k, 200).image, [CENTRE_MASK], 30.0)
            quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
            assert np.array_equal(image, decode(cv2.imencode(".jpg", annotated, quality)[1].tobytes()))
        assert indices == sorted(set(indices))  # each part newer than the one before
        response.close()
    finally:
        done.set()


def test_the_stream_ends_after_the_last_frame_of_an_ended_source(server: LiveServer) -> None:
    feed(server.view, frame(7), [], Timings(), None, None)
    server.view.finish("done")
    response = connect(server.url, "/stream.mjpg")
    assert read_index(decode(read_part(response))) == 7
    assert read_part(response) is None


def test_token_is_required_on_every_endpoint() -> None:
    live = LiveServer(("127.0.0.1", 0), LiveView(), token="s3cret").start()
    try:
        live.view.finish("done")
        for path in ("/", "/stream.mjpg", "/stats.json", "/metrics", "/nothing"):
            assert get(live.url, path)[0] == 401
            assert get(live.url, path + "?token=wrong")[0] == 401
            assert get(live.url, path, {"Authorization": "Bearer wrong"})[0] == 401
        for path in ("/", "/stream.mjpg", "/stats.json", "/metrics"):
            assert get(live.url, path + "?token=s3cret")[0] == 200
            assert get(live.url, path, {"Authorization": "Bearer s3cret"})[0] == 200
        assert get(live.url, "/nothing?token=s3cret")[0] == 404
        _, content_type, page = get(live.url, "/", {"Authorization": "Bearer s3cret"})
        assert content_type.startswith("text/html") and b'src="/stream.mjpg?token=s3cret"' in page
        assert stats(live.url, "s3cret")["ended"]
    finally:
        live.close()


def test_extra_viewers_get_503_and_a_freed_slot_is_reused(server: LiveServer) -> None:
    done = threading.Event()
    publish_until(server.view, done)
    try:
        first, second = connect(server.url, "/stream.mjpg"), connect(server.url, "/stream.mjpg")
        assert read_part(first) and read_part(second)
        assert stats(server.url)["stream_clients"] == 2
        status, _, body = get(server.url, "/stream.mjpg")
        assert status == 503 and b"2 viewers already" in body
        assert get(server.url, "/stats.json")[0] == 200  # the limit is on pictures, not on figures
        first.close()
        deadline = time.monotonic() + 10
        while stats(server.url)["stream_clients"] > 1 and time.monotonic() < deadline:
            time.sleep(0.02)  # the server notices at its next write
        third = connect(server.url, "/stream.mjpg")
        assert third.status == 200 and read_part(third)
        third.close()
        second.close()
    finally:
        done.set()


def test_fps_cap_and_bad_requests(server: LiveServer) -> None:
    assert get(server.url, "/stream.mjpg?fps=0")[0] == 400
    assert get(server.url, "/stream.mjpg?fps=fast")[0] == 400
    done = threading.Event()
    publish_until(server.view, done, period=0.002)
    try:
        response = connect(server.url, "/stream.mjpg?fps=5")
        start, parts = time.monotonic(), 0
        while time.monotonic() - start < 1.0:
            read_part(response)
            parts += 1
        response.close()
        assert 2 <= parts <= 7  # at most one part per 0.2 s, (about 250 frames were published)
    finally:
        done.set()


def test_a_stalled_viewer_never_holds_up_publishing_and_is_dropped(monkeypatch, server: LiveServer) -> None:
    monkeypatch.setattr(serve.LiveHandler, "timeout", 0.5)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (480, 640, 3), np.uint8) for _ in range(4)]  # ~0.5 MB per JPEG
    stalled = socket.create_connection(("127.0.0.1", server.server_port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")  # ... and never reads
    deadline = time.monotonic() + 5
    while stats(server.url)["stream_clients"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    published = 0
    while stats(server.url)["stream_clients"] and time.monotonic() < deadline + 20:
        image = noise[published % 4]
        feed(server.view, Frame(image, published, "n", "n"), [], Timings(), None, None)
        published += 1
        time.sleep(0.005)
    assert stats(server.url)["stream_clients"] == 0  # dropped by its write timeout
    assert stats(server.url)["frames"] == published  # while every frame was published
    stalled.close()


def test_the_page_script_refreshes_the_figures(monkeypatch, server: LiveServer, tmp_path) -> None:
    """The figures change right after the page is rendered; the browser's DOM must show the new ones."""
    view = server.view
    feed(view, frame(0), [CENTRE_MASK], Timings(1.0, 1.0, 2.0), 10.0, 10.0)
    real_render = livepage.render_page

    def render_then_change(figures, token=None):
        page = real_render(figures, token)
        for k in range(1, 6):
            feed(view, frame(k), [CENTRE_MASK, CORNER_BARE], Timings(1.0, 1.0, 2.0), 12.345, 12.3)
        view.finish("all frames processed")
        return page

    monkeypatch.setattr(serve, "render_page", render_then_change)
    dom = chromium(server.url, tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom")
    assert '<td data-stat="frames">6</td>' in dom
    assert '<td data-stat="faces.no_mask">5</td>' in dom
    assert '<td data-stat="fps" data-digits="1">12.3</td>' in dom
    assert '<b data-stat="status">ended: all frames processed</b>' in dom


def test_closing_the_server_ends_every_stream_cleanly() -> None:
    live = LiveServer(("127.0.0.1", 0), LiveView()).start()
    feed(live.view, frame(3), [], Timings(), None, None)
    viewers = [connect(live.url, "/stream.mjpg") for _ in range(2)]
    assert all(read_index(decode(read_part(v))) == 3 for v in viewers)
    live.close()
    assert [read_part(v) for v in viewers] == [None, None]  # the closing boundary, not a cut connection
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", live.server_port), timeout=1).close()
