"""BM25: score parity with rank_bm25.BM25Okapi (its definition), search order,
persistence, the analyzer, and parity on real SciFact documents when present."""

from __future__ import annotations

import json
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from lcrag.pipeline.config import BM25Config
from lcrag.retrievers.bm25 import Analyzer, BM25Index, BM25Retriever

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CORPUS = [
    "The cat sat on the mat.",
    "A cat and a dog played in the garden.",
    "Dogs chase cats; cats chase mice.",
    "The stock market fell as inflation rose.",
    "Inflation and interest rates worry investors and the cat.",
    "Quantum computers use qubits instead of bits.",
    "A qubit can be in a superposition of states.",
    "The garden had roses, tulips and a sleeping cat.",
    "Running every morning keeps the cat owner healthy.",
    "He runs a small bakery that sells bread and cakes.",
    "Bread needs flour, water, salt and yeast; cat hair is not an ingredient.",
    "The cat cat cat repeated itself in 2024.",
    "Interest rates rose in 2023 and again in 2024.",
    "Cats sleep for many hours; the cat in the garden sleeps too.",
    "Investors sold bonds when the market fell.",
    "A dog barked at the cat on the fence.",
    "Superposition and entanglement are quantum effects.",
    "Cat videos are popular on the internet.",
]

QUERIES = [
    "cat",
    "cat cat",  # repeated term counts twice
    "cats and dogs",
    "garden cat",
    "stock market inflation",
    "interest rates 2024",
    "quantum qubit superposition",
    "bread flour yeast",
    "running dog",
    "unknownword",  # no document has it
    "unknownword cat",
    "the",  # a stop word: analysed away
    "investors bonds market fell",
    "sleeping cats in the garden",
    "2023",
    "entanglement",
    "bakery cakes bread bread",
    "cat dog mice fence",
    "healthy morning run",
    "popular internet videos cat",
]

SETTINGS = [
    BM25Config(),
    BM25Config(k1=1.2, b=0.5),
    BM25Config(k1=0.9, b=1.0, epsilon=0.1),
    BM25Config(k1=2.0, b=0.0, epsilon=0.5),
    BM25Config(k1=0.1, b=0.3, epsilon=0.0),
]


def analyse(texts, analyzer=None):
    analyzer = analyzer or Analyzer()
    return [analyzer.tokens(t) for t in texts]


def reference_scores(token_lists, config, query_tokens):
    ref = BM25Okapi(token_lists, k1=config.k1, b=config.b, epsilon=config.epsilon)
    return ref.get_scores(query_tokens)


# -- parity --------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", SETTINGS, ids=lambda c: f"k1={c.k1},b={c.b},eps={c.epsilon}")
def test_scores_equal_rank_bm25(config):
    token_lists = analyse(CORPUS)
    index = BM25Index.build([f"c{i}" for i in range(len(CORPUS))], token_lists, config)
    analyzer = Analyzer()
    for query in QUERIES:
        query_tokens = analyzer.tokens(query)
        expected = reference_scores(token_lists, config, query_tokens)
        got = index.scores(query_tokens)
        assert got.shape == (len(CORPUS),)
        assert np.allclose(got, expected, rtol=1e-9, atol=1e-9), query


def test_corpus_covers_the_edge_cases():
    token_lists = analyse(CORPUS)
    ref = BM25Okapi(token_lists)
    # "cat" is in more than half the documents: its idf is negative and floored to epsilon * average idf
    with_cat = sum("cat" in tokens for tokens in token_lists)
    assert with_cat > len(CORPUS) / 2
    assert np.log((len(CORPUS) - with_cat + 0.5) / (with_cat + 0.5)) < 0
    assert ref.idf["cat"] == pytest.approx(0.25 * ref.average_idf)
    assert ref.idf["cat"] > 0
    assert "unknownword" not in ref.idf


def test_k1_zero_scores_are_sums_of_idf():
    # with k1 = 0 a present term weighs exactly its idf (rank_bm25 itself yields 0/0 = nan where tf = 0)
    token_lists = analyse(CORPUS)
    idf = BM25Okapi(token_lists, k1=0.0).idf
    index = BM25Index.build([f"c{i}" for i in range(len(CORPUS))], token_lists, BM25Config(k1=0.0))
    analyzer = Analyzer()
    for query in QUERIES:
        tokens = analyzer.tokens(query)
        expected = [sum(idf[t] for t in tokens if t in doc) for doc in token_lists]
        assert np.allclose(index.scores(tokens), expected), query


def test_repeated_query_term_counts_again():
    config = BM25Config()
    index = BM25Index.build([f"c{i}" for i in range(len(CORPUS))], analyse(CORPUS), config)
    assert np.allclose(index.scores(["cat", "cat"]), 2 * index.scores(["cat"]))
    assert np.allclose(index.scores(["cat", "garden"]), index.scores(["cat"]) + index.scores(["garden"]))


def test_unknown_terms_score_zero():
    index = BM25Index.build(["a", "b"], [["x", "y"], ["y"]], BM25Config())
    assert np.array_equal(index.scores(["zzz"]), np.zeros(2))
    assert np.array_equal(index.scores([]), np.zeros(2))
    assert np.allclose(index.scores(["zzz", "x"]), index.scores(["x"]))


def test_hand_computed_score():
    # "x" is in one of three documents: idf = ln((3 - 1 + 0.5) / (1 + 0.5))
    docs = [["x", "y"], ["y", "y", "z"], ["w"]]
    config = BM25Config(k1=1.5, b=0.75, epsilon=0.25)
    index = BM25Index.build(["a", "b", "c"], docs, config)
    avgdl = (2 + 3 + 1) / 3
    idf_x = np.log((3 - 1 + 0.5) / (1 + 0.5))
    tf, dl = 1, 2
    expected_a = idf_x * tf * (1.5 + 1) / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))
    assert index.scores(["x"]) == pytest.approx([expected_a, 0.0, 0.0])


def test_documents_with_no_tokens_among_others():
    token_lists = [["alpha", "beta"], [], ["beta", "gamma", "gamma"], []]
    config = BM25Config()
    index = BM25Index.build(["a", "b", "c", "d"], token_lists, config)
    for query in (["beta"], ["gamma", "alpha"], ["delta"]):
        assert np.allclose(index.scores(query), reference_scores(token_lists, config, query))


def test_empty_index():
    index = BM25Index.build([], [], BM25Config())
    assert len(index.scores(["x"])) == 0
    assert index.search("x", 5) == []


def test_chunks_of_only_stop_words_build_an_index():
    texts = ["To be or not to be.", "The and of."]
    token_lists = analyse(texts)
    assert token_lists == [[], []]
    index = BM25Index.build(["a", "b"], token_lists, BM25Config())
    assert np.array_equal(index.scores(["be"]), np.zeros(2))


# -- search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5, 100])
def test_search_sorted_by_score_and_omits_zero(k):
    config = BM25Config()
    ids = [f"c{i}" for i in range(len(CORPUS))]
    index = BM25Index.build(ids, analyse(CORPUS), config)
    analyzer = Analyzer()
    for query in QUERIES:
        scores = reference_scores(analyse(CORPUS), config, analyzer.tokens(query))
        best = sorted((s for s in scores if s > 0), reverse=True)[:k]
        hits = index.search(query, k)
        assert [h.score for h in hits] == pytest.approx(best), query
        assert len({h.chunk_id for h in hits}) == len(hits)
        for hit in hits:
            assert hit.score == pytest.approx(scores[ids.index(hit.chunk_id)])
            assert hit.score > 0
        # equal scores come in index order
        for a, b in pairwise(hits):
            if a.score == b.score:
                assert ids.index(a.chunk_id) < ids.index(b.chunk_id)
    assert BM25Retriever(index).retrieve("quantum qubit", 2) == index.search("quantum qubit", 2)


TIES = [["x"], ["y"], ["x"], ["x"], ["z"], ["w"], ["v"]]  # "x" in 3 of 7: positive idf, equal lengths


def test_search_ties_break_by_index_order():
    index = BM25Index.build(list("abcdefg"), TIES, BM25Config())
    hits = index.search("x", 10)
    assert [h.chunk_id for h in hits] == ["a", "c", "d"]
    assert hits[0].score == hits[1].score == hits[2].score > 0


def test_search_top_k_is_a_prefix_of_a_longer_search():
    index = BM25Index.build(list("abcdefg"), TIES, BM25Config())
    assert [h.chunk_id for h in index.search("x", 2)] == ["a", "c"]
    ids = [f"c{i}" for i in range(len(CORPUS))]
    index = BM25Index.build(ids, analyse(CORPUS), BM25Config())
    for query in QUERIES:
        longest = index.search(query, len(ids))
        for k in range(1, len(longest) + 1):
            assert index.search(query, k) == longest[:k], (query, k)


@pytest.mark.parametrize("k", [0, -1])
def test_search_with_non_positive_k(k):
    index = BM25Index.build(["a"], [["x"]], BM25Config())
    assert index.search("x", k) == []


# -- persistence ------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    config = BM25Config(k1=1.2, b=0.6, stem=False, stopwords=True)
    analyzer = Analyzer(stem=False, stopwords=True)
    ids = [f"c{i}" for i in range(len(CORPUS))]
    index = BM25Index.build(ids, analyse(CORPUS, analyzer), config)
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.chunk_ids == index.chunk_ids
    assert loaded.terms == index.terms
    assert loaded.analyzer == index.analyzer == analyzer
    for query in QUERIES:
        tokens = analyzer.tokens(query)
        assert np.array_equal(loaded.scores(tokens), index.scores(tokens))
        assert loaded.search(query, 5) == index.search(query, 5)


# -- analyzer ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stem, stopwords, text, expected",
    [
        (True, True, "running", ["run"]),
        (True, True, "The Running DOGS", ["run", "dog"]),
        (True, True, "Numbers 42 and 3.14", ["number", "42", "3", "14"]),
        (True, True, "hello, world!", ["hello", "world"]),
        (True, True, "connections connected connecting", ["connect", "connect", "connect"]),
        (True, True, "", []),
        (True, True, "the and of to", []),
        (False, True, "The Running dogs", ["running", "dogs"]),
        (True, False, "the cats", ["the", "cat"]),
        (False, False, "The Running, 2024!", ["the", "running", "2024"]),
        (False, False, "Café ÜBER naïve", ["café", "über", "naïve"]),
        (False, False, "snake_case CamelCase", ["snake_case", "camelcase"]),
    ],
)
def test_analyzer(stem, stopwords, text, expected):
    assert Analyzer(stem=stem, stopwords=stopwords).tokens(text) == expected


# -- real data ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not (DATA / "scifact" / "corpus.jsonl").is_file(), reason="SciFact data not present")
def test_parity_on_scifact():
    with open(DATA / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in islice(f, 500)]
    with open(DATA / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in islice(f, 10)]
    analyzer = Analyzer()
    token_lists = [analyzer.tokens(f"{r.get('title', '')}\n{r['text']}") for r in records]
    config = BM25Config()
    index = BM25Index.build([r["_id"] for r in records], token_lists, config)
    ref = BM25Okapi(token_lists, k1=config.k1, b=config.b, epsilon=config.epsilon)
    nonzero = 0
    for query in queries:
        tokens = analyzer.tokens(query)
        expected = ref.get_scores(tokens)
        assert np.allclose(index.scores(tokens), expected, rtol=1e-9, atol=1e-9), query
        nonzero += int((expected > 0).sum())
    assert nonzero > 0
