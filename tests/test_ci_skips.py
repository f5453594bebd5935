"""In CI a skip is a failure that names what was missing; elsewhere it stays a skip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("no frobnicator on PATH")

def test_fine():
    assert True
"""


def run_pytest(folder: Path, ci: str) -> subprocess.CompletedProcess:
    (folder / "test_skipping.py").write_text(SKIPPING)
    (folder / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    env = {"CI": ci, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=120)


def test_a_skip_fails_in_ci_naming_the_missing_tool(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "true")
    assert result.returncode == 1
    assert "1 failed, 1 passed" in result.stdout
    assert "skipped in CI" in result.stdout and "no frobnicator on PATH" in result.stdout


def test_a_skip_stays_a_skip_outside_ci(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "")
    assert result.returncode == 0
    assert "1 passed, 1 skipped" in result.stdout
