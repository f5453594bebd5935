"""Shared fixtures: assets come from ``$EDGEMASK_ASSETS`` (default ``../shared/assets``).

Outside CI a test skips, with its reason, when a tool, an extra or an asset is missing. In CI
(``CI=true``) every such skip is a failure naming what is missing: CI installs everything the tests use,
so a skip there would only hide an untested part.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgemask import assets

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool and extra must be installed: {reason}"


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
