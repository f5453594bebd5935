"""Shared fixtures: assets come from ``$EDGEMASK_ASSETS`` (default ``../shared/assets``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgemask import assets

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


@pytest.fixture(scope="session")
def scenes_dir() -> Path:
    try:
        return assets.dataset("scenes_dev")
    except assets.AssetError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def res10() -> tuple[Path, Path]:
    """OpenCV's res10 Caffe files (deploy.prototxt, caffemodel)."""
    try:
        return assets.fetch(assets.DETECTOR_PROTOTXT), assets.fetch(assets.DETECTOR_CAFFEMODEL)
    except assets.AssetError as e:
        pytest.skip(str(e))
