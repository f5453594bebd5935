"""A plain HTTP client for the live view tests: requests, MJPEG parts, and a strict reading of the
Prometheus text exposition format (every line must match its grammar)."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|NaN|[+-]Inf)"
SAMPLE = re.compile(rf"({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*,?)?\}})? ({VALUE})(?: -?\d+)?")
HELP = re.compile(rf"# HELP {NAME} .*")
TYPE = re.compile(rf"# TYPE {NAME} (?:counter|gauge|summary|histogram|untyped)")
LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(name, ((label, value), ...)): number}``; any line outside the grammar fails the test."""
    assert text.endswith("\n")
    samples = {}
    for line in text[:-1].split("\n"):  # lines end at \n only, whatever else a label value holds
        if line.startswith("#"):
            assert HELP.fullmatch(line) or TYPE.fullmatch(line), line
            continue
        match = SAMPLE.fullmatch(line)
        assert match, line
        labels = tuple((k, unescape(v)) for k, v in LABEL_PAIR.findall(match.group(2) or ""))
        key = (match.group(1), labels)
        assert key not in samples, f"duplicate sample {line}"
        samples[key] = float(match.group(3))
    return samples


def connect(url: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    return connection.getresponse()


def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """``(status, content type, body)`` of one request."""
    response = connect(url, path, headers)
    body = response.read()
    response.close()
    return response.status, response.getheader("Content-Type", ""), body


def stats(url: str, token: str | None = None) -> dict:
    status, _, body = get(url, "/stats.json" + (f"?token={token}" if token else ""))
    assert status == 200
    return json.loads(body)


def read_part(response: http.client.HTTPResponse) -> bytes | None:
    """The next JPEG of a ``multipart/x-mixed-replace`` stream, None at its closing boundary."""
    boundary = response.fp.readline().strip()
    if boundary == b"--frame--":
        return None
    assert boundary == b"--frame", boundary
    headers = {}
    while line := response.fp.readline().strip():
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    data = response.fp.read(int(headers["content-length"]))
    assert response.fp.readline() == b"\r\n"
    return data


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(url: str, profile: Path, *flags: str) -> str:
    """Run headless Chromium on ``url`` and return its stdout; skips when no Chromium is installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium) for the browser check")
    command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False).stdout
