"""Convert a GGUF model file to a safetensors folder that vLLM can load.

vLLM 0.32 cannot read GGUF, and the models available offline ship as GGUF inside
PyPI wheels, so ``scripts/setup_reader.sh`` converts each one once. Runs inside the
reader virtualenv (it needs ``gguf`` and ``accelerate``), from a checkout; it is set-up
code, not part of the installed package, and imports nothing of lcrag::

    python scripts/convert_gguf.py GGUF_PATH OUT_DIR

How (measured when this script was written): transformers loads the GGUF with ``gguf_file=`` and
dequantises it; ``save_pretrained`` refuses that object ("quantized with gguf and is
not serializable"), so the ``quantization_config`` is dropped from the config, a fresh
model is built from the config in bfloat16, the state dict is copied in, and that model
is saved. The tokenizer is loaded with the same ``gguf_file=`` and saved beside it.

The result is written to ``OUT_DIR.tmp`` and renamed to ``OUT_DIR`` at the end, with
the marker file ``lcrag-converted.json`` written last, so a folder with the marker is
always complete and an interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MARKER = "lcrag-converted.json"
DTYPE = "bfloat16"


class ConversionError(RuntimeError):
    """The GGUF could not be converted; the message says why."""


def is_converted(out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a finished conversion (its marker file exists)."""
    return (Path(out_dir) / MARKER).is_file()


def convert(gguf_path: str | Path, out_dir: str | Path, *, log=print) -> dict:
    """Convert ``gguf_path`` into a safetensors model folder at ``out_dir``.

    Returns the marker's contents. Replaces an unfinished ``out_dir`` (one without the
    marker); refuses to overwrite a finished one.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path).resolve()
    out_dir = Path(out_dir).resolve()
    if not gguf_path.is_file():
        raise ConversionError(f"GGUF file {gguf_path} does not exist")
    if is_converted(out_dir):
        raise ConversionError(f"{out_dir} is already converted (remove it to convert again)")
    folder, name = str(gguf_path.parent), gguf_path.name
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    started = time.perf_counter()
    log(f"loading {name} with transformers (dequantising)")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    state = loaded.state_dict()
    config = loaded.config
    del loaded
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.bfloat16  # transformers 5 (the reader venv has 5.19)

    log(f"building a fresh {config.model_type} model in {DTYPE} and copying the weights")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).to(torch.bfloat16)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings may legitimately be absent from the GGUF (lm_head shares embed_tokens).
    missing = [k for k in missing if not (k == "lm_head.weight" and getattr(config, "tie_word_embeddings", False))]
    if missing or unexpected:
        raise ConversionError(f"weights do not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    del state
    model.save_pretrained(tmp, safe_serialization=True)
    del model

    log("saving the tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(tmp)
    reloaded = AutoTokenizer.from_pretrained(str(tmp))
    if not getattr(reloaded, "chat_template", None):
        raise ConversionError(f"the chat template did not survive the conversion of {name}")
    rendered = reloaded.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    if "hi" not in rendered:
        raise ConversionError(f"the chat template of {name} does not render a user message")
    if not list(tmp.glob("*.safetensors")):
        raise ConversionError(f"no safetensors file was written for {name}")

    marker = {
        "source": name,
        "source_bytes": gguf_path.stat().st_size,
        "dtype": DTYPE,
        "model_type": config.model_type,
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "safetensors_bytes": sum(p.stat().st_size for p in tmp.glob("*.safetensors")),
        "seconds": round(time.perf_counter() - started, 1),
    }
    # Write the marker last, then publish the folder with one rename.
    (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    if out_dir.exists():  # an unfinished earlier attempt (no marker)
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    log(f"converted {name} -> {out_dir.name} ({marker['safetensors_bytes'] / 1e6:.0f} MB, {marker['seconds']} s)")
    return marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert a GGUF model to a safetensors folder for vLLM.")
    parser.add_argument("gguf_path", help="the .gguf file")
    parser.add_argument("out_dir", help="the model folder to create")
    args = parser.parse_args(argv)
    try:
        convert(args.gguf_path, args.out_dir)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
