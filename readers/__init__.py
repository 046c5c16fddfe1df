"""LLM readers, one backend per module; ``reader.backend`` in the config picks one of
the ``lcrag.readers`` entry point group (``readers.registry``: lcrag's own and plugins')."""

from __future__ import annotations

from pathlib import Path

from lcrag.core.errors import ConfigError
from lcrag.readers.config import ReaderConfig
from lcrag.readers.registry import reader_backends


def _resolved(config: ReaderConfig, home: Path) -> ReaderConfig:
    """``reader.model: auto`` made concrete for this machine (a loaded config already is)."""
    from lcrag.readers.server import cpu_flags

    return config.resolved(home, cpu_flags()) if config.model == "auto" or not config.model_dir else config


def make_reader(config: ReaderConfig, home: Path):
    config = _resolved(config, home)
    factories = reader_backends()
    if config.backend not in factories:
        raise ConfigError(f"unknown reader backend {config.backend!r}; choose one of {', '.join(factories)}")
    return factories[config.backend](config, home)


def connect_reader(config: ReaderConfig, home: Path):
    """A reader that answers now, or a ReaderError that says how to get one."""
    from lcrag.readers.base import ReaderError

    reader = make_reader(config, home)
    if not reader.healthy():
        raise ReaderError(
            f"no reader serves {reader.model!r} at {config.url}; start it with `lcrag reader start` "
            "or set reader.base_url in --config"
        )
    return reader


def make_attention(config: ReaderConfig, home: Path):
    """The attention source for attention-sort: the reader's own weights on the
    transformers path (loaded only when attention-sort first asks)."""
    from lcrag.core.paths import anchored
    from lcrag.readers.attention import TransformersAttention

    config = _resolved(config, home)
    return TransformersAttention(anchored(config.model_dir, home))
