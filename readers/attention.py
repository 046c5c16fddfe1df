"""Attention weights for ``attention-sort``, on the reader's own converted weights.

vLLM does not expose attention, so this path loads the same weights with
transformers. It prefills the prompt with SDPA (no attention matrix kept), picks
the next token greedily, then runs that one decoding step with eager attention
and ``output_attentions``: only the new position's row over the prompt is made,
never the full matrix (measured on 2 CPU cores: 75 ms and 1.6 GB at 2K tokens vs 29 s and
5.7 GB for a full eager forward).

A passage's attention is the attention mass on its tokens, averaged over layers
and heads (the paper's "attention received"). Raw attention carries position
bias; the evaluation, not this module, decides whether sorting by it helps.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from lcrag.readers.base import Prompt, ReaderError
from lcrag.readers.config import ReaderConfig
from lcrag.readers.prompts import messages, render_passage


class TransformersAttention:
    def __init__(self, model_dir: Path, threads: int = 0) -> None:
        self.model_dir = Path(model_dir)
        self.threads = threads
        self._model: Any = None
        self._tokenizer: Any = None
        # One pass at a time: a pass switches the shared model's attention
        # implementation, so concurrent callers (evaluation threads) must take turns.
        self._lock = threading.Lock()

    def warm_up(self) -> TransformersAttention:
        with self._lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        if not (self.model_dir / "config.json").is_file():
            raise ReaderError(f"no converted reader weights in {self.model_dir}; run scripts/setup_reader.sh")
        import os

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        torch.set_num_threads(self.threads or os.cpu_count() or 1)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        # fp32: faster than bf16 for these small models on CPU (measured on 2 cores without native bf16)
        self._model = AutoModelForCausalLM.from_pretrained(
            str(self.model_dir), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa"
        ).eval()

    def prompt_text(self, prompt: Prompt) -> str:
        return self.warm_up()._tokenizer.apply_chat_template(messages(prompt), tokenize=False, add_generation_prompt=True)

    def new_token_attention(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(attention of the newly decoded position over the prompt tokens, averaged
        over layers and heads; the prompt tokens' character offsets)."""
        import torch

        self.warm_up()
        encoded = self._tokenizer(text, return_tensors="pt", return_offsets_mapping=True, add_special_tokens=False)
        ids = encoded["input_ids"]
        offsets = encoded["offset_mapping"][0].numpy()
        model = self._model
        with self._lock, torch.inference_mode():
            model.set_attn_implementation("sdpa")
            prefill = model(input_ids=ids, use_cache=True)
            next_token = prefill.logits[:, -1:].argmax(-1)
            model.set_attn_implementation("eager")
            try:
                step = model(input_ids=next_token, past_key_values=prefill.past_key_values, use_cache=True, output_attentions=True)
            finally:
                model.set_attn_implementation("sdpa")
        # each layer: (batch, heads, 1, prompt + 1); drop the new token's attention to itself
        rows = torch.stack([layer[0, :, -1, : ids.shape[1]] for layer in step.attentions])
        return rows.mean(dim=(0, 1)).float().numpy(), offsets

    def passage_attention(self, prompt: Prompt) -> list[float]:
        text = self.prompt_text(prompt)
        attention, offsets = self.new_token_attention(text)
        starts = offsets[:, 0]
        scores, cursor = [], 0
        for number, passage in enumerate(prompt.passages, 1):
            rendered = render_passage(number, passage)
            begin = text.find(rendered, cursor)
            if begin < 0:
                raise ReaderError(f"passage {number} not found in the rendered prompt (template changed?)")
            end = begin + len(rendered)
            cursor = end
            inside = (starts >= begin) & (starts < end)
            scores.append(float(attention[inside].sum()))
        return scores


def make_attention(config: ReaderConfig, home: Path) -> TransformersAttention:
    """The attention source for attention-sort: the reader's own weights on the
    transformers path, loaded only when attention-sort first asks."""
    from lcrag.core.paths import anchored

    return TransformersAttention(anchored(config.on_this_machine(home).model_dir, home))
