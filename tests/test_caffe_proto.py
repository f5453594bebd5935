"""The hand-written Caffe readers: protobuf text format and wire format, on hand-built bytes and the real
res10 files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from edgemask import assets
from edgemask.export.caffe_proto import (
    CaffeFormatError,
    parse_caffemodel,
    parse_prototxt,
    read_caffemodel,
    read_prototxt,
)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited (wire type 2) field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def number_field(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def floats(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def test_prototxt_nested_repeated_comments_and_strings() -> None:
    text = """
    name: "tiny"  # a comment
    input: "data"
    layer {
      name: 'conv'  type: "Convolution"
      bottom: "data" top: "conv"
      convolution_param { num_output: 8 pad: 2 # 1
        kernel_size: 3 dilation: 2 bias_term: false }
    }
    layer { name: "pool" type: "Pooling" pooling_param: { pool: MAX stride: 2 } }
    """
    net = parse_prototxt(text)
    assert net.get("name") == "tiny"
    conv, pool = net.all("layer")
    p = conv.sub("convolution_param")
    assert (p.get("num_output"), p.get("pad"), p.get("dilation"), p.get("bias_term")) == (8, 2, 2, False)
    assert pool.sub("pooling_param").get("pool") == "MAX"
    assert pool.sub("missing_param").get("pad", 0) == 0


def test_prototxt_numbers_keep_their_type() -> None:
    net = parse_prototxt("a: 3 b: 0.5 c: -1 d: 1e-5 e: 20")
    assert [net.get(k) for k in "abcde"] == [3, 0.5, -1, 1e-5, 20]
    assert isinstance(net.get("a"), int)


@pytest.mark.parametrize("text", ["layer { name: 'x' ", "layer }", "name: { { }", "name:"])
def test_prototxt_unbalanced_or_cut_is_an_error(text: str) -> None:
    with pytest.raises(CaffeFormatError):
        parse_prototxt(text, "bad.prototxt")


def test_caffemodel_v2_layer_with_shape_and_packed_data() -> None:
    weights = np.arange(24, dtype=np.float32)
    shape = field(7, field(1, b"".join(varint(d) for d in (2, 3, 2, 2))))
    blob = shape + field(5, floats(weights))
    bias = field(7, field(1, varint(2))) + field(5, floats([0.5, -0.5]))
    layer = field(1, b"conv1") + field(2, b"Convolution") + field(7, blob) + field(7, bias)
    net = field(1, b"net") + field(100, layer)
    layers = parse_caffemodel(net)
    assert list(layers) == ["conv1"]
    assert layers["conv1"].type == "Convolution"
    w, b = layers["conv1"].blobs
    np.testing.assert_array_equal(w, weights.reshape(2, 3, 2, 2))
    np.testing.assert_array_equal(b, [0.5, -0.5])


def test_caffemodel_v1_layers_with_legacy_dimensions() -> None:
    data = np.linspace(-1, 1, 6, dtype=np.float32)
    blob = number_field(1, 1) + number_field(2, 2) + number_field(3, 1) + number_field(4, 3)
    blob += field(5, floats(data))
    layer = field(4, b"fc") + number_field(5, 14) + field(6, blob)  # name=4, type=5 (INNER_PRODUCT), blobs=6
    layers = parse_caffemodel(field(2, layer))
    assert layers["fc"].type == "InnerProduct"
    np.testing.assert_array_equal(layers["fc"].blobs[0], data.reshape(1, 2, 1, 3))


def fixed32_field(number: int, value: float) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<f", value)


def blob_of(blob: bytes) -> np.ndarray:
    return parse_caffemodel(field(100, field(1, b"x") + field(7, blob)))["x"].blobs[0]


def test_caffemodel_blob_encodings_protobuf_allows() -> None:
    """Unpacked dims and floats (one field each), doubles, and legacy dims of which some are absent."""
    unpacked = (
        field(7, number_field(1, 2) + number_field(1, 1)) + fixed32_field(5, 1.5) + fixed32_field(5, -2)
    )
    np.testing.assert_array_equal(blob_of(unpacked), [[1.5], [-2.0]])
    doubles = field(7, field(1, varint(3))) + field(8, struct.pack("<3d", 0.25, 1e-3, 7))
    assert blob_of(doubles).dtype == np.float32
    np.testing.assert_array_equal(blob_of(doubles), np.array([0.25, 1e-3, 7], np.float32))
    channels_only = number_field(2, 3) + field(5, floats([1, 2, 3]))
    assert blob_of(channels_only).shape == (1, 3, 1, 1)
    assert blob_of(field(5, floats([4, 5]))).shape == (2,)
    with pytest.raises(CaffeFormatError, match="whole number of floats"):
        blob_of(field(5, b"\x00" * 6))


def test_caffemodel_blob_size_must_match_its_shape() -> None:
    blob = field(7, field(1, varint(4))) + field(5, floats([1, 2, 3]))
    with pytest.raises(CaffeFormatError, match="3 values but its shape is \\[4\\]"):
        parse_caffemodel(field(100, field(1, b"x") + field(7, blob)), "x.caffemodel")


def test_truncated_and_garbage_caffemodels_name_the_file(tmp_path: Path) -> None:
    real = assets.fetch(assets.DETECTOR_CAFFEMODEL).read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(CaffeFormatError, match=r"cut\.caffemodel"):
        read_caffemodel(cut)
    garbage = tmp_path / "garbage.caffemodel"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(CaffeFormatError, match=r"garbage\.caffemodel"):
        read_caffemodel(garbage)
    with pytest.raises(CaffeFormatError, match=r"missing\.caffemodel"):
        read_caffemodel(tmp_path / "missing.caffemodel")


def test_real_res10_files() -> None:
    net = read_prototxt(assets.fetch(assets.DETECTOR_PROTOTXT))
    layers = read_caffemodel(assets.fetch(assets.DETECTOR_CAFFEMODEL))
    assert len(net.all("layer")) == 112
    assert net.sub("input_shape").all("dim") == [1, 3, 300, 300]
    conv1 = layers["conv1_h"]
    assert conv1.type == "Convolution"
    assert [b.shape for b in conv1.blobs] == [(32, 3, 7, 7), (32,)]
    assert [b.shape for b in layers["data_bn"].blobs] == [(3,), (3,), (1,)]
    # Normalize's per-channel scale starts at 20 (its filler) and was trained from there.
    norm = layers["conv4_3_norm"].blobs[0]
    assert norm.shape == (128,) and 0 < norm.mean() < 40
    total = sum(b.size for layer in layers.values() for b in layer.blobs)
    assert total * 4 == pytest.approx(10_666_211, rel=0.01)  # the file is almost only float32 weights
