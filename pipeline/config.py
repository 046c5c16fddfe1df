"""Typed configuration, read from YAML.

Every section is a frozen dataclass whose constructor validates its values, and
``load_config`` rejects unknown keys by name, so a typo never silently falls back
to a default. Objects are built from a ``Config`` in one place and passed in;
nothing reads a global.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lcrag.core.errors import ConfigError
from lcrag.core.errors import check as _check
from lcrag.readers.config import ReaderConfig
from lcrag.retrievers.config import (
    MODE_CHOICES,
    BM25Config,
    EncoderConfig,
    RetrievalConfig,
    StoreConfig,
)
from lcrag.retrievers.encoders.runtimes import REFERENCE as REFERENCE_RUNTIME
from lcrag.retrievers.encoders.runtimes import resolve_runtime

GROUP_BY_CHOICES = ("neighbours", "source", "directory", "title", "none")
CHUNKING_CHOICES = ("late", "naive")
CONTEXT_CHOICES = ("document", "unit")


@dataclass(frozen=True)
class UnitConfig:
    """LongRAG retrieval units: related documents grouped under ``max_tokens``."""

    max_tokens: int = 4096
    group_by: str = "neighbours"  # or source | directory | title | none | meta:KEY
    neighbours: int = 32  # candidates per document when grouping by neighbours

    def __post_init__(self) -> None:
        _check(self.max_tokens >= 32, f"units.max_tokens must be at least 32, got {self.max_tokens}")
        _check(
            self.group_by in GROUP_BY_CHOICES or (self.group_by.startswith("meta:") and len(self.group_by) > 5),
            f"units.group_by must be one of {', '.join(GROUP_BY_CHOICES)} or meta:KEY, got {self.group_by!r}",
        )
        _check(self.neighbours >= 1, f"units.neighbours must be >= 1, got {self.neighbours}")


@dataclass(frozen=True)
class ChunkConfig:
    """Sentence-aligned chunks and how their vectors are made."""

    target_tokens: int = 200
    method: str = "late"  # late | naive
    context: str = "document"  # what the encoder sees for late chunking: document | unit

    def __post_init__(self) -> None:
        _check(self.target_tokens >= 8, f"chunking.target_tokens must be at least 8, got {self.target_tokens}")
        _check(self.method in CHUNKING_CHOICES, f"chunking.method must be one of {', '.join(CHUNKING_CHOICES)}, got {self.method!r}")
        _check(self.context in CONTEXT_CHOICES, f"chunking.context must be one of {', '.join(CONTEXT_CHOICES)}, got {self.context!r}")


@dataclass(frozen=True)
class StrategyConfig:
    """How strategies fill the reader's context. ``budget_tokens`` 0 means: the
    reader's window minus the answer and prompt overhead."""

    rag_k: int = 5  # chunks for rag, reorder, op-rag, self-route's first pass
    longrag_k: int = 2  # long units for longrag
    budget_tokens: int = 0
    prompt_overhead_tokens: int = 96  # instructions, question and chat template
    retrieval_mode: str = "hybrid"
    attention_sort_rounds: int = 2
    auto_lc_max_tokens: int = 0  # auto reads the whole scope when it fits this; 0 = the budget
    # self-route falls back to lc below this reply confidence; -1 = the index's calibrated
    # threshold (lcrag route fit) where it has one, else on declines only; 0 = declines only
    self_route_threshold: float = -1.0
    # coa: longest notes a Chain-of-Agents worker may hand on (reply tokens; at most a quarter of the budget)
    coa_notes_tokens: int = 96
    # auto without a fitted router: a scope over the budget but within this many budgets is
    # read whole by coa (in pieces); past it, self-route (a corpus that size costs coa too much)
    auto_coa_windows: int = 4

    def __post_init__(self) -> None:
        _check(self.rag_k >= 1 and self.longrag_k >= 1, "strategies.rag_k and longrag_k must be >= 1")
        _check(self.coa_notes_tokens >= 1, f"strategies.coa_notes_tokens must be >= 1, got {self.coa_notes_tokens}")
        _check(self.budget_tokens >= 0, f"strategies.budget_tokens must be >= 0, got {self.budget_tokens}")
        _check(self.prompt_overhead_tokens >= 0, "strategies.prompt_overhead_tokens must be >= 0")
        _check(self.retrieval_mode in MODE_CHOICES, f"strategies.retrieval_mode must be one of {', '.join(MODE_CHOICES)}")
        _check(self.attention_sort_rounds >= 1, f"strategies.attention_sort_rounds must be >= 1, got {self.attention_sort_rounds}")
        _check(self.auto_lc_max_tokens >= 0, "strategies.auto_lc_max_tokens must be >= 0")
        _check(self.auto_coa_windows >= 0, f"strategies.auto_coa_windows must be >= 0 (0: never coa), got {self.auto_coa_windows}")
        object.__setattr__(self, "self_route_threshold", float(self.self_route_threshold))
        _check(self.self_route_threshold == -1.0 or 0.0 <= self.self_route_threshold <= 1.0,
               f"strategies.self_route_threshold must be -1 (calibrated) or within [0, 1], got {self.self_route_threshold}")


@dataclass(frozen=True)
class IngestConfig:
    """How ingestion reads a source and works through pending units (not what the
    index contains). The loader limits keep an untrusted folder from hanging,
    flooding or leaking out of a run; see "What ingestion skips and why"."""

    commit_tokens: int = 32768  # units embedded and committed together; smaller = finer resume points
    max_file_mib: int = 64  # a larger file (of a folder or a jsonl source) is skipped with the reason
    follow_symlinks: bool = False  # follow symlinks whose target lies outside the source folder
    large_document_tokens: int = 100_000  # a new document longer than this is named in the summary

    def __post_init__(self) -> None:
        _check(self.commit_tokens >= 1, f"ingest.commit_tokens must be >= 1, got {self.commit_tokens}")
        _check(self.max_file_mib >= 1, f"ingest.max_file_mib must be >= 1 (MiB), got {self.max_file_mib}")
        _check(self.large_document_tokens >= 1, f"ingest.large_document_tokens must be >= 1, got {self.large_document_tokens}")


@dataclass(frozen=True)
class ServiceConfig:
    """The HTTP query API (``lcrag serve``): its key and the limits that keep one
    client from exhausting the reader. The environment variable LCRAG_API_KEY,
    when set, overrides ``api_key`` (so the key need not sit in a file)."""

    api_key: str = field(default="", repr=False)  # empty: LCRAG_API_KEY must provide it; never in to_dict()
    max_question_chars: int = 2000
    max_question_tokens: int = 512  # also in the reader's tokens: four-byte characters can cost a token each
    max_k: int = 50  # largest per-request top-k
    max_budget_tokens: int = 32768  # largest per-request context budget (also capped by the reader's window)
    max_in_flight: int = 4  # questions answered at once
    max_queued: int = 8  # questions waiting for a slot; more are refused with 429
    retry_after_s: int = 2  # Retry-After on 429 and 503
    run_id: str = ""  # ledger run id of API questions; empty = api-YYYYMMDD (UTC)
    health_cache_s: float = 5.0  # how long a reader reachability check is reused
    max_body_bytes: int = 65536  # larger request bodies are refused with 413 before they are read
    body_timeout_s: float = 10.0  # a request body must arrive within this, else 408 and the connection is closed
    header_timeout_s: float = 10.0  # a request line and headers must arrive within this, else the connection is closed
    max_connections: int = 64  # connections served at once (uvicorn's limit_concurrency); one more gets 503 + Retry-After
    max_chat_body_bytes: int = 1048576  # POST /v1/chat/completions: chat clients send the whole conversation every time
    chat_history_turns: int = 6  # earlier messages (user or assistant) a chat question may carry, newest first; 0: none
    chat_history_share: float = 0.5  # of max_question_tokens (and max_question_chars) the earlier messages may take

    def __post_init__(self) -> None:
        _check(self.max_question_chars >= 1, f"service.max_question_chars must be >= 1, got {self.max_question_chars}")
        _check(self.max_question_tokens >= 1, f"service.max_question_tokens must be >= 1, got {self.max_question_tokens}")
        _check(self.max_k >= 1, f"service.max_k must be >= 1, got {self.max_k}")
        _check(self.max_budget_tokens >= 64, f"service.max_budget_tokens must be >= 64, got {self.max_budget_tokens}")
        _check(self.max_in_flight >= 1, f"service.max_in_flight must be >= 1, got {self.max_in_flight}")
        _check(self.max_queued >= 0, f"service.max_queued must be >= 0, got {self.max_queued}")
        _check(self.retry_after_s >= 1, f"service.retry_after_s must be >= 1, got {self.retry_after_s}")
        _check(self.health_cache_s >= 0, f"service.health_cache_s must be >= 0, got {self.health_cache_s}")
        _check(self.max_body_bytes >= 1024, f"service.max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        _check(self.body_timeout_s > 0, f"service.body_timeout_s must be > 0, got {self.body_timeout_s}")
        _check(self.header_timeout_s > 0, f"service.header_timeout_s must be > 0, got {self.header_timeout_s}")
        _check(self.max_connections >= 1, f"service.max_connections must be >= 1, got {self.max_connections}")
        _check(self.max_chat_body_bytes >= 1024, f"service.max_chat_body_bytes must be >= 1024, got {self.max_chat_body_bytes}")
        _check(self.chat_history_turns >= 0, f"service.chat_history_turns must be >= 0, got {self.chat_history_turns}")
        _check(0 <= self.chat_history_share < 1, f"service.chat_history_share must be in [0, 1), got {self.chat_history_share}")
        _check(self.run_id == self.run_id.strip(), f"service.run_id must be empty or have no surrounding blanks, got {self.run_id!r}")


@dataclass(frozen=True)
class Config:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    units: UnitConfig = field(default_factory=UnitConfig)
    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    bm25: BM25Config = field(default_factory=BM25Config)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    strategies: StrategyConfig = field(default_factory=StrategyConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)

    def index_fingerprint(self) -> str:
        """Hash of the settings that shape an index's contents. Searching or adding to an
        index with different ones would mix incompatible vectors, so it is refused."""
        shaping = {
            # prefixes change the vectors, but only when set (older indexes keep their fingerprint)
            "encoder": {k: v for k, v in dataclasses.asdict(self.encoder).items()
                        if k in ("model", "window", "window_overlap") or (k in ("query_prefix", "document_prefix") and v)},
            "units": dataclasses.asdict(self.units),
            "chunking": dataclasses.asdict(self.chunking),
            "bm25": dataclasses.asdict(self.bm25),
        }
        # so does the runtime (auto resolved on this machine); torch-fp32, the reference, is
        # left out so indexes built before runtimes existed keep their fingerprint
        runtime = resolve_runtime(self.encoder.runtime)
        if runtime != REFERENCE_RUNTIME:
            shaping["encoder"]["runtime"] = runtime
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Every setting, for manifests and reports; the API key is left out (blank)."""
        data = dataclasses.asdict(self)
        data["service"]["api_key"] = ""
        return data


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'the config'} must be a mapping of keys to values, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; valid keys{' in ' + where if where else ''}: {', '.join(known)}"
        )
    values: dict[str, Any] = {}
    defaults = cls()
    for name, value in data.items():
        section = _SECTIONS.get(name) if cls is Config else None
        if section:
            values[name] = _build(section, value or {}, name)
            continue
        _check_type(f"{where}.{name}" if where else name, value, getattr(defaults, name))
        values[name] = value
    return cls(**values)


def _check_type(key: str, value: Any, default: Any) -> None:
    """YAML values must have the type of the setting's default (an int is fine for a float)."""
    expected = type(default)
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}
        raise ConfigError(f"{key} must be {names.get(expected, expected.__name__)}, got {value!r}")


_SECTIONS: dict[str, type] = {
    "encoder": EncoderConfig,
    "units": UnitConfig,
    "chunking": ChunkConfig,
    "bm25": BM25Config,
    "retrieval": RetrievalConfig,
    "store": StoreConfig,
    "ingest": IngestConfig,
    "reader": ReaderConfig,
    "strategies": StrategyConfig,
    "service": ServiceConfig,
}


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    return _build(Config, data or {}, "")


def default_config_path() -> Path:
    """The shipped ``default.yaml`` (package data of ``lcrag.configs``): every setting
    with its default, a starting point for a user's own config."""
    spec = importlib.util.find_spec("lcrag.configs")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "default.yaml"
        if candidate.is_file():
            return candidate
    raise ConfigError("the default config lcrag/configs/default.yaml is missing from the installation; reinstall lcrag")


def load_config(path: str | Path | None) -> Config:
    """Read a YAML config file; ``None`` gives the defaults. Loading probes nothing on the
    machine: ``reader.model: auto`` stays auto until something serves or reads the model
    (``ReaderConfig.on_this_machine``: the reader server, the vLLM backend, attention-sort,
    ``lcrag info``), so one file loads to the same config everywhere."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass --config with an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
