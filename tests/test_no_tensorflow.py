"""The runtime never imports TensorFlow: every runtime module, the pipeline and edgemask-run run in a
subprocess where importing tensorflow (or Keras, or Ray: only ``--engine ray`` may) fails, and afterwards
none of them is in sys.modules."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgemask.app.models import model_dirs
from edgemask.core.formats import DEFAULT_DETECTOR, DEFAULT_FORMAT, default_precision, model_filename

BLOCKER = '''
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras", "ray")


class BlockTensorFlow:
    """A meta-path finder that refuses TensorFlow, Keras and Ray, as on a device without them."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the edgemask runtime must not need it")
        return None


sys.meta_path.insert(0, BlockTensorFlow())
'''

OFFLINE = ("edgemask.training", "edgemask.export", "edgemask.evaluation")
"""The packages that may need TensorFlow (behind the train/export/bench extras); everything else is the
runtime a device installs."""


def runtime_modules() -> list[str]:
    """Every module of the installed package outside :data:`OFFLINE`, found by walking it."""
    import edgemask

    names = ["edgemask"]
    for info in pkgutil.walk_packages(edgemask.__path__, "edgemask."):
        if not info.name.startswith(OFFLINE):
            names.append(info.name)
    return names


def test_the_runtime_module_list_covers_core_and_app() -> None:
    names = set(runtime_modules())
    assert {"edgemask.core.pipeline", "edgemask.core.detectors.yunet", "edgemask.app.runner"} <= names
    assert not any(n.startswith(OFFLINE) for n in names)


SCRIPT = """
import importlib, io, json, sys
from contextlib import redirect_stdout

try:
    import tensorflow  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the blocker is not active")

for name in {modules!r}:
    importlib.import_module(name)

from edgemask.app.cli import main
from runtime_fakes import FakePipeline

images = {images!r}
out = io.StringIO()
with redirect_stdout(out):
    assert main(["--source", images[0], "--json", "--quiet"], make_pipeline=lambda a: FakePipeline()) == 0
    if {real!r}:
        assert main(["--source", {folder!r}, "--json", "--quiet", "--max-frames", "2"]) == 0
records = [json.loads(line) for line in out.getvalue().splitlines()]
assert len(records) == (3 if {real!r} else 1), records
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "ray"))
assert not leaked, leaked
print("OK", len(records), "records; backend modules:", sorted(m for m in sys.modules if "litert" in m)[:1])
"""


def test_runtime_and_cli_never_import_tensorflow(tmp_path: Path, scenes_dir: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    images = [str(p) for p in sorted((scenes_dir / "images").iterdir())[:2]]
    folder = tmp_path / "two"
    folder.mkdir()
    for p in images:
        (folder / Path(p).name).symlink_to(p)
    needed = [
        model_filename(m, DEFAULT_FORMAT, default_precision(m)) for m in (DEFAULT_DETECTOR, "classifier")
    ]
    found = [d for d in model_dirs() if all((d / name).is_file() for name in needed)]
    real = bool(found)
    script = SCRIPT.format(modules=runtime_modules(), images=images, real=real, folder=str(folder))
    tests_dir = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(tests_dir)])}
    if found:  # the subprocess runs elsewhere: name the models folder found here
        env["EDGEMASK_MODELS"] = str(found[0])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("OK 3 records" if real else "OK 1 records"), result.stdout


LIGHT_COMMANDS = {
    "edgemask-train": (
        "edgemask.training.cli:train_main",
        [
            "classifier",
            "--data",
            "{data}",
            "--cache-dir",
            "{tmp}/cache",
            "--run-dir",
            "{tmp}/run",
            "--out",
            "{tmp}/m.keras",
        ],
        "train",
    ),
    "edgemask-export": ("edgemask.export.cli:main", ["--out", "{tmp}/models"], "export"),
    "edgemask-eval": (
        "edgemask.training.cli:eval_main",
        ["--model", "{tmp}/m.keras", "--data", "{data}"],
        "train",
    ),
}


def run_blocked(entry: str, argv: list[str], site: Path) -> subprocess.CompletedProcess:
    """``entry(argv)`` in a subprocess where TensorFlow and Keras cannot be imported (the blocker goes
    into ``site``, which is also the working directory)."""
    module, function = entry.split(":")
    (site / "sitecustomize.py").write_text(BLOCKER)
    code = f"import sys\nfrom {module} import {function}\nsys.exit({function}({argv!r}))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=site
    )


def crop_folders(root: Path, values: tuple[int, int] = (40, 200)) -> Path:
    for label, value in zip(("with_mask", "without_mask"), values, strict=True):
        (root / label).mkdir(parents=True)
        cv2.imwrite(str(root / label / "a.png"), np.full((32, 32, 3), value, np.uint8))
    return root


@pytest.mark.parametrize("command", sorted(LIGHT_COMMANDS))
def test_commands_needing_tensorflow_name_their_extra_and_do_nothing(tmp_path: Path, command: str) -> None:
    entry, argv, extra = LIGHT_COMMANDS[command]
    work = tmp_path / "work"
    data = crop_folders(work / "crops")
    (work / "m.keras").write_bytes(b"PK")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    done = run_blocked(entry, [a.format(data=data, tmp=work) for a in argv], tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "needs tensorflow, keras" in lines[0] and f"pip install 'edgemask[{extra}]'" in lines[0]
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before  # no cache, run folder, models


def test_eval_of_an_exported_model_needs_no_tensorflow(tmp_path: Path) -> None:
    model = Path(__file__).resolve().parent.parent / "models" / "mask_classifier_int8.tflite"
    data = crop_folders(tmp_path / "crops")
    argv = ["--model", str(model), "--data", str(data), "--json"]
    done = run_blocked("edgemask.training.cli:eval_main", argv, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["results"][str(data)]["n"] == 2
