"""Retrieval units: limits, coverage, grouping, neighbour packing and stable ids.
Token offsets are whitespace tokens; title cost is the title's word count + 1."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import numpy as np
import pytest

from lcrag.core.types import Document, Section, Span
from lcrag.pipeline.ingest.sentences import count_tokens, trim
from lcrag.pipeline.ingest.units import (
    Piece,
    build_units,
    group_key,
    pack_by_neighbours,
    pack_in_order,
    tfidf_neighbours,
    title_cost,
)
from tests.helpers import paragraphs, ws_offsets


def paragraph_sections(text: str) -> tuple[Section, ...]:
    return tuple(Section(start, end) for start, end in paragraphs(text))


def make_doc(doc_id: str, n_words: int, title: str = "", source: str = "", metadata=(), rnd: random.Random | None = None) -> Document:
    """A document of ``n_words`` distinct words, sentences of 5 words, paragraphs of 3 sentences."""
    rnd = rnd or random.Random(doc_id)
    parts = []
    for i in range(n_words):
        word = f"{doc_id}w{i}"
        if i % 5 == 4 or i == n_words - 1:
            word += "."
        parts.append(word)
        if i < n_words - 1:
            parts.append("\n\n" if i % 15 == 14 else rnd.choice([" ", " ", "  "]))
    text = " " + "".join(parts) + "\n"
    return Document(doc_id, text, title=title, source=source, sections=paragraph_sections(text), metadata=tuple(metadata))


def run(docs, limit, group_by, **kwargs):
    offsets = [ws_offsets(d.text) for d in docs]
    title_tokens = [len(d.title.split()) for d in docs]
    return build_units(docs, offsets, title_tokens, limit, group_by, **kwargs)


def docs_by_id(docs):
    return {d.doc_id: d for d in docs}


def nonspace(text: str, start: int = 0, end: int | None = None) -> str:
    return "".join(text[start:end].split())


def random_corpus(seed: int, n: int = 14) -> list[Document]:
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        title = " ".join(f"t{j}" for j in range(rnd.choice([0, 0, 1, 3])))
        docs.append(
            make_doc(
                f"d{i}",
                rnd.choice([1, 4, 9, 20, 35, 80]),
                title=title,
                source=rnd.choice(["a/x.txt", "a/y.txt", "b/z.txt"]),
                metadata=[("lang", rnd.choice(["en", "fr"]))],
                rnd=rnd,
            )
        )
    return docs


def scripted_neighbours(texts, k):
    """Deterministic fake: each text's neighbours are the following texts, nearest first."""
    return [list(range(i + 1, len(texts)))[:k] for i in range(len(texts))]


GROUPINGS = ["none", "title", "source", "directory", "meta:lang", "neighbours"]


# -- small pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("title_tokens, cost", [(0, 0), (1, 2), (5, 6)])
def test_title_cost(title_tokens, cost):
    assert title_cost(title_tokens) == cost


@pytest.mark.parametrize(
    "group_by, expected",
    [
        ("source", "dir/sub/file.md"),
        ("directory", "dir/sub"),
        ("title", "My Title"),
        ("meta:lang", "en"),
        ("meta:missing", ""),
        ("none", ""),
        ("neighbours", ""),
    ],
)
def test_group_key(group_by, expected):
    doc = Document("x", "text", title="My Title", source="dir/sub/file.md", metadata=(("lang", "en"),))
    assert group_key(doc, group_by) == expected


def pieces_of(sizes):
    return [Piece(i, Span(f"d{i}", 0, 1), n, True) for i, n in enumerate(sizes)]


@pytest.mark.parametrize(
    "sizes, limit, expected",
    [
        ([10, 10, 10], 30, [[0, 1, 2]]),
        ([10, 10, 10], 25, [[0, 1], [2]]),
        ([10, 20, 5, 5], 25, [[0], [1, 2], [3]]),
        ([30], 10, [[0]]),  # an oversized piece still gets its own unit
        ([], 10, []),
    ],
)
def test_pack_in_order(sizes, limit, expected):
    groups = pack_in_order(pieces_of(sizes), limit)
    assert [[p.doc_index for p in g] for g in groups] == expected


@pytest.mark.parametrize(
    "sizes, neighbours, limit, expected",
    [
        # seed 0 takes 3 then 1 (30 tokens); 4 would make 40 > 32
        ([10, 10, 10, 10, 10], [[3, 1, 4], [0], [4, 1], [0], [2]], 32, [[0, 3, 1], [2, 4]]),
        # a neighbour that does not fit is skipped, a later smaller one is still taken
        ([10, 25, 5, 10], [[1, 2, 3], [], [], []], 30, [[0, 2, 3], [1]]),
        # neighbours already taken by an earlier unit are skipped
        ([5, 5, 5], [[2], [2, 0], [0, 1]], 100, [[0, 2], [1]]),
        # no neighbours: one piece per unit
        ([5, 5], [[], []], 100, [[0], [1]]),
        ([], [], 10, []),
    ],
)
def test_pack_by_neighbours(sizes, neighbours, limit, expected):
    groups = pack_by_neighbours(pieces_of(sizes), neighbours, limit)
    assert [[p.doc_index for p in g] for g in groups] == expected
    for group in groups:
        assert sum(p.n_tokens for p in group) <= max(limit, group[0].n_tokens)


# -- build_units: limits and coverage ----------------------------------------------------------------


@pytest.mark.parametrize("group_by", GROUPINGS)
@pytest.mark.parametrize("seed, limit", [(0, 32), (1, 40), (2, 64), (3, 200)])
def test_units_respect_limit_and_cover_every_document(group_by, seed, limit):
    docs = random_corpus(seed)
    by_id = docs_by_id(docs)
    units = run(docs, limit, group_by, neighbours_fn=scripted_neighbours)
    placements = defaultdict(list)  # doc id -> [(unit, span)]
    for unit in units:
        expected = 0
        for span in unit.spans:
            doc = by_id[span.doc_id]
            expected += count_tokens(ws_offsets(doc.text), span.start, span.end) + title_cost(len(doc.title.split()))
            placements[span.doc_id].append((unit, span))
        assert unit.n_tokens == expected
        assert unit.n_tokens <= limit
    assert set(placements) == set(by_id)
    for doc_id, placed in placements.items():
        doc = by_id[doc_id]
        spans = [span for _, span in placed]
        if len(placed) == 1 and (spans[0].start, spans[0].end) == trim(doc.text, 0, len(doc.text)):
            continue  # placed whole, exactly once
        # cut: every piece alone in its unit, in order, tiling the non-space text
        assert all(len(unit.spans) == 1 for unit, _ in placed)
        assert spans == sorted(spans, key=lambda s: s.start)
        for a, b in itertools.pairwise(spans):
            assert a.end <= b.start
            assert doc.text[a.end : b.start].strip() == ""
        assert "".join(nonspace(doc.text, s.start, s.end) for s in spans) == nonspace(doc.text)


def test_long_document_is_cut_into_single_span_units():
    doc = make_doc("long", 100, title="A Title")  # 100 tokens, title cost 3
    short = make_doc("short", 5)
    units = run([doc, short], 32, "none")
    long_units = [u for u in units if u.doc_ids == ("long",)]
    assert len(long_units) >= 4  # 100 tokens in pieces of at most 32 - 3 = 29
    assert all(len(u.spans) == 1 for u in long_units)
    starts = [u.spans[0].start for u in long_units]
    assert starts == sorted(starts)
    # units come out in document order: the long document's pieces, then the short one
    assert [u.doc_ids for u in units] == [("long",)] * len(long_units) + [("short",)]
    # pieces were cut at paragraph edges (15-word paragraphs fit 29 tokens; sentence/paragraph ends carry a period)
    for unit in long_units:
        span = unit.spans[0]
        assert doc.text[span.start : span.end].endswith(".")
        assert unit.n_tokens == count_tokens(ws_offsets(doc.text), span.start, span.end) + 3


def test_span_offsets_slice_the_right_text():
    docs = [make_doc(f"s{i}", n) for i, n in enumerate([3, 12, 50, 7])]
    by_id = docs_by_id(docs)
    for unit in run(docs, 32, "title"):
        for span in unit.spans:
            piece = by_id[span.doc_id].text[span.start : span.end]
            assert piece == piece.strip() and piece
            words = [w.rstrip(".") for w in piece.split()]
            first = int(words[0].split("w")[1])
            assert words == [f"{span.doc_id}w{i}" for i in range(first, first + len(words))]


def test_empty_document_gets_no_unit():
    docs = [make_doc("a", 3), Document("blank", "   \n ")]
    assert [u.doc_ids for u in run(docs, 32, "none")] == [("a",)]


# -- grouping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", ["title", "source", "directory", "meta:lang"])
@pytest.mark.parametrize("seed", [0, 5])
def test_keyed_grouping_only_groups_documents_sharing_the_key(group_by, seed):
    docs = random_corpus(seed, n=20)
    by_id = docs_by_id(docs)
    units = run(docs, 64, group_by)
    for unit in units:
        keys = {group_key(by_id[d], group_by) for d in unit.doc_ids}
        assert keys == {unit.group_key}
    # whole documents sharing a key that fit together all share one unit
    wholes = defaultdict(list)
    for unit in units:
        for span in unit.spans:
            doc = by_id[span.doc_id]
            if (span.start, span.end) == trim(doc.text, 0, len(doc.text)):
                cost = count_tokens(ws_offsets(doc.text), span.start, span.end) + title_cost(len(doc.title.split()))
                wholes[group_key(doc, group_by)].append((doc.doc_id, cost, unit.unit_id))
    assert wholes
    for key, members in wholes.items():
        if sum(cost for _, cost, _ in members) <= 64:
            assert len({unit_id for _, _, unit_id in members}) == 1, key


def test_keyed_grouping_packs_same_key_documents_in_order():
    docs = [
        make_doc("a1", 5, title="A"),  # 5 + 2
        make_doc("b1", 5, title="B"),
        make_doc("a2", 5, title="A"),
        make_doc("a3", 20, title="A"),  # 20 + 2: would overflow 32 with a1 + a2 (14)
        make_doc("b2", 5, title="B"),
    ]
    units = run(docs, 32, "title")
    assert [u.doc_ids for u in units] == [("a1", "a2"), ("b1", "b2"), ("a3",)]
    assert [u.group_key for u in units] == ["A", "B", "A"]
    assert [u.n_tokens for u in units] == [14, 14, 22]


@pytest.mark.parametrize(
    "group_by, sources, expected",
    [
        ("source", ["x/1.md", "x/2.md", "x/1.md"], [("d0", "d2"), ("d1",)]),
        ("directory", ["x/1.md", "y/2.md", "x/3.md"], [("d0", "d2"), ("d1",)]),
        ("directory", ["x/1.md", "x/2.md", "x/3.md"], [("d0", "d1", "d2")]),
    ],
)
def test_source_and_directory_grouping(group_by, sources, expected):
    docs = [make_doc(f"d{i}", 4, source=s) for i, s in enumerate(sources)]
    assert [u.doc_ids for u in run(docs, 100, group_by)] == expected


def test_meta_grouping():
    docs = [make_doc(f"d{i}", 4, metadata=[("lang", lang)]) for i, lang in enumerate(["en", "fr", "en", "fr", "de"])]
    units = run(docs, 100, "meta:lang")
    assert [(u.doc_ids, u.group_key) for u in units] == [(("d0", "d2"), "en"), (("d1", "d3"), "fr"), (("d4",), "de")]


def test_none_gives_one_unit_per_document():
    docs = [make_doc(f"d{i}", 4, title="same", source="same") for i in range(6)]
    units = run(docs, 1000, "none")
    assert [u.doc_ids for u in units] == [(d.doc_id,) for d in docs]
    assert all(u.group_key == "" for u in units)


def test_neighbours_grouping_follows_scripted_neighbours():
    docs = [make_doc(f"d{i}", 8, title=f"T{i}") for i in range(5)]  # 8 + 2 = 10 tokens each
    docs.insert(2, make_doc("big", 60))  # cut into pieces: not offered to neighbours_fn
    calls = []

    def fake(texts, k):
        calls.append((list(texts), k))
        # indices into the whole documents d0..d4
        return [[3, 1, 4], [0], [4, 1], [0], [2]]

    units = run(docs, 32, "neighbours", neighbours_k=7, neighbours_fn=fake)
    assert len(calls) == 1
    texts, k = calls[0]
    assert k == 7
    assert texts == [f"T{i}\n{docs_by_id(docs)[f'd{i}'].text}" for i in range(5)]
    grouped = [u.doc_ids for u in units if "big" not in u.doc_ids]
    assert grouped == [("d0", "d3", "d1"), ("d2", "d4")]
    assert all(u.n_tokens <= 32 for u in units)


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", GROUPINGS)
def test_unit_ids_are_deterministic(group_by):
    first = run(random_corpus(3), 48, group_by, neighbours_fn=tfidf_neighbours)
    second = run(random_corpus(3), 48, group_by, neighbours_fn=tfidf_neighbours)
    assert [u.unit_id for u in first] == [u.unit_id for u in second]
    assert first == second
    assert len({u.unit_id for u in first}) == len(first)


@pytest.mark.parametrize("group_by", ["none", "title"])
def test_changing_one_document_changes_only_its_unit_id(group_by):
    docs = [make_doc(f"d{i}", 6, title=["A", "B", "C"][i % 3]) for i in range(6)]
    before = run(docs, 64, group_by)
    changed = list(docs)
    new_text = docs[4].text.replace("d4w2", "CHANGED")
    changed[4] = Document("d4", new_text, title=docs[4].title, sections=paragraph_sections(new_text))
    after = run(changed, 64, group_by)
    assert [u.doc_ids for u in before] == [u.doc_ids for u in after]
    for b, a in zip(before, after):
        if "d4" in b.doc_ids:
            assert a.unit_id != b.unit_id
        else:
            assert a.unit_id == b.unit_id


def test_title_change_changes_unit_id():
    doc = make_doc("d", 6, title="Old")
    renamed = Document("d", doc.text, title="New")
    assert run([doc], 64, "none")[0].unit_id != run([renamed], 64, "none")[0].unit_id


# -- tfidf_neighbours --------------------------------------------------------------------------------


def test_tfidf_neighbours_puts_near_duplicate_first():
    texts = [
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "Quantum chromodynamics describes the strong interaction of quarks and gluons.",
        "Stock markets fell sharply as investors worried about inflation.",
        "The quick brown fox jumped over a lazy dog by the river bank today.",
        "A recipe for sourdough bread needs flour, water, salt and starter.",
    ]
    result = tfidf_neighbours(texts, k=3)
    assert len(result) == len(texts)
    assert result[0][0] == 3
    assert result[3][0] == 0
    for i, row in enumerate(result):
        assert i not in row
        assert len(row) <= 3
        assert len(set(row)) == len(row)


def test_tfidf_neighbours_is_ordered_by_similarity_and_blocks_agree():
    rnd = random.Random(0)
    vocab = [f"term{i}" for i in range(30)]
    texts = [" ".join(rnd.choice(vocab) for _ in range(12)) for _ in range(25)]
    whole = tfidf_neighbours(texts, k=5)
    blocked = tfidf_neighbours(texts, k=5, block=4)
    assert whole == blocked

    from sklearn.feature_extraction.text import TfidfVectorizer

    m = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    sims = (m @ m.T).toarray()
    for i, row in enumerate(whole):
        values = [sims[i, j] for j in row]
        assert values == sorted(values, reverse=True)
        others = sorted((sims[i, j] for j in range(len(texts)) if j != i), reverse=True)
        assert np.allclose(values, others[: len(values)])


@pytest.mark.parametrize("texts", [[], ["only one"], ["the and of", "to be or not"]])
def test_tfidf_neighbours_degenerate_inputs(texts):
    assert tfidf_neighbours(texts, k=3) == [[] for _ in texts]


def test_long_title_never_pushes_a_unit_past_the_limit():
    title = " ".join(f"t{i}" for i in range(20))  # title cost 21; limit 32 leaves 11 tokens of text
    doc = make_doc("d", 40, title=title)
    units = run([doc], 32, "none")
    assert all(u.n_tokens <= 32 for u in units)
