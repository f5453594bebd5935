"""Asset resolution order and the checked download path (exercised with file:// URLs, no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgemask import assets


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "assets"
    (root / "face_detector").mkdir(parents=True)
    monkeypatch.setenv(assets.ENV_VAR, str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return root


def test_explicit_root_wins_over_environment(isolated: Path, tmp_path: Path) -> None:
    other = tmp_path / "explicit"
    (other / "x").mkdir(parents=True)
    (isolated / "x").mkdir()
    assert assets.find("x", root=other) == other / "x"
    assert assets.find("x") == isolated / "x"


def test_missing_asset_names_every_place_searched(isolated: Path) -> None:
    with pytest.raises(assets.AssetError, match="nothing/here") as e:
        assets.find("nothing/here")
    assert str(isolated) in str(e.value)


def test_fetch_downloads_into_cache_and_checks_sha1(isolated: Path, tmp_path: Path) -> None:
    src = tmp_path / "upstream.bin"
    src.write_bytes(b"weights")
    good = assets.Asset("face_detector/w.bin", url=src.as_uri(), sha1=hashlib.sha1(b"weights").hexdigest())
    path = assets.fetch(good)
    assert path == assets.cache_dir() / "face_detector/w.bin"
    assert path.read_bytes() == b"weights"


def test_checksum_mismatch_leaves_no_file(isolated: Path, tmp_path: Path) -> None:
    src = tmp_path / "upstream.bin"
    src.write_bytes(b"tampered")
    bad = assets.Asset("face_detector/w.bin", url=src.as_uri(), sha256="0" * 64)
    with pytest.raises(assets.AssetError, match="checksum mismatch"):
        assets.fetch(bad)
    assert not (assets.cache_dir() / "face_detector").exists() or not any(
        (assets.cache_dir() / "face_detector").iterdir()
    )


def test_unreachable_source_is_a_clear_error(isolated: Path, tmp_path: Path) -> None:
    missing = assets.Asset("face_detector/none.bin", url=(tmp_path / "absent").as_uri())
    with pytest.raises(assets.AssetError, match="could not download"):
        assets.fetch(missing)


def test_shared_detector_matches_the_published_checksums() -> None:
    try:
        model = assets.find(assets.DETECTOR_CAFFEMODEL.relpath)
    except assets.AssetError as e:
        pytest.skip(str(e))
    assert assets.file_digest(model, "sha1") == assets.DETECTOR_CAFFEMODEL.sha1
