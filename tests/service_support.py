"""What the query API tests share: a small real index, the application built
from real parts, and readers that block or fail on demand."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from lcrag.pipeline.config import Config, ServiceConfig, config_from_dict
from lcrag.pipeline.ingest.ingestion import ingest
from lcrag.pipeline.ingest.loaders import load_source
from lcrag.pipeline.ledger import Ledger
from lcrag.readers.base import ReaderError
from lcrag.readers.fake import FakeReader

KEY = "test-key-6f1c"
AUTH = {"Authorization": f"Bearer {KEY}"}
FAKE = config_from_dict({"reader": {"backend": "fake"}})


def build_index(root: Path, encoder) -> Path:
    """The six topic documents of tests.conftest, in small chunks and units."""
    from tests.conftest import TOPICS, write_corpus

    config = config_from_dict({"chunking": {"target_tokens": 16}, "units": {"max_tokens": 120}})
    index = root / "index"
    ingest(load_source(write_corpus(root / "corpus", TOPICS)), index, config, encoder, "corpus")
    return index


def make_app(live, reader, ledger_path: Path, config: Config = FAKE, **service):
    from lcrag.app.service import create_app

    settings = replace(ServiceConfig(api_key=KEY), **service)
    return create_app(live, reader, Ledger(ledger_path), config, settings)


class BlockingReader(FakeReader):
    """Holds every read until ``release`` is set; ``entered`` says one started."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def read(self, prompt):
        self.entered.set()
        if not self.release.wait(60):
            raise RuntimeError("BlockingReader was never released")
        return super().read(prompt)


class DownReader(FakeReader):
    """A reader whose server is gone."""

    def read(self, prompt):
        raise ReaderError("no reader answers at http://127.0.0.1:1/v1")

    def healthy(self) -> bool:
        return False


class BrokenReader(FakeReader):
    """A reader with a bug: fails with an error nobody planned for."""

    def read(self, prompt):
        raise ValueError("secret internal detail")
