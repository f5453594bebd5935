"""The fine-tuned detector's training record: the data digest by hand, and what a run folder yields."""

import hashlib
import json

import pytest

from edgemask.training.detector.record import RECIPE, folder_digest, training_record

SHA_A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"  # sha256(b"a")
SHA_B = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"  # sha256(b"b")


def small_scenes(root):
    folder = root / "scenes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"a")
    (folder / "sub" / "b.txt").write_bytes(b"b")
    return folder


def test_folder_digest_by_hand(tmp_path):
    folder = small_scenes(tmp_path)
    # The SHA256SUMS lines, sorted: "3e23..." sorts before "ca97...".
    lines = f"{SHA_B}  ./scenes/sub/b.txt\n{SHA_A}  ./scenes/a.txt"
    assert folder_digest(folder) == hashlib.sha256(lines.encode()).hexdigest()


def test_folder_digest_sees_a_changed_byte(tmp_path):
    folder = small_scenes(tmp_path)
    before = folder_digest(folder)
    (folder / "sub" / "b.txt").write_bytes(b"c")
    assert folder_digest(folder) != before


def write_run(run_dir, data):
    run_dir.mkdir()
    config = {"data": str(data), "out": str(run_dir), "resume": True, "source": None}
    config |= {"epochs": 3, "learning_rate": 3e-4, "val_fraction": 0.1}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "history.csv").write_text(
        "epoch,lr,val_ap,val_recall,val_precision,seconds\n"
        "1,1e-6,0.75,0.70,0.80,60\n"
        "2,3e-4,0.823456,0.86666,0.71234,125\n"
        "3,1e-5,0.81,0.85,0.74,192\n"
    )


def test_training_record_of_a_run_folder(tmp_path):
    data = small_scenes(tmp_path)
    write_run(tmp_path / "run", data)
    record = training_record(tmp_path / "run", {"train_scenes": 9, "held_out_scenes": 1})
    assert record["recipe"] == RECIPE
    # Paths that name this machine's folders are left out; the data is named by folder and digest.
    assert record["config"] == {"epochs": 3, "learning_rate": 3e-4, "val_fraction": 0.1}
    assert record["training_data"]["name"] == "scenes"
    assert record["training_data"]["sha256_of_file_list"] == folder_digest(data)
    assert (record["training_data"]["train_scenes"], record["training_data"]["held_out_scenes"]) == (9, 1)
    assert "0.1" in record["training_data"]["held_out"]
    # Best held-out AP is epoch 2, not the last one; rounded to 4 places; 192 s of training is 3.2 min.
    assert record["epochs_run"] == 3
    assert record["best_epoch"] == 2
    assert record["held_out"] == {"val_ap": 0.8235, "val_recall": 0.8667, "val_precision": 0.7123}
    assert record["train_minutes"] == pytest.approx(3.2)
    assert "cores" in record["machine"]
    assert json.loads(json.dumps(record)) == record  # fit.py writes it as JSON beside the model
