"""The composition root: one config's objects, built once and on first use.

``lcrag ask``, ``serve``, ``eval``, the flows and the LlamaIndex adapter all get their
reader, attention source, encoder, index reader, toolkit, router and ledger from a
``Session`` instead of wiring them by hand, so a change to how one is built is made
here once. Nothing is built before it is asked for: ``lcrag ask`` never loads the
attention model unless attention-sort reads, and a report never touches the reader.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from lcrag.core.errors import ConfigError
from lcrag.core.paths import anchored, default_ledger, state_home
from lcrag.pipeline.config import Config, load_config
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.recording import context_budget
from lcrag.pipeline.routing.router import load_router, router_path
from lcrag.pipeline.strategies import Corpus, Toolkit
from lcrag.pipeline.strategies.base import RoutePolicy
from lcrag.readers.attention import make_attention
from lcrag.readers.registry import connect_reader, make_reader
from lcrag.retrievers.config import EncoderConfig
from lcrag.retrievers.encoders.encoder import make_encoder

_UNSET: Any = object()  # "build it yourself", as opposed to a part given (even None)


class AttentionOnDemand:
    """attention-sort's attention source, built when it is first asked for: a question
    answered by any other strategy never builds it."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    def passage_attention(self, prompt) -> list[float]:
        return self._build().passage_attention(prompt)


class Session(AbstractContextManager):
    """Everything a command needs from one config. Properties build on first use and
    are kept; ``close`` releases what was built (the reader's HTTP client). Parts given
    to the constructor (a fake reader in tests, an open ledger) are used as they are;
    ``attention=None`` given explicitly means attention-sort has no source."""

    def __init__(self, config: Config, *, home: Path | None = None, ledger_path: Path | None = None,
                 wait_for_reader: bool = True, reader: Any = _UNSET, attention: Any = _UNSET,
                 encoder: Any = _UNSET, ledger: Ledger | None = None) -> None:
        self.config = config
        self.home = home or state_home()
        self.ledger_path = ledger.path if ledger is not None else ledger_path or default_ledger()
        self.wait_for_reader = wait_for_reader  # False: a server that starts without one (answers 503 until it is up)
        self._encoders: dict[EncoderConfig, Any] = {}
        given = {"reader": reader, "attention": attention, "ledger": ledger if ledger is not None else _UNSET}
        self.__dict__.update({name: part for name, part in given.items() if part is not _UNSET})  # seeds the cached properties
        if encoder is not _UNSET:
            self._encoders[config.encoder] = encoder

    @classmethod
    def from_file(cls, config_file: Path | None, **options) -> Session:
        return cls(load_config(config_file), **options)

    # -- the reader side ---------------------------------------------------------------

    @cached_property
    def reader(self):
        """The configured reader: one that answers now (``connect_reader``: a clear error
        naming ``lcrag reader start`` otherwise), or, for a server, one that may come up later."""
        if self.wait_for_reader:
            return connect_reader(self.config.reader, self.home)
        return make_reader(self.config.reader, self.home)

    @cached_property
    def attention(self):
        """attention-sort's attention source (the reader's own weights, which it loads only
        when attention-sort first asks)."""
        return make_attention(self.config.reader, self.home)

    def optional_attention(self):
        """The attention source where the reader's weights are on disk, else None (a
        server on a remote or fake reader offers no attention-sort)."""
        reader = self.config.reader
        if reader.backend == "vllm" and (anchored(reader.on_this_machine(self.home).model_dir, self.home) / "config.json").is_file():
            return self.attention
        return None

    def budget(self, override: int | None = None) -> int:
        """Context tokens a strategy may fill: ``override`` (refused when over what the
        reader's window leaves), else ``strategies.budget_tokens``, else the window's room."""
        window = context_budget(self.config.reader, replace(self.config.strategies, budget_tokens=0))
        if override is not None and override > window:
            raise ConfigError(
                f"--budget {override} is over what the reader's window leaves ({window} tokens of "
                f"reader.max_model_len {self.config.reader.max_model_len}); lower it or raise reader.max_model_len"
            )
        return override or context_budget(self.config.reader, self.config.strategies)

    # -- the index side ----------------------------------------------------------------

    def encoder_for(self, config: EncoderConfig):
        """The encoder an index was built with (an index records its encoder config), warmed
        up once per config for the session."""
        if config not in self._encoders:
            self._encoders[config] = make_encoder(config).warm_up()
        return self._encoders[config]

    @property
    def encoder(self):
        """The config's own encoder (ingestion and evaluation indexes use it)."""
        return self.encoder_for(self.config.encoder)

    def open_index(self, folder: Path) -> IndexReader:
        return IndexReader(folder, self.encoder_for)

    def router_for(self, index: Path | None) -> RoutePolicy | None:
        """The router fitted for an index (``lcrag route fit --index``), if any."""
        return load_router(router_path(index)) if index is not None else None

    def toolkit(self, corpus: Corpus, *, budget: int | None = None, router: RoutePolicy | None = None,
                may_abstain: bool = False, attention: Any = None) -> Toolkit:
        """What every strategy reads through: this session's reader and attention source."""
        if attention is None:  # the one given or built already, else one built if attention-sort asks
            attention = self.__dict__.get("attention", AttentionOnDemand(lambda: self.attention))
        return Toolkit(corpus, self.reader, self.config.strategies, budget or self.budget(),
                       attention, may_abstain=may_abstain, router=router)

    # -- the record --------------------------------------------------------------------

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.ledger_path)

    def close(self) -> None:
        reader = self.__dict__.get("reader")
        if reader is not None and hasattr(reader, "close"):
            reader.close()

    def __exit__(self, *exc) -> None:
        self.close()

