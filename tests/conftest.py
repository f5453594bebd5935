"""Shared fixtures: assets come from ``$EDGEMASK_ASSETS`` (default ``../shared/assets``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgemask import assets

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


@pytest.fixture(scope="session", autouse=True)
def private_choice_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """edgemask-run's measured file choice goes to the session's own cache, never the user's (session
    scope: module fixtures run edgemask-run before any function fixture)."""
    path = tmp_path_factory.getbasetemp() / "file-choice.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("edgemask.app.autoselect.default_cache_path", lambda: path)
        yield


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
