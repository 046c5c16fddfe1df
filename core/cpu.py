"""What this CPU can compute natively, read from the kernel's flag list: the reader's
dtype and model choice and the encoder's runtime both depend on native bfloat16."""

from __future__ import annotations

from pathlib import Path

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo flags of native bfloat16


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty where the system does not list them)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(flags: frozenset[str]) -> bool:
    """AVX-512 BF16 or AMX: bfloat16 computed natively (elsewhere it is emulated, and slower than float32)."""
    return bool(flags & NATIVE_BF16_FLAGS)
