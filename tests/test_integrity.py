"""Model checksums: what the exporter seals loads, and any cut or flipped byte is refused by name as
damaged; files from before checksums still load (unchecked) until they are exported again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_metadata import META, tiny_onnx

from edgemask import __version__
from edgemask.core.backends import BackendError, load_backend
from edgemask.core.integrity import PLACEHOLDER, seal_onnx, version_tuple
from edgemask.core.metadata import (
    ZIP_MEMBER_HEADER,
    Checksum,
    DamagedModelError,
    MetadataError,
    append_tflite_metadata,
    read_metadata,
)
from edgemask.export import onnx as onnx_export
from edgemask.export import tflite as tflite_export

MODELS = Path(__file__).resolve().parent.parent / "models"
CLASSIFIER = MODELS / "mask_classifier_int8.tflite"
DAMAGED = "damaged or truncated"


def flatbuffer_and_meta(path: Path):
    """The flatbuffer of a committed model file (before its metadata archive) and its metadata."""
    data = path.read_bytes()
    meta = read_metadata(path)
    end = meta.checksum.length if meta.checksum else data.rfind(ZIP_MEMBER_HEADER)
    return data[:end], meta


@pytest.fixture(scope="module")
def sealed_tflite(tmp_path_factory) -> Path:
    """The committed classifier written again by the current exporter (with a checksum)."""
    pytest.importorskip("ai_edge_litert")
    flatbuffer, meta = flatbuffer_and_meta(CLASSIFIER)
    path = tmp_path_factory.mktemp("sealed") / "classifier.tflite"
    tflite_export.write(flatbuffer, path, replace(meta, edgemask_version=__version__, checksum=None))
    return path


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_sealed_tflite_records_the_flatbuffer_and_loads(sealed_tflite: Path) -> None:
    flatbuffer, _ = flatbuffer_and_meta(CLASSIFIER)
    meta = read_metadata(sealed_tflite)
    assert meta.checksum.length == len(flatbuffer)
    assert sealed_tflite.read_bytes().startswith(flatbuffer)
    x = np.full((1, 128, 128, 3), 90, np.uint8)
    np.testing.assert_array_equal(load_backend(sealed_tflite).run(x)[0], load_backend(CLASSIFIER).run(x)[0])


@pytest.mark.parametrize(
    ("case", "cut"),
    [
        ("a byte flipped in the middle", None),
        ("half the file", 0.5),
        ("the last 10 bytes missing", -10),
    ],
)
def test_damaged_tflite_is_refused_by_name(sealed_tflite: Path, tmp_path: Path, case: str, cut) -> None:
    data = sealed_tflite.read_bytes()
    length = read_metadata(sealed_tflite).checksum.length
    if cut is None:
        bad = flipped(data, length // 2)
    else:
        bad = data[: int(len(data) * cut)] if isinstance(cut, float) else data[:cut]
    path = tmp_path / "model.tflite"
    path.write_bytes(bad)
    with pytest.raises(DamagedModelError) as error:
        load_backend(path)
    message = str(error.value)
    assert message.startswith(f"{path}: {DAMAGED}") and "\n" not in message, case


def test_flipped_metadata_archive_is_damage_not_missing_metadata(sealed_tflite: Path, tmp_path: Path) -> None:
    data = sealed_tflite.read_bytes()
    path = tmp_path / "model.tflite"
    path.write_bytes(flipped(data, len(data) - 200))  # inside the compressed metadata.json
    with pytest.raises(DamagedModelError, match=DAMAGED):
        load_backend(path)


def test_foreign_tflite_and_non_tflite_files_are_told_apart(tmp_path: Path) -> None:
    """A flatbuffer without metadata is a foreign model, or an edgemask file cut exactly where its
    metadata began (no trace of it is left): the message names both."""
    pytest.importorskip("ai_edge_litert")
    flatbuffer, _ = flatbuffer_and_meta(CLASSIFIER)
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(flatbuffer)
    with pytest.raises(MetadataError, match=r"no edgemask metadata .*file's end is missing") as error:
        load_backend(foreign)
    assert not isinstance(error.value, DamagedModelError)
    text = tmp_path / "text.tflite"
    text.write_text("not a model at all")
    with pytest.raises(BackendError, match="not a TFLite model"):
        load_backend(text)


def test_files_from_before_checksums_load_unchecked_but_new_ones_must_have_one(tmp_path: Path) -> None:
    """The rule for files exported before 0.3 (the committed models until they are exported again)."""
    pytest.importorskip("ai_edge_litert")
    flatbuffer, meta = flatbuffer_and_meta(CLASSIFIER)
    old = tmp_path / "old.tflite"
    old.write_bytes(flipped(flatbuffer, len(flatbuffer) // 2))
    append_tflite_metadata(old, replace(meta, edgemask_version="0.2.0", checksum=None))
    assert load_backend(old).meta.checksum is None
    new = tmp_path / "new.tflite"
    new.write_bytes(flatbuffer)
    append_tflite_metadata(new, replace(meta, edgemask_version="0.3.0", checksum=None))
    with pytest.raises(DamagedModelError, match="records a checksum, but it has none"):
        load_backend(new)


@pytest.fixture()
def sealed_onnx(tmp_path: Path) -> Path:
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    raw = tmp_path / "raw.onnx"
    tiny_onnx(raw, None)
    path = tmp_path / "tiny.onnx"
    onnx_export.write(onnx.load(raw), path, replace(META, edgemask_version=__version__))
    return path


def test_sealed_onnx_loads_and_its_digest_covers_the_file(sealed_onnx: Path) -> None:
    backend = load_backend(sealed_onnx)
    digest = backend.meta.checksum.sha256
    assert len(digest) == 64 and digest != PLACEHOLDER and backend.meta.checksum.length is None
    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(backend.run(x)[0], x * 2.0)


def test_damaged_onnx_is_refused_by_name(sealed_onnx: Path, tmp_path: Path) -> None:
    data = sealed_onnx.read_bytes()
    two = np.float32(2.0).tobytes()
    assert data.count(two) == 1
    changed = data.replace(two, np.float32(3.0).tobytes())  # a weight changed: still a valid model
    cases = {"changed weight": changed, "truncated": data[: len(data) - 5], "flipped digest": None}
    digest = read_metadata(sealed_onnx).checksum.sha256.encode()
    cases["flipped digest"] = data.replace(digest, digest[:-1] + (b"0" if digest[-1:] != b"0" else b"1"))
    for case, bad in cases.items():
        path = tmp_path / f"{case}.onnx"
        path.write_bytes(bad)
        with pytest.raises(DamagedModelError) as error:
            load_backend(path)
        assert str(error.value).startswith(f"{path}: {DAMAGED}"), case


def test_seal_needs_exactly_one_placeholder() -> None:
    with pytest.raises(ValueError, match="found it 0 times"):
        seal_onnx(b"no placeholder here")
    marker = f'"sha256": "{PLACEHOLDER}"'.encode()
    sealed = seal_onnx(b"head " + marker + b" tail")
    assert sealed.startswith(b'head "sha256": "') and PLACEHOLDER.encode() not in sealed
    assert len(sealed) == len(b"head " + marker + b" tail")


@pytest.mark.parametrize(
    ("text", "expected"), [("0.3.0", (0, 3, 0)), ("0.2.0", (0, 2, 0)), ("1.0.0rc1", (1, 0, 0)), ("", ())]
)
def test_version_tuple(text: str, expected: tuple) -> None:
    assert version_tuple(text) == expected


def test_checksum_survives_the_json_round_trip() -> None:
    meta = replace(META, checksum=Checksum("ab" * 32, 1234))
    assert type(meta).from_json(meta.to_json()) == meta
