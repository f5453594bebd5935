"""Model files that prove they are whole: a file cut short by a failed copy, or with flipped bytes, is
refused by name at load instead of running and inventing faces.

The exporter records a SHA-256 of the model bytes in the file's own metadata
(:class:`~edgemask.core.metadata.Checksum`) and the loader checks it before running anything:

- TFLite: the digest covers the flatbuffer, the ``length`` bytes before the metadata archive appended
  to it;
- ONNX: the metadata lives inside the protobuf it would cover, so the exporter writes the file with
  :data:`PLACEHOLDER` (64 zeros) as the digest, hashes those bytes and writes the digest over the
  placeholder (same length: every protobuf length stays valid). The loader puts the zeros back and
  hashes again.

Files from before checksums (metadata written by edgemask < 0.3) load without a check; from 0.3 on the
checksum is mandatory, and a file that should carry one but does not is refused as damaged. The check is
one SHA-256 pass over the file: about 2 ms for a 3 MB model (benchmarks/memory.py measures it).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from edgemask.core.metadata import Checksum, DamagedModelError, ModelMeta

PLACEHOLDER = "0" * 64
CHECKSUM_SINCE = (0, 3)
"""The first edgemask version whose exporter writes checksums."""
PLACEHOLDER_JSON = f'"sha256": "{PLACEHOLDER}"'
"""How the placeholder reads in the metadata JSON (``json.dumps`` separators): unique in the file."""
CHUNK = 1 << 20


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_prefix(path: str | os.PathLike, length: int) -> str:
    """SHA-256 of the first ``length`` bytes of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left > 0:
            block = f.read(min(CHUNK, left))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.3.0"`` → ``(0, 3, 0)``; anything unparsable counts as the oldest version."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def checksum_required(meta: ModelMeta) -> bool:
    """Whether the exporter that wrote ``meta`` always records a checksum."""
    return version_tuple(meta.edgemask_version) >= CHECKSUM_SINCE


def without_checksum(path: str | os.PathLike, meta: ModelMeta) -> bool:
    """True for a file from before checksums (nothing to check); raises if one is due but missing."""
    if meta.checksum is not None:
        return False
    if checksum_required(meta):
        raise DamagedModelError(
            path, f"written by edgemask {meta.edgemask_version}, which records a checksum, but it has none"
        )
    return True


def tflite_checksum(flatbuffer: bytes) -> Checksum:
    """What the exporter records for a flatbuffer before appending the metadata archive."""
    return Checksum(sha256_hex(flatbuffer), len(flatbuffer))


def verify_tflite(path: str | os.PathLike, meta: ModelMeta) -> None:
    """Raise :class:`DamagedModelError` unless the flatbuffer is the one the exporter hashed."""
    if without_checksum(path, meta):
        return
    checksum = meta.checksum
    size = Path(path).stat().st_size
    if checksum.length is None or size <= checksum.length:
        raise DamagedModelError(path, f"{size} bytes, but the model alone had {checksum.length}")
    if sha256_prefix(path, checksum.length) != checksum.sha256:
        raise DamagedModelError(path, "its bytes do not match the checksum recorded at export")


def placeholder_checksum() -> Checksum:
    """The checksum an ONNX file is first written with; :func:`seal_onnx` fills it in."""
    return Checksum(PLACEHOLDER)


def seal_onnx(data: bytes) -> bytes:
    """The serialized ONNX model with its placeholder digest replaced by the digest of these bytes."""
    marker = PLACEHOLDER_JSON.encode()
    found = data.count(marker)
    if found != 1:
        raise ValueError(f"expected the checksum placeholder once in the ONNX bytes, found it {found} times")
    return data.replace(marker, PLACEHOLDER_JSON.replace(PLACEHOLDER, sha256_hex(data)).encode())


def verify_onnx(path: str | os.PathLike, data: bytes, meta: ModelMeta) -> None:
    """Raise :class:`DamagedModelError` unless ``data`` (the file's bytes) are what the exporter sealed."""
    if without_checksum(path, meta):
        return
    marker = meta.checksum.sha256.encode()
    if len(marker) != len(PLACEHOLDER) or data.count(marker) != 1:
        raise DamagedModelError(path, "its recorded checksum is malformed")
    if sha256_hex(data.replace(marker, PLACEHOLDER.encode())) != meta.checksum.sha256:
        raise DamagedModelError(path, "its bytes do not match the checksum recorded at export")
