"""LLM readers, one backend per module; ``reader.backend`` in the config picks one."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lcrag.readers.config import ReaderConfig


def _vllm(config: ReaderConfig, home: Path):
    from lcrag.readers.vllm import VLLMReader

    return VLLMReader(config, home=home)


def _fake(config: ReaderConfig, home: Path):
    from lcrag.readers.fake import FakeReader

    return FakeReader()


READERS: dict[str, Callable[[ReaderConfig, Path], object]] = {"vllm": _vllm, "fake": _fake}


def _resolved(config: ReaderConfig, home: Path) -> ReaderConfig:
    """``reader.model: auto`` made concrete for this machine (a loaded config already is)."""
    from lcrag.readers.server import cpu_flags

    return config.resolved(home, cpu_flags()) if config.model == "auto" or not config.model_dir else config


def make_reader(config: ReaderConfig, home: Path):
    config = _resolved(config, home)
    if config.backend not in READERS:
        raise ValueError(f"unknown reader backend {config.backend!r}; choose one of {', '.join(READERS)}")
    return READERS[config.backend](config, home)


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
