"""Contract tests: the behaviour every backend of a role shares, as pytest mixins. A
backend's test class inherits one and provides its fixture (Haystack's document-store
test pattern); lcrag's own backends pass the same classes (tests/test_*_contract.py).

- ``ReaderContract``: fixture ``reader``, a reader (``lcrag.readers`` plugins).
- ``VectorStoreContract``: fixture ``store_config``, a ``StoreConfig`` whose backend is
  registered (``lcrag.stores`` plugins); the mixin opens it with ``open_store``.
- ``RetrieverContract``: fixture ``backend``, an object that indexes chunks, deletes
  some and reopens the index from disk, handing back a ``ChunkRetriever`` each time.

Imports pytest, numpy (the vectors' type) and lcrag only.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lcrag.core.types import Chunk
from lcrag.readers.base import Answer, Passage, Prompt
from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores import VectorStoreError, open_store

__all__ = ["ReaderContract", "RetrieverContract", "VectorStoreContract", "chunks_of", "unit_rows"]


# ------------------------------------------------------------------ readers

PASSAGE = Passage("c1", "etna.txt", 0, 88, "Mount Etna in Sicily is one of the most active volcanoes in the world.", "Etna")
QUESTION = "Which volcano in Sicily is very active?"


class ReaderContract:
    """What strategies rely on from a reader: answers with token counts, latency and
    model; more context costs more prompt tokens; ``read_many`` keeps order; streaming
    hands over the same answer in pieces. Provide the fixture ``reader``."""

    def test_answers_carry_text_tokens_latency_and_model(self, reader):
        answer = reader.read(Prompt(QUESTION, (PASSAGE,)))
        assert isinstance(answer, Answer)
        assert answer.text.strip()
        assert answer.prompt_tokens >= reader.count_tokens(PASSAGE.text)  # the passage is inside the prompt
        assert answer.completion_tokens >= 1 and answer.latency_ms >= 0
        assert answer.model == reader.model

    def test_more_context_costs_more_prompt_tokens(self, reader):
        short = reader.read(Prompt(QUESTION, (PASSAGE,)))
        longer = reader.read(Prompt(QUESTION, (PASSAGE, Passage("c2", "x.txt", 0, 40, "Lava flows can bury whole towns. " * 5, "Lava"))))
        assert longer.prompt_tokens > short.prompt_tokens

    def test_closed_book_prompt_is_answered(self, reader):
        answer = reader.read(Prompt("What is the capital of France?"))
        assert answer.prompt_tokens > 0 and answer.completion_tokens >= 1

    def test_read_many_keeps_order_and_length(self, reader):
        prompts = [Prompt(f"Question number {i}: what is {i} plus one?", (PASSAGE,)) for i in range(4)]
        answers = reader.read_many(prompts)
        assert len(answers) == 4
        singles = [reader.read(p) for p in prompts]
        assert [a.prompt_tokens for a in answers] == [s.prompt_tokens for s in singles]  # same prompts, same order

    def test_unanswerable_is_only_reported_when_allowed(self, reader):
        allowed = reader.read(Prompt("Who composed the Brandenburg concertos?", (PASSAGE,), allow_unanswerable=True))
        forbidden = reader.read(Prompt("Who composed the Brandenburg concertos?", (PASSAGE,), allow_unanswerable=False))
        assert isinstance(allowed.unanswerable, bool)
        assert forbidden.unanswerable is False

    def test_stream_hands_over_the_answer_in_pieces(self, reader):
        prompt = Prompt(QUESTION, (PASSAGE,))
        with reader.stream(prompt) as pieces:
            got = list(pieces)
        answer = pieces.answer
        assert isinstance(answer, Answer) and answer.text.strip()
        assert "".join(got) == answer.text  # the pieces are the answer, shaped as read shapes it
        assert answer.prompt_tokens == reader.read(prompt).prompt_tokens  # the same request
        assert answer.completion_tokens >= 1 and answer.model == reader.model

    def test_a_stream_closed_early_gives_no_answer_and_can_be_closed_again(self, reader):
        stream = reader.stream(Prompt(QUESTION, (PASSAGE,)))
        next(stream)
        stream.close()
        stream.close()
        assert stream.answer is None
        assert reader.read(Prompt(QUESTION, (PASSAGE,))).text  # the reader is free for the next read

    @pytest.mark.parametrize("text", ["", "word", "a longer sentence with several words in it."])
    def test_count_tokens_is_monotone(self, reader, text):
        assert reader.count_tokens(text) <= reader.count_tokens(text + " and more words")
        assert reader.count_tokens("") == 0


# ------------------------------------------------------------------ vector stores

DIM = 16


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors of ``dim`` dimensions (float32), the same for a seed."""
    rows = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def chunks_of(ids: list[str], unit_of=lambda cid: cid) -> list[Chunk]:
    """A Chunk per id, in unit ``unit_of(id)`` (by default its own)."""
    return [Chunk(cid, unit_id=unit_of(cid), doc_id=f"doc-{cid}", start=0, end=len(cid), position=i) for i, cid in enumerate(ids)]


CRASH_WRITER = """
import sys
from pathlib import Path
import numpy as np
from lcrag.core.types import Chunk
from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores import open_store

backend, folder, url, collection, dim, size = sys.argv[1:]
dim, size = int(dim), int(size)
store = open_store(StoreConfig(backend=backend, qdrant_url=url, collection=collection), Path(folder))
store.ensure_collection(dim)
rng = np.random.default_rng(0)
batch = 0
while True:
    ids = [f"b{batch}-c{i}" for i in range(size)]
    store.upsert([Chunk(c, unit_id=c, doc_id="d", start=0, end=1, position=i) for i, c in enumerate(ids)],
                 rng.normal(size=(size, dim)).astype(np.float32))
    print(batch, flush=True)
    batch += 1
"""


class VectorStoreContract:
    """What ingestion and search rely on from a ``ChunkVectorStore``: one point per chunk (a
    rewrite replaces it), cosine ranking, deletion by unit, exact counts, everything kept
    across close and reopen, and acknowledged writes kept across a SIGKILL. Provide the
    fixture ``store_config``: a StoreConfig naming a registered ``store.backend``."""

    def exclusive(self, store_config: StoreConfig) -> bool:
        """Whether a second open of the same folder is refused (a server serves many clients)."""
        return not store_config.qdrant_url

    @pytest.fixture
    def store_folder(self, tmp_path: Path) -> Path:
        return tmp_path / "vectors"

    @pytest.fixture
    def opener(self, store_config, store_folder):
        """Opens the backend's store on one folder; every store it opened is closed at the end."""
        opened = []

        def open_():
            store = open_store(store_config, store_folder)
            opened.append(store)
            return store

        yield open_
        for store in opened:
            store.close()

    def test_an_empty_store_answers_empty(self, opener):
        store = opener()
        assert store.count() == 0 and store.unit_ids() == set()
        assert store.search(unit_rows(1, DIM, 0)[0], 5) == []
        store.delete_units(["nothing"])

    def test_ensure_collection_checks_the_dimension(self, opener):
        store = opener()
        store.ensure_collection(DIM)
        store.ensure_collection(DIM)
        with pytest.raises(VectorStoreError, match=f"{DIM}-d"):
            store.ensure_collection(DIM * 2)
        store.close()
        with pytest.raises(VectorStoreError, match=f"{DIM}-d"):
            opener().ensure_collection(DIM * 2)

    def test_upsert_again_replaces_never_duplicates(self, opener):
        store = opener()
        store.ensure_collection(DIM)
        ids = [f"c{i}" for i in range(40)]
        vectors = unit_rows(40, DIM, 1)
        store.upsert(chunks_of(ids), vectors)
        store.upsert(chunks_of(ids), vectors)
        assert store.count() == 40 and store.unit_ids() == set(ids)
        moved = unit_rows(1, DIM, 2)
        store.upsert(chunks_of(["c0"]), moved)  # a new vector for the same chunk
        assert store.count() == 40
        best = store.search(moved[0], 1)[0]
        assert best.chunk_id == "c0" and best.score == pytest.approx(1.0, abs=1e-5)

    def test_search_ranks_by_exact_cosine(self, opener):
        store = opener()
        store.ensure_collection(DIM)
        ids = [f"c{i}" for i in range(300)]
        vectors = unit_rows(300, DIM, 3)
        store.upsert(chunks_of(ids), vectors * 3.0)  # unnormalised: cosine must not care
        for query in unit_rows(10, DIM, 4):
            cosine = vectors @ query
            order = np.argsort(-cosine)[:10]
            for exact in (False, True):
                hits = store.search(query * 0.5, 10, exact=exact)
                assert [h.chunk_id for h in hits] == [ids[i] for i in order]
                np.testing.assert_allclose([h.score for h in hits], cosine[order], atol=1e-5)

    def test_delete_units_removes_all_their_points(self, opener):
        store = opener()
        store.ensure_collection(DIM)
        ids = [f"u{u}-c{i}" for u in range(6) for i in range(5)]
        store.upsert(chunks_of(ids, unit_of=lambda cid: cid.split("-")[0]), unit_rows(30, DIM, 5))
        store.delete_units(["u1", "u4", "not-there"])
        assert store.unit_ids() == {"u0", "u2", "u3", "u5"} and store.count() == 20
        found = {h.chunk_id for h in store.search(unit_rows(1, DIM, 6)[0], 30)}
        assert len(found) == 20 and not {c for c in found if c.startswith(("u1-", "u4-"))}

    def test_close_and_reopen_keep_everything(self, opener):
        store = opener()
        store.ensure_collection(DIM)
        ids = [f"c{i}" for i in range(200)]
        store.upsert(chunks_of(ids, unit_of=lambda cid: f"u{int(cid[1:]) % 7}"), unit_rows(200, DIM, 7))
        store.delete_units(["u3"])
        queries = unit_rows(5, DIM, 8)
        before = [store.search(q, 10) for q in queries]
        units, count = store.unit_ids(), store.count()
        store.close()
        again = opener()
        again.ensure_collection(DIM)
        assert again.unit_ids() == units and again.count() == count
        for query, hits in zip(queries, before):
            after = again.search(query, 10)
            assert [h.chunk_id for h in after] == [h.chunk_id for h in hits]
            np.testing.assert_allclose([h.score for h in after], [h.score for h in hits], atol=1e-6)

    def test_a_second_open_of_the_same_folder_is_refused_clearly(self, store_config, opener):
        if not self.exclusive(store_config):
            pytest.skip("a server serves many clients")
        store = opener()
        store.ensure_collection(DIM)
        with pytest.raises(VectorStoreError, match="open"):
            opener()

    def test_acknowledged_writes_survive_a_sigkill(self, store_config, store_folder, opener):
        """The writer prints each batch number once upsert returned; it is killed after the
        third. Every chunk is its own unit, so unit_ids() lists the chunks present."""
        size = 64
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_WRITER, store_config.backend, str(store_folder),
             store_config.qdrant_url, store_config.collection, str(DIM), str(size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        acknowledged = -1
        try:
            for line in child.stdout:
                acknowledged = int(line)
                if acknowledged >= 2:
                    break
        finally:
            child.send_signal(signal.SIGKILL)
            _, errors = child.communicate(timeout=60)
        assert acknowledged >= 2, f"the writer stopped before its third batch:\n{errors}"

        store = opener()
        store.ensure_collection(DIM)
        present = store.unit_ids()
        promised = {f"b{b}-c{i}" for b in range(acknowledged + 1) for i in range(size)}
        assert promised <= present
        assert store.count() == len(present)  # one point per chunk: no duplicates, no half-written ones
        stray = present - promised  # what reconcile() would drop: writes after the last acknowledgement
        store.delete_units(stray)
        fresh = unit_rows(3, DIM, 9)
        store.upsert(chunks_of(["after-0", "after-1", "after-2"]), fresh)
        assert store.count() == len(promised) + 3
        assert store.search(fresh[1], 1)[0].chunk_id == "after-1"


# ------------------------------------------------------------------ retrievers

CHUNKS = {
    "cats-1": "Cats are small domestic felines. They purr when they are content and sleep most of the day.",
    "cats-2": "A kitten learns to hunt by playing with its siblings and grooms its fur with a rough tongue.",
    "volcano-1": "Mount Etna in Sicily is one of the most active volcanoes in the world.",
    "volcano-2": "Lava flows can bury whole towns, and volcanic ash clouds disrupt air travel.",
    "bread-1": "A sourdough starter replaces commercial yeast when you bake bread at home.",
    "rocket-1": "The Saturn V rocket took astronauts to the Moon; liquid hydrogen burned with oxygen.",
    "chess-1": "In chess the Sicilian Defence answers e4 with c5, and castling moves the king to safety.",
    "tea-1": "Matcha is powdered green tea whisked with hot water; tea contains caffeine.",
}

# A phrase found verbatim in exactly one chunk: that chunk must come first.
EXACT = [
    ("Mount Etna volcano", "volcano-1"),
    ("sourdough starter yeast", "bread-1"),
    ("Saturn V rocket", "rocket-1"),
    ("Sicilian Defence castling", "chess-1"),
    ("Matcha green tea", "tea-1"),
    ("kitten siblings hunt", "cats-2"),
]
EVERY_TOPIC = "cats kitten volcanoes lava sourdough bread rocket chess tea"  # a term of every chunk
UNKNOWN = "zyxwvut qqqxj"  # in no chunk, in no vocabulary


class RetrieverContract:
    """Behaviour every ChunkRetriever backend shares. ``matches_terms``: whether
    only chunks sharing a query term are returned (BM25) or every query gets its
    nearest chunks (dense). Provide the fixture ``backend``."""

    matches_terms: bool

    def test_is_a_named_retriever_of_scored_chunks(self, backend):
        retriever = backend.index(CHUNKS)
        assert isinstance(retriever.name, str) and retriever.name
        results = retriever.retrieve(EVERY_TOPIC, 3)
        assert results and all(isinstance(r, ScoredChunk) and isinstance(r.score, float) for r in results)

    @pytest.mark.parametrize("k", [1, 3, len(CHUNKS), len(CHUNKS) + 5])
    def test_returns_at_most_k_distinct_indexed_chunks(self, backend, k):
        retriever = backend.index(CHUNKS)
        results = retriever.retrieve(EVERY_TOPIC, k)
        ids = [r.chunk_id for r in results]
        assert len(ids) == min(k, len(CHUNKS))  # every chunk matches, so exactly that many
        assert len(set(ids)) == len(ids) and set(ids) <= set(CHUNKS)

    @pytest.mark.parametrize("query", [q for q, _ in EXACT] + [EVERY_TOPIC, "hot water and air travel"])
    def test_scores_never_increase_down_the_list(self, backend, query):
        results = backend.index(CHUNKS).retrieve(query, len(CHUNKS))
        assert results
        scores = [r.score for r in results]
        assert all(a >= b for a, b in itertools.pairwise(scores)), scores
        assert all(np.isfinite(scores))

    @pytest.mark.parametrize("query, chunk_id", EXACT)
    def test_an_exact_phrase_finds_its_chunk_first(self, backend, query, chunk_id):
        results = backend.index(CHUNKS).retrieve(query, 3)
        assert results[0].chunk_id == chunk_id, results

    def test_smaller_k_is_a_prefix_of_larger_k(self, backend):
        retriever = backend.index(CHUNKS)
        for query, _ in EXACT:
            longer = retriever.retrieve(query, len(CHUNKS))
            for k in (1, 2, 4):
                assert [r.chunk_id for r in retriever.retrieve(query, k)] == [r.chunk_id for r in longer[:k]]

    def test_same_query_gives_the_same_answer(self, backend):
        retriever = backend.index(CHUNKS)
        assert retriever.retrieve(EVERY_TOPIC, 5) == retriever.retrieve(EVERY_TOPIC, 5)

    def test_k_zero_returns_nothing(self, backend):
        assert backend.index(CHUNKS).retrieve(EVERY_TOPIC, 0) == []

    def test_empty_index_returns_nothing(self, backend):
        retriever = backend.index({})
        assert retriever.retrieve(EVERY_TOPIC, 5) == []
        assert retriever.retrieve(UNKNOWN, 5) == []

    def test_unknown_terms(self, backend):
        results = backend.index(CHUNKS).retrieve(UNKNOWN, 3)
        if self.matches_terms:
            assert results == []  # nothing shares a term: no result, rather than arbitrary ones
        else:
            assert len(results) == 3 and {r.chunk_id for r in results} <= set(CHUNKS)  # nearest chunks all the same

    def test_deleted_chunks_are_never_returned(self, backend):
        backend.index(CHUNKS)
        gone = {"volcano-1", "volcano-2", "tea-1"}
        retriever = backend.delete(gone)
        results = retriever.retrieve(EVERY_TOPIC, len(CHUNKS) + 5)
        assert {r.chunk_id for r in results} == set(CHUNKS) - gone  # every other chunk is still found
        assert all(r.chunk_id not in gone for r in retriever.retrieve("Mount Etna volcano lava", len(CHUNKS)))
        assert retriever.retrieve("sourdough starter yeast", 1)[0].chunk_id == "bread-1"

    def test_deleting_every_chunk_leaves_nothing_to_find(self, backend):
        backend.index(CHUNKS)
        retriever = backend.delete(set(CHUNKS))
        assert retriever.retrieve(EVERY_TOPIC, 5) == []

    def test_reopened_from_disk_gives_the_same_results(self, backend):
        retriever = backend.index(CHUNKS)
        queries = [q for q, _ in EXACT] + [EVERY_TOPIC]
        before = [retriever.retrieve(q, 5) for q in queries]
        reopened = backend.reopen()
        after = [reopened.retrieve(q, 5) for q in queries]
        for a, b in zip(before, after):
            assert [r.chunk_id for r in a] == [r.chunk_id for r in b]
            np.testing.assert_allclose([r.score for r in a], [r.score for r in b], rtol=1e-5, atol=1e-6)

    def test_deletion_survives_reopening(self, backend):
        backend.index(CHUNKS)
        backend.delete({"rocket-1"})
        reopened = backend.reopen()
        ids = {r.chunk_id for r in reopened.retrieve(EVERY_TOPIC, len(CHUNKS) + 5)}
        assert ids == set(CHUNKS) - {"rocket-1"}
