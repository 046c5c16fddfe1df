"""lcrag's own reader backends, registered in the ``lcrag.readers`` entry point group
(pyproject) as a plugin's would be. A factory takes ``(config, home)`` and returns a
reader; it imports its backend only when called, so choosing one loads no other."""

from __future__ import annotations

from pathlib import Path

from lcrag.readers.config import ReaderConfig


def vllm_reader(config: ReaderConfig, home: Path):
    """vLLM's OpenAI-compatible server (local, or at ``reader.base_url``)."""
    from lcrag.readers.vllm import VLLMReader

    return VLLMReader(config, home=home)


def fake_reader(config: ReaderConfig, home: Path):
    """The deterministic fake reader: tests above the reader only (``lcrag.testing``)."""
    from lcrag.readers.fake import FakeReader

    return FakeReader()
