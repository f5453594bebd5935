"""End to end on real images: a short training run writes a model that edgemask-eval reads."""

import json
import shutil
import subprocess
import sys

import pytest

from edgemask.assets import AssetError, dataset
from edgemask.labels import LABELS

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.tf, pytest.mark.slow]
PER_CLASS = 16
INCORRECT_SCENE = "maksssksksss112"  # one face, annotated mask_weared_incorrect


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train one epoch at 64 px on 2x16 mask12k crops through the CLI, with the multi-worker strategy,
    a fixed cosine schedule (last epoch kept) and weight averaging."""
    try:
        source = dataset("mask12k/train")
    except AssetError as e:
        pytest.skip(str(e))
    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    for name in LABELS:
        (data / name).mkdir(parents=True)
        for path in sorted((source / name).iterdir())[:PER_CLASS]:
            shutil.copy(path, data / name / path.name)
    model = root / "m.keras"
    cmd = [
        sys.executable, "-c", "from edgemask.training.cli import train_main; raise SystemExit(train_main())",
        "classifier", "--data", str(data), "--input-size", "64", "--epochs", "1", "--batch-size", "8",
        "--strategy", "multiworker", "--keep", "last", "--schedule", "cosine", "--ema", "0.9",
        "--out", str(model), "--run-dir", str(root / "run"),
        "--cache-dir", str(root / "cache"), "--card", str(root / "README.md"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, data, model, cmd


def test_training_writes_model_metrics_curves_and_card(trained):
    root, _, model, _ = trained
    assert model.is_file()
    metrics = json.loads((root / "m.metrics.json").read_text())
    assert metrics["input_size"] == 64 and metrics["epochs_run"] == 1
    assert metrics["data"]["val"] == {"with_mask": 2, "without_mask": 2}  # 10 % of 16 per class, rounded
    assert metrics["data"]["train"] == {"with_mask": 14, "without_mask": 14}
    assert metrics["evaluations"]["val"]["n"] == 4
    assert (root / "m.curves.png").read_bytes()[:4] == b"\x89PNG"
    card = (root / "README.md").read_text()
    assert "## Classifier" in card and "Seed 1234" in card and "multiworker" in card
    assert "last epoch kept" in card and "cosine" in card and "EMA, momentum 0.9" in card
    assert f"load average {metrics['load_average']:g} at the start" in card
    assert not (root / "run" / "backup").exists()  # a finished run leaves no resume state behind


def test_a_finished_run_is_not_overwritten(trained):
    _, _, model, cmd = trained
    before = model.stat().st_mtime_ns
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "exists" in done.stderr
    assert model.stat().st_mtime_ns == before


def test_eval_reads_the_model_on_folders_and_voc_crops(trained, tmp_path, capsys):
    from edgemask.training.cli import eval_main

    _, data, model, _ = trained
    scenes = dataset("scenes_dev")
    for sub, suffix in (("images", ".png"), ("annotations", ".xml")):
        (tmp_path / "voc" / sub).mkdir(parents=True)
        src = scenes / sub / (INCORRECT_SCENE + suffix)
        if not src.exists():
            src = next((scenes / sub).glob(INCORRECT_SCENE + ".*"))
        shutil.copy(src, tmp_path / "voc" / sub / src.name)
    (data / "with_mask" / "broken.jpg").write_bytes(b"")
    code = eval_main(["--model", str(model), "--data", str(data), "--voc", str(tmp_path / "voc"),
                      "--json", "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["input_size"] == 64
    folder = report["results"][str(data)]
    assert folder["n"] == 2 * PER_CLASS and folder["skipped"] == 1
    assert sum(map(sum, folder["confusion"])) == 2 * PER_CLASS
    assert 0.0 <= folder["far"] <= 1.0 and 0.0 <= folder["frr"] <= 1.0
    voc = report["results"][str(tmp_path / "voc")]
    assert voc["n"] == 0
    assert voc["other_classes"]["mask_weared_incorrect"]["n"] == 1
    assert sum(voc["other_classes"]["mask_weared_incorrect"]["predicted"].values()) == 1
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert len(list((tmp_path / "out").glob("confusion_*.png"))) == 2


def test_eval_text_output_and_errors(trained, capsys):
    from edgemask.training.cli import eval_main

    _, data, model, _ = trained
    assert eval_main(["--model", str(model), "--data", str(data)]) == 0
    text = capsys.readouterr().out
    assert "true \\ predicted" in text and "FAR" in text and "FRR" in text and "precision" in text
    assert eval_main(["--model", str(model), "--data", str(data / "with_mask")]) == 2
    assert "missing class folder" in capsys.readouterr().err
    assert eval_main(["--model", str(data / "nope.keras"), "--data", str(data)]) == 2


def test_mirrored_strategy_builds_on_one_cpu():
    from edgemask.training.classifier.fit import make_strategy

    assert make_strategy("mirrored").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("tpu")
