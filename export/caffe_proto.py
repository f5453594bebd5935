"""Read Caffe's two file formats without Caffe or OpenCV: the ``.prototxt`` text format and the binary
``.caffemodel`` (protobuf wire format).

OpenCV 5 dropped its Caffe importer and there is no compiled ``caffe.proto`` to hand, so both readers
are small and hand-written. They only know the few fields an exporter needs: layer definitions come
from the prototxt, weights (``blobs``) from the caffemodel, matched by layer name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class CaffeFormatError(ValueError):
    """A Caffe file that is missing, truncated, corrupt, or does not fit its partner file."""


# ---------------------------------------------------------------- prototxt (text format)


class Message:
    """One protobuf text-format message: every field is repeated, so values are kept as lists."""

    def __init__(self) -> None:
        self.fields: dict[str, list[Any]] = {}

    def add(self, key: str, value: Any) -> None:
        self.fields.setdefault(key, []).append(value)

    def get(self, key: str, default: Any = None) -> Any:
        """The last value of ``key`` (protobuf's rule for a non-repeated field), or ``default``."""
        values = self.fields.get(key)
        return values[-1] if values else default

    def all(self, key: str) -> list[Any]:
        return list(self.fields.get(key, []))

    def sub(self, key: str) -> Message:
        """A nested message, or an empty one, so ``layer.sub('pooling_param').get('pad', 0)`` works."""
        value = self.get(key)
        return value if isinstance(value, Message) else Message()

    def __contains__(self, key: str) -> bool:
        return key in self.fields

    def __repr__(self) -> str:
        return f"Message({self.fields!r})"


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<punct>[{}:<>;,\[\]])
      | (?P<word>[^\s{}:<>;,\[\]"'\#]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str, name: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise CaffeFormatError(f"{name}: cannot parse text at line {text.count(chr(10), 0, pos) + 1}")
            break
        pos = m.end()
        kind = m.lastgroup
        if kind is None or kind == "comment":
            continue
        tokens.append((kind, m.group(kind), text.count("\n", 0, m.start(kind)) + 1))
    return tokens


def _scalar(kind: str, text: str) -> Any:
    if kind == "string":
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if text in ("true", "True"):
        return True
    if text in ("false", "False"):
        return False
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # an enum name such as MAX or CENTER_SIZE


def parse_prototxt(text: str, name: str = "<prototxt>") -> Message:
    """Parse protobuf text format (``key: value`` and ``key { ... }``) into nested :class:`Message`."""
    tokens = _tokens(text, name)
    stack = [Message()]
    i = 0
    while i < len(tokens):
        kind, tok, line = tokens[i]
        if kind == "punct" and tok in ";,":
            i += 1
            continue
        if kind == "punct" and tok in "}>":
            if len(stack) == 1:
                raise CaffeFormatError(f"{name}:{line}: unbalanced '{tok}'")
            stack.pop()
            i += 1
            continue
        if kind != "word":
            raise CaffeFormatError(f"{name}:{line}: expected a field name, got {tok!r}")
        i += 1
        if i < len(tokens) and tokens[i][1] == ":":
            i += 1
        if i >= len(tokens):
            raise CaffeFormatError(f"{name}:{line}: field {tok!r} has no value")
        vkind, value, _ = tokens[i]
        if vkind == "punct" and value in "{<":
            child = Message()
            stack[-1].add(tok, child)
            stack.append(child)
        elif vkind == "punct" and value == "[":
            i += 1
            while i < len(tokens) and tokens[i][1] != "]":
                if tokens[i][1] != ",":
                    stack[-1].add(tok, _scalar(*tokens[i][:2]))
                i += 1
        elif vkind in ("word", "string"):
            stack[-1].add(tok, _scalar(vkind, value))
        else:
            raise CaffeFormatError(f"{name}:{line}: field {tok!r} has no value")
        i += 1
    if len(stack) != 1:
        raise CaffeFormatError(f"{name}: unexpected end of file inside a '{{ }}' block")
    return stack[0]


def read_prototxt(path: str | os.PathLike) -> Message:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CaffeFormatError(f"{path}: cannot read the prototxt ({e})") from e
    net = parse_prototxt(text, str(path))
    if not net.all("layer") and not net.all("layers"):
        raise CaffeFormatError(f"{path}: no layers (is this a Caffe prototxt?)")
    return net


# ---------------------------------------------------------------- caffemodel (wire format)

# V1 (``layers``) files store the layer type as an enum; the names match the V2 ``type`` strings.
V1_LAYER_TYPES = {
    3: "Concat",
    4: "Convolution",
    6: "Dropout",
    8: "Flatten",
    14: "InnerProduct",
    17: "Pooling",
    18: "ReLU",
    19: "Sigmoid",
    20: "Softmax",
    22: "Split",
    23: "TanH",
    25: "Eltwise",
}


@dataclass
class CaffeLayerWeights:
    """What a ``.caffemodel`` says about one layer: its type and its parameter blobs."""

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CaffeFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CaffeFormatError("malformed varint")


def _fields(buf: memoryview):
    """Yield ``(field_number, wire_type, value)``: ints for varint/fixed, memoryviews for bytes."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise CaffeFormatError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise CaffeFormatError("truncated fixed64")
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise CaffeFormatError(f"field {number} runs past the end ({length} bytes)")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            if pos + 4 > end:
                raise CaffeFormatError("truncated fixed32")
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise CaffeFormatError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _blob_shape(buf: memoryview) -> list[int]:
    """BlobShape: ``dim`` (1), packed or one varint per field."""
    shape: list[int] = []
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:
            shape.extend(_packed_varints(value))
        elif number == 1 and wire == 0:
            shape.append(value)
    return shape


def _floats(wire: int, value: memoryview) -> np.ndarray:
    """BlobProto ``data`` (5): packed float32s, or one float32 per field."""
    if wire == 2 and len(value) % 4:
        raise CaffeFormatError("blob data is not a whole number of floats")
    return np.frombuffer(value, dtype="<f4")


def _blob(buf: memoryview) -> np.ndarray:
    """BlobProto: ``shape`` (7) or legacy ``num/channels/height/width`` (1-4), ``data`` (5) floats, or
    ``double_data`` (8) when there are no floats."""
    legacy: dict[int, int] = {}
    shape: list[int] | None = None
    chunks: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for number, wire, value in _fields(buf):
        if number in (1, 2, 3, 4) and wire == 0:
            legacy[number] = value
        elif number == 7 and wire == 2:
            shape = _blob_shape(value)
        elif number == 5 and wire in (2, 5):
            chunks.append(_floats(wire, value))
        elif number == 8 and wire == 2:
            doubles.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
    parts = chunks or doubles
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if shape is None:
        shape = [legacy.get(k, 1) for k in (1, 2, 3, 4)] if legacy else [data.size]
    if int(np.prod(shape)) != data.size:
        raise CaffeFormatError(f"blob holds {data.size} values but its shape is {shape}")
    return data.astype(np.float32).reshape(shape)


def _layer(buf: memoryview, v1: bool) -> CaffeLayerWeights:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    name, ltype, blobs = "", "", []
    for number, wire, value in _fields(buf):
        if number == name_field and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif number == type_field and v1:
            ltype = V1_LAYER_TYPES.get(value, f"V1:{value}")
        elif number == type_field:
            ltype = bytes(value).decode("utf-8", "replace")
        elif number == blobs_field and wire == 2:
            blobs.append(_blob(value))
    return CaffeLayerWeights(name, ltype, blobs)


def parse_caffemodel(data: bytes, name: str = "<caffemodel>") -> dict[str, CaffeLayerWeights]:
    """NetParameter ``layer`` (100) or V1 ``layers`` (2) -> ``{layer name: weights}``."""
    layers: dict[str, CaffeLayerWeights] = {}
    try:
        for number, wire, value in _fields(memoryview(data)):
            if wire == 2 and number in (100, 2):
                layer = _layer(value, v1=number == 2)
                if layer.name:
                    layers[layer.name] = layer
    except CaffeFormatError as e:
        raise CaffeFormatError(f"{name}: corrupt or truncated caffemodel ({e})") from e
    if not layers:
        raise CaffeFormatError(f"{name}: no layers found (not a Caffe .caffemodel?)")
    return layers


def read_caffemodel(path: str | os.PathLike) -> dict[str, CaffeLayerWeights]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CaffeFormatError(f"{path}: cannot read the caffemodel ({e.strerror or e})") from e
    return parse_caffemodel(data, str(path))
