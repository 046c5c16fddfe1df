"""Reader backends by name (``reader.backend``): the ``lcrag.readers`` entry point group,
and building the configured one. Each entry point names a factory
``(config: ReaderConfig, home: Path) -> reader`` (lcrag's own: ``VLLMReader.from_config``,
``FakeReader.from_config``), registered in its pyproject the way a plugin's are. Loaded on
first use (``lcrag.core.plugins``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lcrag.core.errors import ConfigError
from lcrag.core.plugins import load_group

GROUP = "lcrag.readers"


def _factory(name: str, obj: Any) -> str | None:
    return None if callable(obj) else "must name a callable (config, home) -> reader"


def reader_backends() -> dict[str, Callable[..., Any]]:
    """Backend name -> reader factory, in the order the entry points list them."""
    return load_group(GROUP, "reader backend", _factory)


def make_reader(config, home: Path):
    """The reader ``config.backend`` names (``config``: a ``ReaderConfig``, which validates
    its backend against this registry, hence untyped here)."""
    factories = reader_backends()
    if config.backend not in factories:
        raise ConfigError(f"unknown reader backend {config.backend!r}; choose one of {', '.join(factories)}")
    return factories[config.backend](config, home)


def connect_reader(config, home: Path):
    """A reader that answers now, or a ReaderError that says how to get one."""
    from lcrag.readers.base import ReaderError

    reader = make_reader(config, home)
    if not reader.healthy():
        raise ReaderError(
            f"no reader serves {reader.model!r} at {config.url}; start it with `lcrag reader start` "
            "or set reader.base_url in --config"
        )
    return reader
