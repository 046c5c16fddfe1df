"""Encoder runtimes: what runs the model's forward pass (``encoder.runtime``).

- ``torch-fp32``: eager PyTorch in float32, the reference every other runtime is measured
  against (and the fallback where another is unavailable).
- ``torch-bf16``: PyTorch with bfloat16 weights, only where the CPU computes bfloat16
  natively (AVX-512 BF16 or AMX); elsewhere it is emulated and slower than float32.
- ``onnx-fp32`` / ``onnx-int8``: ONNX Runtime over the model exported once at set-up
  (``make encoder-runtimes``: ``scripts/export_onnx.py`` writes
  ``$LCRAG_HOME/models/<model>-onnx/``), in float32 or with dynamic int8 quantization.
- ``auto``: what ``DEFAULT_BY_FEATURES`` says for this machine's CPU features.

Every runtime returns one vector per token (late chunking pools them), and the windows of
long late chunking are the encoder's own, whatever runs them. The runtime only checks that
the export is there (as ``installed`` does for converted models); exporting is set-up's job.
A runtime that cannot run here falls back to ``torch-fp32`` with a warning naming the fix,
never silently (``choose_runtime``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Protocol

import numpy as np

from lcrag.core.cpu import cpu_flags, native_bf16
from lcrag.core.paths import state_home
from lcrag.retrievers.config import RUNTIME_CHOICES

REFERENCE = "torch-fp32"
AUTO = "auto"
RUNTIMES = tuple(r for r in RUNTIME_CHOICES if r != AUTO)  # the concrete ones


# What ``auto`` resolves to: the first row whose CPU flags this machine has all of. A row
# names the fastest runtime that kept SciFact nDCG@10 (dense and hybrid) within 0.005 of
# float32, paired per query, in bench/encoders.py --runtimes (bench/results/encoder-runtimes.md);
# the bench results set these rows, nothing else does. Measured on an AVX2-only CPU:
# onnx-fp32 is float32 arithmetic in another order (nDCG@10 identical to four places), so
# its row holds on every CPU; onnx-int8 was faster but its dense interval reached -0.0071;
# torch-bf16 was not measurable (no native bfloat16), so no row names it yet.
DEFAULT_BY_FEATURES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset(), "onnx-fp32"),  # any CPU; needs the export (make encoder-runtimes), else torch-fp32 with a warning
)

ONNX_FILES = {"onnx-fp32": "model.onnx", "onnx-int8": "model.int8.onnx"}
ONNX_MARKER = "lcrag-exported.json"  # written last by the export, so its presence means done
EXPORT_COMMAND = "make encoder-runtimes (or python scripts/export_onnx.py)"
INSTALL_COMMAND = "pip install onnxruntime (the lcrag[onnx] extra)"


class ForwardPass(Protocol):
    """A model's forward pass: padded ids in, the last hidden state of every token out."""

    runtime: str

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """``input_ids`` and ``attention_mask``: (batch, length) int64, padded on the right
        (mask 0). Returns (batch, length, hidden) float32; padded rows are ignored."""
        ...


def resolve_runtime(runtime: str, flags: frozenset[str] | None = None) -> str:
    """A concrete runtime: ``auto`` looked up in ``DEFAULT_BY_FEATURES`` for ``flags``
    (this machine's by default), any other name as given."""
    if runtime != AUTO:
        return runtime
    flags = cpu_flags() if flags is None else flags
    return next(choice for needed, choice in DEFAULT_BY_FEATURES if needed <= flags)


def onnx_dir(model: str, home: Path | None = None) -> Path:
    """Where the export of ``model`` (a registered name or a model folder) lives:
    ``$LCRAG_HOME/models/<model's name>-onnx``."""
    return (home or state_home()) / "models" / f"{Path(model).expanduser().name}-onnx"


def is_exported(folder: Path) -> bool:
    """True when ``folder`` holds a finished export (its marker file exists)."""
    return (folder / ONNX_MARKER).is_file()


def export_info(folder: Path) -> dict:
    """The export's marker (source folder, exporter, quantization), or {} if unreadable."""
    try:
        return json.loads((folder / ONNX_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def unavailable(runtime: str, model: str, flags: frozenset[str] | None = None, home: Path | None = None) -> str | None:
    """Why ``runtime`` (concrete) cannot run ``model`` here, naming the fix; None when it can."""
    if runtime == "torch-bf16":
        flags = cpu_flags() if flags is None else flags
        if not native_bf16(flags):
            return ("this CPU has neither AVX-512 BF16 nor AMX, so bfloat16 would be emulated and slower than "
                    "float32; choose encoder.runtime onnx-fp32, onnx-int8 or auto")
    elif runtime in ONNX_FILES:
        if importlib.util.find_spec("onnxruntime") is None:
            return f"onnxruntime is not installed; run {INSTALL_COMMAND}, then {EXPORT_COMMAND}"
        folder = onnx_dir(model, home)
        if not is_exported(folder) or not (folder / ONNX_FILES[runtime]).is_file():
            return f"the ONNX export of {model} is missing or unfinished ({folder}); run {EXPORT_COMMAND}"
    return None


def choose_runtime(runtime: str, model: str, flags: frozenset[str] | None = None,
                   home: Path | None = None) -> tuple[str, str | None]:
    """The runtime an encoder of ``model`` runs here, and the warning when it is not the
    one asked for: ``auto`` resolved, then ``torch-fp32`` where that one is unavailable."""
    if runtime not in RUNTIME_CHOICES:
        raise ValueError(f"encoder.runtime must be one of {', '.join(RUNTIME_CHOICES)}, got {runtime!r}")
    resolved = resolve_runtime(runtime, flags)
    reason = unavailable(resolved, model, flags, home)
    if reason is None:
        return resolved, None
    asked = resolved if runtime == resolved else f"{resolved} (encoder.runtime auto)"
    return REFERENCE, f"encoder runtime {asked} is unavailable for {model}: {reason}. Falling back to {REFERENCE}."


def open_forward(runtime: str, model_path: Path, model: str, threads: int, home: Path | None = None) -> ForwardPass:
    """The forward pass of a concrete, available ``runtime`` (``choose_runtime`` picked it)."""
    if runtime in ("torch-fp32", "torch-bf16"):
        from lcrag.retrievers.encoders.torch_forward import TorchForward

        return TorchForward.load(model_path, runtime)
    if runtime in ONNX_FILES:
        from lcrag.retrievers.encoders.onnx_forward import OnnxForward

        return OnnxForward(onnx_dir(model, home) / ONNX_FILES[runtime], runtime, threads)
    raise ValueError(f"no forward pass for runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
