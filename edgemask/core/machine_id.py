"""What a model's speed depends on besides the model: the CPU (its name and the SIMD extensions the
kernels use) and the versions of the runtime libraries. The benchmarks print it; the file choice of
``edgemask-run`` keys its cache with it."""

from __future__ import annotations

import platform
from importlib import metadata

RUNTIME_PACKAGES = (
    "ai-edge-litert",
    "onnxruntime",
    "opencv-python-headless",
    "numpy",
    "tensorflow-cpu",
    "tf-keras",
)

SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")
"""Instruction-set extensions that change int8/fp32 kernel speed (x86 and arm64 names)."""

SIMD_NAMES = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
    "asimd": "NEON",
    "asimddp": "dot product",
    "i8mm": "int8 matmul",
}


def cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def simd_flags(info: dict[str, str] | None = None) -> list[str]:
    """The :data:`SIMD_FLAGS` this CPU has, in that order."""
    info = cpuinfo() if info is None else info
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in SIMD_FLAGS if f in flags]


def simd_summary(info: dict[str, str] | None = None) -> str:
    """``AVX2 yes, AVX-512 yes, AVX-512 VNNI no, ...``: the extensions of :data:`SIMD_FLAGS` that apply to
    this architecture (x86 or arm64), named as people search for them."""
    have = set(simd_flags(info))
    arm = platform.machine().lower() in ("aarch64", "arm64") or bool(have & {"asimd", "asimddp", "i8mm"})
    mine = ("asimd", "asimddp", "i8mm") if arm else ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return ", ".join(f"{SIMD_NAMES[f]} {'yes' if f in have else 'no'}" for f in mine)


def cpu_model() -> str:
    """Model name, with family/model numbers (virtual machines often report a generic name) and the
    SIMD extensions the kernels can use."""
    info = cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        name += f", family {info['cpu family']} model {info.get('model', '?')}"
    if "hypervisor" in (info.get("flags") or "").split():
        name += ", virtual machine"
    simd = simd_flags(info)
    return f"{name}; {' '.join(simd)}" if simd else name


def package_versions(names: tuple[str, ...] = RUNTIME_PACKAGES) -> dict[str, str]:
    """Installed versions, read from package metadata (nothing is imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
