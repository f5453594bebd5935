"""The wheel is deployable on its own: built from the checkout, installed with ``[tflite]`` into a fresh
virtual environment, ``edgemask-run`` finds its models from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from edgemask.core.formats import FORMATS

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*"
)


def build_wheel(out: Path) -> Path:
    """A wheel of a copy of the checkout (a stale ``build/`` folder cannot leak into it)."""
    tree = shutil.copytree(REPO, out / "tree", ignore=NOT_SOURCES)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run([*pip, str(tree)], check=True, capture_output=True)
    return next(out.glob("edgemask-*.whl"))


@pytest.mark.slow
def test_an_installed_wheel_runs_with_its_own_models(tmp_path: Path, scenes_dir: Path) -> None:
    wheel = build_wheel(tmp_path)
    shipped = {Path(n).name for n in zipfile.ZipFile(wheel).namelist() if n.startswith("edgemask/models/")}
    deployable = {
        p.name for p in (REPO / "models").iterdir() if p.suffix in {f.suffix for f in FORMATS.values()}
    }
    assert shipped == deployable and "mask_classifier_int8.tflite" in shipped
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    subprocess.run(
        [env_dir / "bin" / "python", "-m", "pip", "install", "-q", f"{wheel}[tflite]"],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(scenes_dir / "images" / "maksssksksss244.jpg", elsewhere / "image.jpg")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEMASK_")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["edgemask-run", "--source", "image.jpg", "--json"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["source"] == "image.jpg" and len(record["faces"]) >= 3
