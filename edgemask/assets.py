"""One place that finds the files edgemask needs: detector weights, ImageNet weights, datasets.

Order: an explicit path > ``$EDGEMASK_ASSETS`` (default ``../shared/assets`` when it exists) > the user
cache > a download from the official source, checked against a published checksum.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "EDGEMASK_ASSETS"
REPO_ROOT = Path(__file__).resolve().parent.parent


class AssetError(FileNotFoundError):
    """An asset could not be found locally nor downloaded."""


@dataclass(frozen=True)
class Asset:
    """A file under the asset root, with where to fetch it and how to check it."""

    relpath: str
    url: str | None = None
    sha1: str | None = None
    sha256: str | None = None


DETECTOR_PROTOTXT = Asset(
    "face_detector/deploy.prototxt",
    url="https://raw.githubusercontent.com/opencv/opencv/4.x/samples/dnn/face_detector/deploy.prototxt",
    sha256="f62621cac923d6f37bd669298c428bb7ee72233b5f8c3389bb893e35ebbcf795",
)
DETECTOR_CAFFEMODEL = Asset(
    "face_detector/res10_300x300_ssd_iter_140000.caffemodel",
    url="https://raw.githubusercontent.com/opencv/opencv_3rdparty/"
    "dnn_samples_face_detector_20170830/res10_300x300_ssd_iter_140000.caffemodel",
    sha1="15aa726b4d46d9f023526d85537db81cbc8dd566",
)
YUNET_COMMIT = "0047ac24afb1a50a0c6105001c89d1b5b805dbf1"
"""libfacedetection.train's commit the YuNet files are pinned at (Apache-2.0, ``LICENSE`` beside them)."""
YUNET_URL = f"https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/{YUNET_COMMIT}"
YUNET_N = Asset(
    "face_detector_yunet/yunet_n_dynamic.onnx",
    url=f"{YUNET_URL}/onnx/yunet_n_dynamic.onnx",
    sha256="104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12",
)
YUNET_S = Asset(
    "face_detector_yunet/yunet_s_dynamic.onnx",
    url=f"{YUNET_URL}/onnx/yunet_s_dynamic.onnx",
    sha256="daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3",
)
MOBILENET_V2_NO_TOP = "keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def asset_roots(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for assets, most specific first."""
    roots: list[Path] = []
    if explicit:
        roots.append(Path(explicit))
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env))
    else:
        for candidate in (Path.cwd() / "../shared/assets", REPO_ROOT / "../shared/assets"):
            if candidate.is_dir():
                roots.append(candidate.resolve())
    roots.append(cache_dir())
    return list(dict.fromkeys(roots))


def cache_dir() -> Path:
    """The per-user download cache (``$XDG_CACHE_HOME/edgemask``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgemask"


def find(relpath: str, root: str | os.PathLike | None = None) -> Path:
    """Return an existing file or folder under the first asset root that has it, or raise AssetError."""
    roots = asset_roots(root)
    for r in roots:
        p = r / relpath
        if p.exists():
            return p
    searched = ", ".join(str(r) for r in roots)
    raise AssetError(f"{relpath!r} not found under: {searched}. Set ${ENV_VAR} or pass the path explicitly.")


def dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """A dataset folder, e.g. ``dataset('mask12k/test')``."""
    return find(f"datasets/{name}", root)


def fetch(asset: Asset, root: str | os.PathLike | None = None) -> Path:
    """Find ``asset`` locally, or download it into the user cache and verify its checksum."""
    try:
        return find(asset.relpath, root)
    except AssetError:
        if asset.url is None:
            raise
    target = cache_dir() / asset.relpath
    download(asset.url, target, sha1=asset.sha1, sha256=asset.sha256)
    return target


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, target: Path, *, sha1: str | None = None, sha256: str | None = None) -> None:
    """Download to a temporary file, check the digest, then move it into place atomically."""
    import urllib.request  # here, not at the top: with ssl and http it adds ~8 MB to every edgemask-run

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
                shutil.copyfileobj(resp, out)
        except OSError as e:  # urllib's URLError included
            raise AssetError(
                f"could not download {url} ({e}); offline? Put the file under ${ENV_VAR}."
            ) from e
        for algorithm, expected in (("sha1", sha1), ("sha256", sha256)):
            if expected and file_digest(tmp, algorithm) != expected:
                raise AssetError(f"checksum mismatch for {url}: {algorithm} is not {expected}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def keras_home(root: str | os.PathLike | None = None) -> Path | None:
    """A writable KERAS_HOME whose ``models/`` holds MobileNetV2's ImageNet weights, or None.

    Keras looks the weights up by file name under ``$KERAS_HOME/models``; the shared copy is read-only,
    so it is linked into a cache folder Keras may write to. None means "let Keras download (and
    hash-check) the weights itself".
    """
    try:
        src = find(MOBILENET_V2_NO_TOP, root)
    except AssetError:
        return None
    home = cache_dir() / "keras"
    dst = home / "models" / src.name
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copyfile(src, dst)
    return home
