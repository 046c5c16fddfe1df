"""LLM readers, one backend per module; ``reader.backend`` in the config picks one."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.config import ReaderConfig


def _vllm(config: ReaderConfig, project_root: Path):
    from readers.vllm import VLLMReader

    return VLLMReader(config, project_root=project_root)


def _fake(config: ReaderConfig, project_root: Path):
    from readers.fake import FakeReader

    return FakeReader()


READERS: dict[str, Callable[[ReaderConfig, Path], object]] = {"vllm": _vllm, "fake": _fake}


def make_reader(config: ReaderConfig, project_root: Path):
    if config.backend not in READERS:
        raise ValueError(f"unknown reader backend {config.backend!r}; choose one of {', '.join(READERS)}")
    return READERS[config.backend](config, project_root)
