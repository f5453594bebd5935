"""``edgemask-run --serve``: a live view over HTTP for devices without a screen, standard library only.

Endpoints: ``/`` the page, ``/stream.mjpg`` the annotated frames as MJPEG (``?fps=`` caps the rate),
``/stats.json`` the figures, ``/metrics`` the same for Prometheus. Each client has its own thread and
reads from :class:`~edgemask.app.liveview.LiveView`, never the other way round: a slow or vanished client
is dropped by its socket timeout and costs the processing loop nothing. Stream clients are limited
(extra ones get 503); with ``token`` every endpoint wants ``?token=`` or ``Authorization: Bearer``.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from edgemask.app.livepage import METRICS_CONTENT_TYPE, render_json, render_metrics, render_page
from edgemask.app.liveview import LiveView
from edgemask.argtypes import at_least, host_port

DEFAULT_MAX_CLIENTS = 4
CLIENT_TIMEOUT = 10.0
"""Seconds a client may leave a read or a write hanging before it is dropped."""
WAIT_POLL = 1.0
SHUTDOWN_POLL = 0.2
"""Seconds until the server notices a shutdown request, so Ctrl-C ends the process promptly."""
STREAMS_CLOSE_WAIT = 2.0
"""Seconds a stop waits for the streams to send their last part and closing boundary."""
MAX_STREAM_FPS = 100.0
BOUNDARY = "frame"


class ServeError(Exception):
    """The live view cannot start (address in use, unknown host): one line, exit code 2."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class LiveServer(ThreadingHTTPServer):
    """The HTTP server of one run; ``start`` serves from a daemon thread, ``close`` stops it and ends
    every stream."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        view: LiveView,
        token: str | None = None,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.view = view
        self.token = token
        self.max_clients = max_clients
        self.warn = warn or (lambda message: print(message, file=sys.stderr))
        self._slots = threading.BoundedSemaphore(max_clients)
        self._clients_changed = threading.Condition()
        self.stream_clients = 0
        self._thread: threading.Thread | None = None
        super().__init__(address, LiveHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host, which can hang a device offline."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{url_host(self.server_address[0])}:{self.server_port}/"

    def start(self) -> LiveServer:
        self._thread = threading.Thread(
            target=self.serve_forever, args=(SHUTDOWN_POLL,), name="edgemask-live-view", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """End every stream (each gets its closing boundary unless its client has stalled), stop
        accepting, release the port."""
        self.view.frames.end()
        with self._clients_changed:
            self._clients_changed.wait_for(lambda: self.stream_clients == 0, STREAMS_CLOSE_WAIT)
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()

    def figures(self) -> dict:
        figures = self.view.snapshot()
        figures["stream_clients"] = self.stream_clients
        return figures

    @contextmanager
    def stream_slot(self) -> Iterator[bool]:
        """True while this client holds one of ``max_clients`` stream slots, False if none was free."""
        if not self._slots.acquire(blocking=False):
            yield False
            return
        with self._clients_changed:
            self.stream_clients += 1
        try:
            yield True
        finally:
            with self._clients_changed:
                self.stream_clients -= 1
                self._clients_changed.notify_all()
            self._slots.release()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away is routine; anything else is one line, never a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self.warn(f"live view: a request failed: {type(error).__name__}: {error}")


class LiveHandler(BaseHTTPRequestHandler):
    server: LiveServer
    timeout = CLIENT_TIMEOUT
    server_version = "edgemask-live"

    def log_message(self, format: str, *args: object) -> None:
        """No line per request: it would bury the progress bar and the warnings on stderr."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self.authorized(query):
            self.reply(
                HTTPStatus.UNAUTHORIZED,
                "a token is needed: ?token=... or Authorization: Bearer ...\n",
                extra={"WWW-Authenticate": 'Bearer realm="edgemask"'},
            )
            return
        if url.path == "/":
            self.reply(
                HTTPStatus.OK,
                render_page(self.server.figures(), self.server.token),
                "text/html; charset=utf-8",
            )
        elif url.path == "/stats.json":
            self.reply(HTTPStatus.OK, render_json(self.server.figures()), "application/json")
        elif url.path == "/metrics":
            self.reply(HTTPStatus.OK, render_metrics(self.server.figures()), METRICS_CONTENT_TYPE)
        elif url.path == "/stream.mjpg":
            self.stream(query)
        else:
            self.reply(HTTPStatus.NOT_FOUND, "not found: try / /stream.mjpg /stats.json /metrics\n")

    def authorized(self, query: dict[str, list[str]]) -> bool:
        expected = self.server.token
        if expected is None:
            return True
        header = self.headers.get("Authorization", "")
        offered = header[7:] if header.lower().startswith("bearer ") else query.get("token", [""])[-1]
        return hmac.compare_digest(offered.encode(), expected.encode())

    def reply(
        self,
        status: HTTPStatus,
        body: str,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def stream(self, query: dict[str, list[str]]) -> None:
        cap = stream_fps(query.get("fps", [""])[-1])
        if cap is not None and cap <= 0:
            self.reply(
                HTTPStatus.BAD_REQUEST, f"fps: expected a number above 0 and up to {MAX_STREAM_FPS:g}\n"
            )
            return
        with self.server.stream_slot() as admitted:
            if not admitted:
                self.reply(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"{self.server.max_clients} viewers already; try again later\n",
                    extra={"Retry-After": "5"},
                )
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            try:
                self.send_frames(cap)
            except (ConnectionError, TimeoutError):
                return  # the client went away or stopped reading: drop it

    def send_frames(self, cap: float | None) -> None:
        """Newest frame first, each at most once, until the source has ended and its last frame is sent."""
        frames = self.server.view.frames
        seq = 0
        while True:
            got = frames.next_after(seq, WAIT_POLL)
            if got is None:
                if frames.done:
                    break
                continue
            seq, jpeg = got
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            self.wfile.write(head.encode() + jpeg + b"\r\n")
            if cap is not None:
                time.sleep(1.0 / cap)
        self.wfile.write(f"--{BOUNDARY}--\r\n".encode())


def stream_fps(text: str) -> float | None:
    """The ``?fps=`` cap: None when absent, 0 when unusable (refused with 400)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if 0 < value <= MAX_STREAM_FPS else 0.0


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    web = parser.add_argument_group(
        "live view in a browser",
        "the annotated picture at / and /stream.mjpg, figures at /stats.json, Prometheus text at /metrics;\n"
        "after a video or folder has ended, its last frame and final figures stay up until Ctrl-C",
    )
    web.add_argument(
        "--serve",
        type=host_port,
        metavar="[HOST:]PORT",
        help="serve the live view on PORT (0: any free port) of HOST (default 127.0.0.1, this machine "
        "only; 0.0.0.0 opens it to the network)",
    )
    web.add_argument("--serve-token", metavar="TOKEN", help="require ?token=TOKEN or Authorization: Bearer")
    web.add_argument(
        "--serve-clients",
        type=at_least(1),
        default=DEFAULT_MAX_CLIENTS,
        metavar="N",
        help="viewers of the picture at once; more get 503 (default: %(default)s)",
    )


@contextmanager
def serving(
    address: tuple[str, int],
    token: str | None,
    max_clients: int,
    say: Callable[[str], None],
) -> Iterator[LiveServer]:
    """The live view of a run, open and announced on stderr, closed on the way out."""
    host, port = address
    try:
        server = LiveServer(address, LiveView(), token, max_clients, say)
    except OSError as e:
        raise ServeError(f"--serve {url_host(host)}:{port}: cannot listen there ({e.strerror or e})") from e
    server.start()
    try:
        say(f"live view on {server.url}" + (" (add ?token=...)" if token else ""))
        if not is_loopback(host):
            advice = "" if token else "; add --serve-token to require a token"
            say(
                f"warning: serving on {url_host(host)}: the live picture and figures are reachable from "
                f"the network over plain HTTP{advice}"
            )
        yield server
    finally:
        server.close()


def serve_until_stopped(
    server: LiveServer, stop: Callable[[], bool], say: Callable[[str], None], poll: float = 0.2
) -> None:
    """After a finite source, keep the last frame and the final figures up until Ctrl-C or SIGTERM."""
    say(f"the source has ended; the final picture and figures stay on {server.url} until Ctrl-C")
    while not stop():
        time.sleep(poll)
