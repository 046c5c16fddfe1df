"""Export an installed encoder to ONNX once, for the onnx-fp32 and onnx-int8 runtimes.

Reads the model folder lcrag already uses (MiniLM from its wheel, nomic-embed-text-v1.5
from ``make encoder-setup``'s converted folder; nothing is downloaded) and writes

    $LCRAG_HOME/models/<model>-onnx/model.onnx            float32, for encoder.runtime onnx-fp32
    $LCRAG_HOME/models/<model>-onnx/model.int8.onnx       dynamic int8, for onnx-int8
    $LCRAG_HOME/models/<model>-onnx/lcrag-exported.json   the marker, written last

The graph takes ``input_ids`` and ``attention_mask`` (batch and sequence axes dynamic) and
returns ``last_hidden_state``: one vector per token, as late chunking needs. The exporter
is torch.onnx's TorchScript one (``dynamo=False``, opset 17): the dynamo exporter needs
onnxscript, which lcrag does not install. The model is traced with eager attention (the
SDPA path bakes the traced shapes into its mask). Each export is checked against PyTorch
on a batch of another shape than the traced one before it is published.

int8: ``onnxruntime.quantization.quantize_dynamic``, weights uint8 per output channel,
activations quantized per batch at run time, only MatMuls with a constant weight (never
the attention's score products), and the feed-forward down-projections left in float32.
Measured against PyTorch float32 on 10 SciFact texts (smallest mean-pooled cosine):
- the down-projections' inputs (after the activation function) have the widest range:
  quantizing them too cost MiniLM 0.993 and nomic 0.975; keeping them 0.997 and 0.990;
- int8 weights (ONNX Runtime's default) saturate the u8 x s8 products on CPUs without
  VNNI (AVX2): nomic fell to a cosine of 0.01, MiniLM to 0.995; uint8 weights are as fast
  there and do not saturate.

Set-up code, not part of the installed package (nothing in lcrag imports it); at run
time lcrag only checks that the folder and its marker are there
(``lcrag.retrievers.encoders.runtimes``). A finished export is left alone unless
``--force``; an unfinished one is replaced.

    python scripts/export_onnx.py                          # MiniLM and nomic (make encoder-runtimes)
    python scripts/export_onnx.py --model all-MiniLM-L6-v2 --home /tmp/state
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

from lcrag.core.files import replace_dir_atomic, write_json_atomic
from lcrag.core.paths import state_home
from lcrag.retrievers.encoders.encoder import resolve_model_path
from lcrag.retrievers.encoders.installed import NOMIC_MODEL
from lcrag.retrievers.encoders.runtimes import ONNX_FILES, ONNX_MARKER, export_info, is_exported, onnx_dir

MODELS = ("all-MiniLM-L6-v2", NOMIC_MODEL)
OPSET = 17
PROBE_TEXTS = (
    "Late chunking reads the whole document once and pools token vectors per chunk.",
    "ONNX Runtime",
    "A third text, of another length again, so that the checked batch is padded.",
)
MIN_FP32_COSINE = 0.9999  # the float32 graph must reproduce PyTorch (smallest token cosine); below, it is broken
MIN_INT8_POOLED = 0.98  # the int8 graph's smallest mean-pooled cosine to PyTorch; below, it is broken


def log(message: str) -> None:
    print(message, flush=True)


def last_hidden_state(model):
    """The transformers model as a module with exactly two inputs and one output."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHiddenState(model).eval()


def probe_batch(tokenizer, texts=PROBE_TEXTS):
    """Ids and mask of ``texts``, padded on the right (as the encoder pads)."""
    import numpy as np

    ids = [tokenizer(t)["input_ids"] for t in texts]
    longest = max(map(len, ids))
    batch = np.full((len(ids), longest), tokenizer.pad_token_id or 0, dtype=np.int64)
    mask = np.zeros_like(batch)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return batch, mask


def cosines(reference, other, mask) -> dict[str, float]:
    """Smallest cosine over real tokens, and over mean-pooled rows."""
    import numpy as np

    valid = mask.astype(bool)
    token = (reference * other).sum(-1) / (np.linalg.norm(reference, axis=-1) * np.linalg.norm(other, axis=-1))
    weights = mask[..., None].astype(np.float32)
    a, b = (reference * weights).sum(1) / weights.sum(1), (other * weights).sum(1) / weights.sum(1)
    pooled = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return {"token_min": round(float(token[valid].min()), 6), "pooled_min": round(float(pooled.min()), 6)}


def down_projections(onnx_path: Path, intermediate: int, hidden: int) -> list[str]:
    """The MatMuls whose constant weight maps the feed-forward's inner width back to the
    hidden size (BERT's ``output.dense``, nomic's ``down_proj``), found by shape."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and len(n.input) == 2
            and shapes.get(n.input[1]) == (intermediate, hidden)]


def export(model: str, home: Path | None = None, force: bool = False) -> dict:
    """Export ``model`` (a registered name or a model folder) into ``onnx_dir(model, home)``;
    returns the marker's contents."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    out_dir = onnx_dir(model, home)
    if is_exported(out_dir) and not force:
        log(f"==> {model}: already exported in {out_dir}")
        return export_info(out_dir)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    path = resolve_model_path(model)  # says how to set the model up when it is missing
    log(f"==> {model}: exporting {path} -> {out_dir}")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    torch_model = AutoModel.from_pretrained(str(path), local_files_only=True, attn_implementation="eager").eval()
    wrapped = last_hidden_state(torch_model)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    fp32, int8 = tmp / ONNX_FILES["onnx-fp32"], tmp / ONNX_FILES["onnx-int8"]

    trace_ids, trace_mask = probe_batch(tokenizer, PROBE_TEXTS[:2])  # traced on 2 rows; checked on 3
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's warnings about Python-side shape checks
        torch.onnx.export(wrapped, (torch.from_numpy(trace_ids), torch.from_numpy(trace_mask)), str(fp32),
                          dynamo=False, opset_version=OPSET, input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], do_constant_folding=True,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes})
    log(f"    float32 graph: {fp32.stat().st_size / 1e6:.0f} MB ({time.perf_counter() - started:.0f} s)")

    config = torch_model.config
    excluded = down_projections(fp32, int(config.intermediate_size), int(config.hidden_size))
    quantize_dynamic(fp32, int8, weight_type=QuantType.QUInt8, per_channel=True, op_types_to_quantize=["MatMul"],
                     nodes_to_exclude=excluded, extra_options={"MatMulConstBOnly": True})
    log(f"    int8 graph: {int8.stat().st_size / 1e6:.0f} MB ({len(excluded)} down-projections kept in float32)")

    ids, mask = probe_batch(tokenizer)
    with torch.inference_mode():
        reference = wrapped(torch.from_numpy(ids), torch.from_numpy(mask)).float().numpy()
    checked = {}
    for runtime, file in (("onnx-fp32", fp32), ("onnx-int8", int8)):
        session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        (hidden,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
        checked[runtime] = cosines(reference, np.asarray(hidden, dtype=np.float32), mask)
        log(f"    {runtime} against PyTorch float32 on {len(ids)} probe texts: {checked[runtime]}")
    broken = [runtime for runtime, worst, floor in (("onnx-fp32", checked["onnx-fp32"]["token_min"], MIN_FP32_COSINE),
                                                    ("onnx-int8", checked["onnx-int8"]["pooled_min"], MIN_INT8_POOLED))
              if worst < floor]
    if broken:
        shutil.rmtree(tmp)
        raise SystemExit(f"export_onnx: the {' and '.join(broken)} graph of {model} does not reproduce PyTorch "
                         f"float32 on this CPU ({checked}); nothing was published")

    import onnx

    marker = {
        "model": model,
        "source": str(path),
        "files": {runtime: {"file": f.name, "bytes": f.stat().st_size} for runtime, f in (("onnx-fp32", fp32), ("onnx-int8", int8))},
        "exporter": f"torch.onnx.export (TorchScript, dynamo=False), opset {OPSET}, eager attention",
        "inputs": ["input_ids", "attention_mask"],
        "output": "last_hidden_state",
        "int8": {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QUInt8", "per_channel": True,
                 "op_types": ["MatMul"], "MatMulConstBOnly": True, "kept_float32": excluded},
        "probe_cosines": checked,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__},
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json_atomic(tmp / ONNX_MARKER, marker, indent=2)  # last: a folder with the marker is complete
    if out_dir.exists():  # an unfinished earlier attempt (no marker), or --force
        shutil.rmtree(out_dir)
    replace_dir_atomic(tmp, out_dir)
    log(f"    exported in {marker['seconds']} s")
    return marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help=f"a registered name or a model folder (repeatable; default: {', '.join(MODELS)})")
    parser.add_argument("--home", type=Path, help="the state folder to write into (default: $LCRAG_HOME)")
    parser.add_argument("--force", action="store_true", help="export again even where a finished export exists")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"export_onnx: {exc.name} is not installed; pip install -e '.[onnx]' (make encoder-runtimes does)") from exc
    for model in args.model or MODELS:
        export(model, args.home or state_home(), args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
