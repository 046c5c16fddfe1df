"""Shared fixtures: the real offline encoder (loaded once), small corpora, the
evaluation data beside the project, and one Prefect test harness per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lcrag.readers.fake import FakeReader

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The set-up (make test) keeps state in the checkout's .state folder; a bare pytest run too.
os.environ.setdefault("LCRAG_HOME", str(ROOT / ".state"))
STATE = Path(os.environ["LCRAG_HOME"])
os.environ.setdefault("PREFECT_HOME", str(STATE / "prefect-tests"))
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

TOPICS = {
    "cats.md": "# Cats\n\nCats are small domestic felines. They purr when they are content and sleep most of the day.\n\n"
    "A cat grooms its fur with a rough tongue. Kittens learn to hunt by playing with their siblings.\n",
    "volcanoes.txt": "Volcanoes form where magma reaches the surface of the Earth. Lava flows can bury whole towns.\n\n"
    "Mount Etna in Sicily is one of the most active volcanoes in the world. Ash clouds disrupt air travel.\n",
    "bread.md": "# Baking bread\n\nBread dough needs flour, water, salt and yeast. Kneading develops the gluten network.\n\n"
    "A sourdough starter replaces commercial yeast. Bake the loaf in a hot oven until the crust is brown.\n",
    "rockets.txt": "Rockets carry satellites into orbit. Liquid fuel engines burn hydrogen with oxygen.\n\n"
    "Reusable boosters land upright on ships at sea. The Saturn V took astronauts to the Moon.\n",
    "guide/chess.html": "<html><head><title>Chess openings</title></head><body><p>The Sicilian Defence answers e4 with c5.</p>"
    "<p>Castling moves the king to safety. A gambit sacrifices a pawn for development.</p></body></html>",
    "guide/tea.txt": "Green tea is steamed or pan fired to stop oxidation. Black tea is fully oxidised.\n\n"
    "Matcha is powdered green tea whisked with hot water. Tea contains caffeine and theanine.\n",
}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("evaluation data (../shared/data) is not beside the project")
    return SHARED_DATA


@pytest.fixture(scope="module")
def live(tmp_path_factory, encoder):
    """A live index over the six topic documents (``service_support.build_index``), one
    per test module: what the query API, the chat API and their benchmarks serve."""
    from lcrag.pipeline.index.live import LiveIndex
    from tests.service_support import build_index

    with LiveIndex(build_index(tmp_path_factory.mktemp("live"), encoder), lambda config: encoder) as live:
        yield live


@pytest.fixture(scope="session")
def encoder():
    from lcrag.pipeline.config import EncoderConfig
    from lcrag.retrievers.encoders.encoder import TransformerEncoder

    return TransformerEncoder(EncoderConfig()).warm_up()


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


class CountingReader(FakeReader):
    """The fake reader, keeping every text it was asked to tokenize (with a remote
    reader, each is one HTTP call): tests of what is counted once and remembered."""

    def __init__(self) -> None:
        super().__init__()
        self.counted: list[str] = []

    def count_tokens(self, text: str) -> int:
        self.counted.append(text)
        return super().count_tokens(text)


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        write(folder / name, content)
    return folder


@pytest.fixture
def topic_corpus(tmp_path: Path) -> Path:
    """Six short documents on distinct topics, plus files that must be skipped."""
    return write_corpus(
        tmp_path / "corpus",
        {
            **TOPICS,
            "broken.pdf": b"%PDF-1.4\n this is not really a pdf",
            "blob.txt": b"\x00\x01\x02binary\x00",
            "empty.md": "",
            "latin1.txt": "caf\xe9".encode("latin-1"),
        },
    )


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (the first flow run costs ~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# The fast reader: tests that only need a reader to answer use SmolLM2-135M (about three
# times Qwen's speed on CPU); the default reader (Qwen2.5-Coder-0.5B) is for real evaluations.
FAST_READER = {"model": "smollm2-135m-instruct", "model_dir": "models/smollm2-135m-instruct"}


def fast_reader_config(**overrides):
    from lcrag.readers.config import ReaderConfig

    return ReaderConfig(**{**FAST_READER, **overrides})


def require_reader_install() -> tuple[Path, Path]:
    """The reader venv and converted model, or skip (fail under LCRAG_REQUIRE_READER=1,
    as `make test` sets, so CI can never pass by skipping the real reader)."""
    config = fast_reader_config()
    venv, model = STATE / config.venv, STATE / config.model_dir
    for path, what in ((venv / "bin" / "python", "reader virtualenv"), (model / "config.json", "converted reader model")):
        if not path.exists():
            message = f"{what} {path} is absent (run scripts/setup_reader.sh)"
            if os.environ.get("LCRAG_REQUIRE_READER") == "1":
                pytest.fail(message)
            pytest.skip(message)
    return venv, model


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_reader(tmp_path_factory):
    """A real vLLM server on 127.0.0.1 for the whole session; yields its ReaderConfig."""
    from lcrag.readers.server import ReaderServer

    require_reader_install()
    config = fast_reader_config(port=free_port(), max_tokens=24)
    server = ReaderServer(config, home=STATE, state_dir=tmp_path_factory.mktemp("reader-state"))
    server.start()
    try:
        yield config
    finally:
        server.stop()


@pytest.fixture(scope="session")
def topics_reader(tmp_path_factory, encoder):
    """An opened index over TOPICS (small chunks and units), shared by search tests."""
    from lcrag.pipeline.config import config_from_dict
    from lcrag.pipeline.index.search import IndexReader
    from lcrag.pipeline.ingest.ingestion import ingest
    from lcrag.pipeline.ingest.loaders import load_source

    root = tmp_path_factory.mktemp("topics")
    corpus = write_corpus(root / "corpus", TOPICS)
    config = config_from_dict({"chunking": {"target_tokens": 20}, "units": {"max_tokens": 200}})
    ingest(load_source(corpus), root / "index", config, encoder, "corpus")
    with IndexReader(root / "index", lambda c: encoder) as opened:
        yield opened

