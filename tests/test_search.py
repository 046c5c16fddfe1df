"""Search over a real small index: levels aggregate by max-P, hybrid fuses both
retrievers, and bad requests name the valid choices."""

from __future__ import annotations

import pytest

from lcrag.pipeline.index.folder import IndexStateError
from lcrag.pipeline.index.search import IndexReader, SearchError


@pytest.fixture(scope="module")
def reader(topics_reader):
    return topics_reader


def test_levels_aggregate_chunks_by_their_best_score(reader):
    chunks = reader.search("sourdough bread oven", k=50, mode="bm25", level="chunk")
    docs = reader.search("sourdough bread oven", k=50, mode="bm25", level="doc")
    best = {}
    for hit in chunks:
        best.setdefault(hit.doc_id, hit.score)
    assert [(h.doc_id, pytest.approx(h.score)) for h in docs] == [(d, pytest.approx(s)) for d, s in best.items()]
    units = reader.search("sourdough bread oven", k=50, mode="bm25", level="unit")
    assert len({h.key for h in units}) == len(units)
    assert all(h.key == h.unit_id for h in units)


@pytest.mark.parametrize(
    "fusion, top_score",
    [
        ("convex", 1.0),  # first in both lists: min-max 1 in each, weights 1/2 + 1/2
        ("rrf", 1 / 61 + 1 / 61),  # first in both rankings, rrf_k = 60
    ],
)
def test_hybrid_fuses_both_retrievers(reader, fusion, top_score):
    hits = reader.search("Which defence answers e4 with c5?", k=3, mode="hybrid", level="doc", fusion=fusion)
    assert hits[0].doc_id == "guide/chess.html"
    assert dict(hits[0].sources).keys() == {"dense", "bm25"}
    assert hits[0].score == pytest.approx(top_score)


def test_the_default_fusion_is_convex(reader):
    assert reader.config.retrieval.fusion == "convex"
    assert all(0.0 <= h.score <= 1.0 for h in reader.search("sourdough bread oven", k=10, mode="hybrid"))


def test_hits_cite_text_by_offsets(reader):
    for hit in reader.search("hydrogen oxygen engines", k=5, level="chunk"):
        doc = reader.catalog.documents([hit.doc_id])[hit.doc_id]
        assert doc.text[hit.start : hit.end] == hit.text


@pytest.mark.parametrize(
    "kwargs, message",
    [({"mode": "sparse"}, "dense, bm25, hybrid"), ({"fusion": "rank"}, "rrf, convex"), ({"level": "page"}, "chunk, unit, doc"),
     ({"k": 0}, "at least 1")],
)
def test_bad_requests_name_the_valid_choices(reader, kwargs, message):
    with pytest.raises(SearchError, match=message):
        reader.search("tea", **kwargs)


def test_an_unfinished_folder_is_never_searched(tmp_path, encoder):
    (tmp_path / "half").mkdir()
    with pytest.raises(IndexStateError, match="not a finished lcrag index"):
        IndexReader(tmp_path / "half", lambda c: encoder)


def test_one_reader_serves_many_threads_as_it_serves_one(reader):
    """The API shares one IndexReader per generation between request threads: results
    under concurrency must equal the serial ones (catalog, Qdrant, BM25 and encoder)."""
    from concurrent.futures import ThreadPoolExecutor

    requests = [(q, mode, level) for q in ("purring cats", "lava flows")
                for mode in ("dense", "bm25", "hybrid") for level in ("chunk", "unit", "doc")]
    docs = reader.doc_ids()

    def run(request):
        query, mode, level = request
        hits = reader.search(query, k=3, mode=mode, level=level)
        return [(h.key, round(h.score, 6), h.text) for h in hits], reader.documents(docs[:3]).keys()

    expected = [run(r) for r in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(2):
            assert list(pool.map(run, requests * 4)) == expected * 4


def test_opening_reads_no_encoder_and_the_first_search_builds_one(tmp_path, encoder):
    """Whole-document strategies (lc, coa, the controls) read through an opened index
    that never loads an encoder model; the first search builds it, once."""
    from tests.service_support import build_index

    index = build_index(tmp_path, encoder)
    built = []

    def factory(config):
        built.append(config)
        return encoder

    with IndexReader(index, factory) as opened:
        doc_id = opened.doc_ids()[0]
        assert opened.documents([doc_id])[doc_id].text and opened.corpus_tokens > 0
        assert built == [] and "vectors" not in opened.__dict__
        first = opened.search("sourdough bread oven", k=3)
        again = opened.search("sourdough bread oven", k=3)
        assert built == [opened.config.encoder] and first == again and first
