"""BM25 that grows: the IDF computed from document frequencies equals rank_bm25's,
incremental publishes (add, change, remove) score exactly as a from-scratch
BM25Okapi over the live chunks while analysing only new units, merging changes
nothing, folders open memory-mapped, partial top-k selection equals a full sort,
the first format still opens, and a publish killed before the manifest leaves the
previous generation readable, the next publish correct and no garbage behind."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rank_bm25 import BM25Okapi
from scipy import sparse

from lcrag.core.errors import LcragError
from lcrag.core.types import Chunk, Document, Span, Unit
from lcrag.pipeline.config import config_from_dict
from lcrag.pipeline.index.catalog import Catalog
from lcrag.pipeline.index.folder import IndexPaths, read_manifest, remove_stale_bm25
from lcrag.pipeline.ingest import ingestion
from lcrag.retrievers.bm25 import Analyzer, BM25FormatError, BM25Index
from lcrag.retrievers.bm25 import publish as bm25_publish
from lcrag.retrievers.bm25 import state as bm25_state
from lcrag.retrievers.bm25.idf import okapi_idf
from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.merge import merge_segments
from lcrag.retrievers.bm25.publish import AnalysedChunks, MergePolicy, publish_bm25
from lcrag.retrievers.bm25.state import SHARED_STORE, Generation, Settings
from lcrag.retrievers.bm25.stats import corpus_stats
from lcrag.retrievers.bm25.topk import top_k
from lcrag.retrievers.config import BM25Config
from tests.test_bm25 import CORPUS

ANALYZER = Analyzer()
TEXTS = [*CORPUS[:14], "To be or not to be."]  # the parity corpus, and a chunk of stop words only (empty)
QUERIES = ["cat", "cat cat", "garden cat", "interest rates 2024", "quantum qubit superposition", "bread flour yeast",
           "unknownword", "unknownword cat", "the", "sleeping cats in the garden", "volcano lava", "bakery cakes bread bread"]


def reference_scores(token_lists, config, query_tokens) -> np.ndarray:
    """rank_bm25's scores; it cannot build a corpus without any term (it divides by zero), where every score is 0."""
    if not any(token_lists):
        return np.zeros(len(token_lists))
    return BM25Okapi(token_lists, k1=config.k1, b=config.b, epsilon=config.epsilon).get_scores(query_tokens)


# ------------------------------------------------------------------ IDF


IDF_CORPORA = {
    "a term in most documents (negative idf)": [["cat", "mat"], ["cat", "dog"], ["cat"], ["fish"], ["cat", "fish"]],
    "single document": [["alpha", "beta", "alpha"]],
    "duplicate documents": [["x", "y"], ["x", "y"], ["x", "y"], ["z"]],
    "empty chunks among others": [["alpha"], [], ["alpha", "beta", "beta"], [], []],
    "df exactly half (idf 0, not floored)": [["a"], ["a"], ["b"], ["c"]],
    "every idf negative (negative average)": [["a", "b"], ["a", "b"], ["a"]],
    "analysed text": [ANALYZER.tokens(t) for t in TEXTS],
}


@pytest.mark.parametrize("epsilon", [0.25, 0.0, 1.0])
@pytest.mark.parametrize("name", list(IDF_CORPORA))
def test_idf_equals_rank_bm25(name, epsilon):
    token_lists = IDF_CORPORA[name]
    reference = BM25Okapi(token_lists, epsilon=epsilon)
    index = BM25Index.build([f"c{i}" for i in range(len(token_lists))], token_lists, BM25Config(epsilon=epsilon))
    stats = index.generation.stats
    assert stats.terms.to_list() == sorted(reference.idf)
    np.testing.assert_allclose(stats.idf, [reference.idf[t] for t in sorted(reference.idf)], rtol=1e-12, atol=1e-15)
    assert stats.average_idf == pytest.approx(reference.average_idf, rel=1e-12, abs=1e-15)
    assert stats.avgdl == pytest.approx(reference.avgdl) and stats.n_docs == reference.corpus_size
    # straight from document frequencies, as the generation computes them
    df = np.array([sum(t in doc for doc in token_lists) for t in sorted(reference.idf)])
    np.testing.assert_array_equal(stats.df, df)
    np.testing.assert_allclose(okapi_idf(df, len(token_lists), epsilon).idf, stats.idf, rtol=1e-12, atol=1e-15)


def test_negative_scores_are_scored_but_never_returned():
    token_lists = IDF_CORPORA["every idf negative (negative average)"]
    index = BM25Index.build(["a", "b", "c"], token_lists, BM25Config(stem=False, stopwords=False))
    scores = index.scores(["a"])
    np.testing.assert_allclose(scores, BM25Okapi(token_lists).get_scores(["a"]))
    assert (scores < 0).all() and index.search("a", 3) == []


# ------------------------------------------------------ incremental publishes


@dataclass
class FakeCatalog:
    """Units (in catalog order) holding chunks of text; records which units publish analyses."""

    units: dict[str, list[str]] = field(default_factory=dict)
    analysed: list[str] = field(default_factory=list)

    def chunk_ids(self) -> list[str]:
        return [f"{u}#{i}" for u, texts in self.units.items() for i in range(len(texts))]

    def token_lists(self) -> list[list[str]]:
        return [ANALYZER.tokens(t) for texts in self.units.values() for t in texts]

    def analyse(self, unit_ids):
        self.analysed.extend(unit_ids)
        for start in range(0, len(unit_ids), 2):  # several batches
            batch = unit_ids[start : start + 2]
            rows = [(f"{u}#{i}", u, ANALYZER.tokens(t)) for u in batch for i, t in enumerate(self.units[u])]
            yield AnalysedChunks(*zip(*rows)) if rows else AnalysedChunks((), (), ())


def texts_of(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [TEXTS[i] for i in rng.integers(0, len(TEXTS), size=n)]


# (what happens, units added (name -> chunk count), units removed); a changed document is a removed unit and a new one
STEPS = [
    ("first ingestion", {f"u{i}": 1 + i % 3 for i in range(6)}, []),
    ("documents added", {"u6": 2, "u7": 1}, []),
    ("a document removed", {}, ["u1"]),
    ("a document changed", {"u2-v2": 3}, ["u2"]),
    ("nothing changed", {}, []),
    ("a removed unit comes back", {"u1": 2}, []),
    ("added and removed at once", {"u8": 2, "u9": 1}, ["u0", "u3", "u7"]),
    ("many removed (tombstones over 25%)", {}, ["u4", "u5", "u6", "u8"]),
    ("everything removed", {}, ["u1", "u2-v2", "u9"]),
    ("ingested again", {"u10": 3, "u11": 1}, []),
    *[(f"small update {i}", {f"v{i}": 1}, []) for i in range(9)],  # more than 8 segments
]
POLICIES = {
    "never merge": MergePolicy(max_segments=1000, max_deleted_fraction=1.0),
    "always merge": MergePolicy(max_segments=1, max_deleted_fraction=0.0),
    "default": MergePolicy(),
}


def publish_step(root: Path, generation: int, catalog: FakeCatalog, config: BM25Config, policy: MergePolicy):
    """One publish as ``ingestion.publish`` does it, the manifest being the generation number."""
    previous = root / f"bm25-{generation - 1:06d}" if generation > 1 else None
    target = root / f"bm25-{generation:06d}"
    report = publish_bm25(previous, target, list(catalog.units), catalog.analyse, config,
                          expected_rows=len(catalog.chunk_ids()), policy=policy)
    remove_stale_bm25(root, target.name)  # what follows the manifest write
    return target, report


def assert_matches_reference(index: BM25Index, catalog: FakeCatalog, config: BM25Config) -> None:
    assert index.chunk_ids == catalog.chunk_ids()  # rows in catalog order
    # ids of many rows at once (what a search asks for): any order, repeats, across segments and tombstones
    rows = np.random.default_rng(len(index)).integers(0, len(index), size=3 * len(index)) if len(index) else []
    assert index.scorer.chunk_ids_at(rows) == [catalog.chunk_ids()[r] for r in rows]
    with pytest.raises(IndexError):
        index.scorer.chunk_ids_at([len(index)])
    token_lists = catalog.token_lists()
    for query in QUERIES:
        tokens = ANALYZER.tokens(query)
        expected = reference_scores(token_lists, config, tokens)
        np.testing.assert_allclose(index.scores(tokens), expected, rtol=1e-9, atol=1e-12)
        for hit in index.search(query, 5):  # each hit names the chunk whose score it carries
            assert hit.score == pytest.approx(expected[catalog.chunk_ids().index(hit.chunk_id)], rel=1e-9, abs=1e-12)


def assert_no_garbage(root: Path, kept: Path) -> None:
    names, _ = bm25_state.segment_names(kept)
    assert sorted(p.name for p in (root / SHARED_STORE).iterdir()) == sorted(names)
    assert sorted(p.name for p in root.iterdir()) == sorted([kept.name, SHARED_STORE])


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("config", [BM25Config(), BM25Config(k1=0.9, b=0.3, epsilon=0.5)], ids=["default", "k1=0.9"])
def test_incremental_publishes_equal_a_fresh_bm25okapi(tmp_path, policy, config):
    catalog = FakeCatalog()
    segments_seen, merges = [], []
    index = None
    for generation, (what, added, removed) in enumerate(STEPS, start=1):
        for unit in removed:
            del catalog.units[unit]
        for unit, n in added.items():
            catalog.units[unit] = texts_of(generation * 100 + len(unit), n)
        removed_rows = sum(1 for c in index.chunk_ids if c.split("#")[0] in removed) if index else 0
        catalog.analysed.clear()
        target, report = publish_step(tmp_path, generation, catalog, config, POLICIES[policy])

        assert catalog.analysed == list(added), what  # only the new units are analysed, in catalog order
        assert (report.rows == len(catalog.chunk_ids()) and not report.rebuilt) or generation == 1, what
        assert report.tombstoned_rows == removed_rows, what
        index = BM25Index.load(target)
        assert_matches_reference(index, catalog, config)
        assert_no_garbage(tmp_path, target)
        segments_seen.append(len(index.generation.parts))
        merges.append(report.merged)
    if policy == "never merge":
        assert max(segments_seen) > 8 and not any(merges)
    elif policy == "always merge":
        assert max(segments_seen) == 1
    else:
        assert max(segments_seen) <= 8
        merged_at = {STEPS[i][0] for i, merged in enumerate(merges) if merged}
        assert "many removed (tombstones over 25%)" in merged_at and "small update 7" in merged_at


def test_deleted_rows_and_segments_are_recorded_not_rewritten(tmp_path):
    catalog = FakeCatalog({f"u{i}": texts_of(i, 2) for i in range(8)})
    first, _ = publish_step(tmp_path, 1, catalog, BM25Config(), MergePolicy())
    (segment,) = bm25_state.segment_names(first)[0]
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / SHARED_STORE / segment).iterdir()}
    del catalog.units["u3"]
    catalog.units["u9"] = texts_of(9, 1)
    second, report = publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    assert report.tombstoned_rows == 2 and report.analysed_units == 1 and not report.merged
    assert bm25_state.segment_names(second)[0][0] == segment  # reused as it is
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / SHARED_STORE / segment).iterdir()} == files
    assert np.load(second / f"deleted-{segment}.npy").tolist() == [6, 7]


def test_a_mismatch_with_the_catalog_rebuilds(tmp_path):
    catalog = FakeCatalog({f"u{i}": texts_of(i, 2) for i in range(4)})
    publish_step(tmp_path, 1, catalog, BM25Config(), MergePolicy())
    catalog.units["u2"] = texts_of(99, 3)  # the same unit id with other chunks: only the row count tells
    catalog.analysed.clear()
    target, report = publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    assert report.rebuilt and catalog.analysed == list(catalog.units)
    assert_matches_reference(BM25Index.load(target), catalog, BM25Config())


# ------------------------------------------------------------------ merge


def live_parts(tmp_path: Path) -> tuple[LiveSegment, ...]:
    catalog = FakeCatalog()
    for generation, (_, added, removed) in enumerate(STEPS[:8], start=1):
        for unit in removed:
            del catalog.units[unit]
        for unit, n in added.items():
            catalog.units[unit] = texts_of(generation * 100 + len(unit), n)
        target, _ = publish_step(tmp_path, generation, catalog, BM25Config(), POLICIES["never merge"])
    return BM25Index.load(target).generation.parts


def test_merged_equals_unmerged(tmp_path):
    parts = live_parts(tmp_path)
    assert len(parts) > 2 and any(len(p.deleted) for p in parts)
    settings = Settings.from_config(BM25Config())
    unmerged = BM25Index.from_generation(Generation(settings, parts, corpus_stats(parts, 0.25), shared=False))
    merged_part = (LiveSegment("merged", merge_segments(parts)),)
    merged = BM25Index.from_generation(Generation(settings, merged_part, corpus_stats(merged_part, 0.25), shared=False))
    segment = merged_part[0].segment
    assert segment.n_rows == len(unmerged) and len(segment.units) == len({c.split("#")[0] for c in unmerged.chunk_ids})
    for t in range(len(segment.terms)):  # rows ascending within every term
        rows = segment.rows[segment.term_ptr[t] : segment.term_ptr[t + 1]]
        assert len(rows) and (np.diff(rows) > 0).all()
    assert merged.chunk_ids == unmerged.chunk_ids and merged.terms == unmerged.terms
    np.testing.assert_array_equal(merged.generation.stats.idf, unmerged.generation.stats.idf)
    for query in QUERIES:
        tokens = ANALYZER.tokens(query)
        np.testing.assert_array_equal(merged.scores(tokens), unmerged.scores(tokens))
        assert merged.search(query, 7) == unmerged.search(query, 7)
    merged.save(tmp_path / "saved")
    assert BM25Index.load(tmp_path / "saved").search("garden cat", 5) == unmerged.search("garden cat", 5)


# -------------------------------------------------------------- loading


def test_load_memory_maps_and_parses_no_id(tmp_path):
    catalog = FakeCatalog({f"u{i}": texts_of(i, 3) for i in range(5)})
    publish_step(tmp_path, 1, catalog, BM25Config(), MergePolicy())
    del catalog.units["u1"]
    target, _ = publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    index = BM25Index.load(target)
    for part in index.generation.parts:
        seg = part.segment
        for array in (seg.doc_len, seg.term_ptr, seg.rows, seg.tf, seg.row_unit, seg.terms.blob, seg.terms.offsets,
                      seg.chunk_ids.blob, seg.chunk_ids.offsets):
            assert isinstance(array, np.memmap)
    stats = index.generation.stats
    assert all(isinstance(a, np.memmap) for a in (stats.idf, stats.df, stats.terms.blob, stats.terms.offsets))
    assert index._chunk_ids is None  # ids are decoded only when asked for
    assert [h.chunk_id for h in index.search("garden cat", 3)] and index._chunk_ids is None
    assert_matches_reference(index, catalog, BM25Config())


@pytest.mark.parametrize("damage", ["no folder", "segment missing", "state unreadable"])
def test_unreadable_folder_names_the_fix(tmp_path, damage):
    catalog = FakeCatalog({"u0": texts_of(0, 2)})
    target, _ = publish_step(tmp_path, 1, catalog, BM25Config(), MergePolicy())
    if damage == "no folder":
        target = tmp_path / "bm25-000009"
    elif damage == "segment missing":
        for segment in (tmp_path / SHARED_STORE).iterdir():
            for f in segment.iterdir():
                f.unlink()
            segment.rmdir()
    else:
        (target / "state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BM25FormatError, match="lcrag ingest") as caught:
        BM25Index.load(target)
    assert isinstance(caught.value, LcragError)


def write_first_format(folder: Path, chunk_ids, token_lists, config: BM25Config) -> None:
    """A BM25 folder as lcrag wrote it before segments: precomputed weights."""
    ref = BM25Okapi(token_lists, k1=config.k1, b=config.b, epsilon=config.epsilon)
    vocabulary = {t: i for i, t in enumerate(sorted(ref.idf))}
    rows, cols, data = [], [], []
    for row, tokens in enumerate(token_lists):
        for term in set(tokens):
            tf, dl = tokens.count(term), len(tokens)
            rows.append(row)
            cols.append(vocabulary[term])
            data.append(ref.idf[term] * tf * (config.k1 + 1) / (tf + config.k1 * (1 - config.b + config.b * dl / ref.avgdl)))
    folder.mkdir(parents=True)
    weights = sparse.csc_matrix((data, (rows, cols)), shape=(len(chunk_ids), len(vocabulary)))
    sparse.save_npz(folder / "weights.npz", weights, compressed=False)
    meta = {"chunk_ids": list(chunk_ids), "vocabulary": vocabulary, "stem": config.stem, "stopwords": config.stopwords}
    (folder / "index.json").write_text(json.dumps(meta), encoding="utf-8")


def test_first_format_still_opens_and_the_next_publish_rewrites_it(tmp_path):
    catalog = FakeCatalog({f"u{i}": texts_of(i, 2) for i in range(5)})
    old = tmp_path / "bm25-000001"
    write_first_format(old, catalog.chunk_ids(), catalog.token_lists(), BM25Config())
    index = BM25Index.load(old)
    assert_matches_reference(index, catalog, BM25Config())
    assert index.search("garden cat", 3) and index.generation is None
    with pytest.raises(BM25FormatError, match="lcrag ingest"):
        index.save(tmp_path / "copy")
    assert bm25_publish.is_published(old)

    catalog.units["u5"] = texts_of(5, 1)
    target, report = publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    assert report.rebuilt and catalog.analysed == list(catalog.units)  # analysed in full, once
    assert not old.exists()
    assert_matches_reference(BM25Index.load(target), catalog, BM25Config())
    assert_no_garbage(tmp_path, target)


# ---------------------------------------------------------------- top k


@pytest.mark.parametrize("seed, n, levels", [(0, 50, 3), (1, 200, 5), (2, 1000, 20), (3, 30, 1), (4, 0, 2), (5, 10, 100)])
def test_partial_top_k_equals_a_full_sort(seed, n, levels):
    rng = np.random.default_rng(seed)
    scores = rng.integers(-1, levels, size=n).astype(np.float64) / 3  # many ties, zeros and negatives
    full = [i for i in np.argsort(-scores, kind="stable") if scores[i] > 0]
    for k in [0, 1, 2, 5, 17, n, n + 3]:
        assert top_k(scores, k).tolist() == full[: max(k, 0)], k


def test_search_keeps_the_tie_rule_across_segments(tmp_path):
    catalog = FakeCatalog({"a": ["cat"], "b": ["dog"]})
    publish_step(tmp_path, 1, catalog, BM25Config(), MergePolicy())
    catalog.units |= {"c": ["cat"], "d": ["bird"], "e": ["cat"], "f": ["fish"], "g": ["owl"]}
    target, _ = publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    index = BM25Index.load(target)
    assert len(index.generation.parts) == 2
    hits = index.search("cat", 10)
    assert [h.chunk_id for h in hits] == ["a#0", "c#0", "e#0"] and hits[0].score == hits[2].score > 0
    assert [h.chunk_id for h in index.search("cat", 2)] == ["a#0", "c#0"]


# ------------------------------------------------------ interrupted publish


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch it)."""


def kill_after(monkeypatch, module, name: str, before: bool = False) -> None:
    real = getattr(module, name)

    def dying(*args, **kwargs):
        if not before:
            real(*args, **kwargs)
        raise Killed(name)

    monkeypatch.setattr(module, name, dying)


KILL_POINTS = {
    "new segment written": (bm25_publish, "write_segment", False),
    "generation being staged": (bm25_state, "move_into_place", True),
    "generation written, no manifest": (bm25_publish, "write_generation", False),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_interrupted_publish_keeps_the_previous_generation_and_the_next_is_correct(tmp_path, monkeypatch, point):
    catalog = FakeCatalog({f"u{i}": texts_of(i, 2) for i in range(6)})
    previous, _ = publish_step(tmp_path, 1, catalog, BM25Config(), MergePolicy())
    before = FakeCatalog(dict(catalog.units))
    del catalog.units["u2"]
    catalog.units["u6"] = texts_of(6, 3)
    with monkeypatch.context() as patch:
        kill_after(patch, *KILL_POINTS[point])
        with pytest.raises(Killed):
            publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    assert_matches_reference(BM25Index.load(previous), before, BM25Config())  # the manifest still names it
    orphans = {p.name for p in (tmp_path / SHARED_STORE).iterdir()} - set(bm25_state.segment_names(previous)[0])
    assert orphans  # the killed publish did leave something behind

    catalog.analysed.clear()
    target, report = publish_step(tmp_path, 2, catalog, BM25Config(), MergePolicy())
    assert catalog.analysed == ["u6"] and report.tombstoned_rows == 2
    assert_matches_reference(BM25Index.load(target), catalog, BM25Config())
    assert_no_garbage(tmp_path, target)


def add_document(catalog: Catalog, doc_id: str, sentences: list[str]) -> str:
    """A document of one unit whose chunks are its sentences, stored as ``embed_pending`` leaves it."""
    text = " ".join(sentences)
    doc = Document(doc_id, text, title=f"Title {doc_id}")
    unit = Unit(f"unit-{doc.content_hash[:12]}", (Span(doc_id, 0, len(text)),), n_tokens=len(text.split()))
    catalog.put_documents([doc], "src")
    catalog.add_pending_units([unit], "src", {doc_id: doc.content_hash})
    chunks, start = [], 0
    for position, sentence in enumerate(sentences):
        chunks.append(Chunk(f"{unit.unit_id}-{position}", unit.unit_id, doc_id, start, start + len(sentence), position))
        start += len(sentence) + 1
    catalog.complete_units(chunks, [unit.unit_id])
    return unit.unit_id


class NoVectors:
    def unit_ids(self) -> set[str]:
        return set()

    def delete_units(self, unit_ids) -> None:
        pass


def test_ingestion_publish_interrupted_before_the_manifest(tmp_path, monkeypatch):
    """``publish`` itself: a run killed before its manifest leaves the previous index
    searchable; the rerun analyses only the new chunks, equals a fresh BM25Okapi over
    the catalog and leaves no folder the manifest does not use."""
    root = tmp_path / "index"
    root.mkdir()
    config = config_from_dict({})
    catalog = Catalog(IndexPaths(root).catalog)
    writer = SimpleNamespace(root=root, paths=IndexPaths(root), catalog=catalog, config=config,
                             encoder=SimpleNamespace(dim=8), resumed=False, vectors=NoVectors())
    analysed = []
    real_tokens = ingestion.bm25_tokens
    monkeypatch.setattr(ingestion, "bm25_tokens", lambda *a: analysed.append(a[2:4]) or real_tokens(*a))
    try:
        units = {d: add_document(catalog, d, texts_of(i, 3)) for i, d in enumerate(["d0", "d1", "d2"])}
        first = ingestion.publish(writer, changed=True)
        assert len(analysed) == 9
        catalog.delete_units([units.pop("d1")])
        catalog.delete_documents(["d1"])
        units["d3"] = add_document(catalog, "d3", texts_of(7, 2))
        with monkeypatch.context() as patch:
            kill_after(patch, ingestion, "write_manifest", before=True)
            with pytest.raises(Killed):
                ingestion.publish(writer, changed=True)
        assert read_manifest(root) == first
        assert (root / "bm25-000002").is_dir() and len(list((root / SHARED_STORE).iterdir())) == 2  # left behind
        assert BM25Index.load(IndexPaths(root).bm25(first)).search("cat", 3)  # still readable

        analysed.clear()
        writer.resumed = True  # the marker a killed run leaves
        manifest = ingestion.publish(writer, changed=False)
        assert manifest.generation == first.generation + 1 and manifest.chunks == catalog.count("chunks") == 8
        assert len(analysed) == 2  # only d3's chunks
        chunks = list(catalog.iter_chunks())
        docs = catalog.documents(c.doc_id for c in chunks)
        token_lists = [real_tokens(ANALYZER, docs[c.doc_id], c.start, c.end, True) for c in chunks]
        index = BM25Index.load(IndexPaths(root).bm25(manifest))
        assert index.chunk_ids == [c.chunk_id for c in chunks]
        for query in QUERIES:
            tokens = ANALYZER.tokens(query)
            np.testing.assert_allclose(index.scores(tokens), reference_scores(token_lists, config.bm25, tokens), rtol=1e-9)
        kept = IndexPaths(root).bm25(manifest)
        names, _ = bm25_state.segment_names(kept)
        assert sorted(p.name for p in (root / SHARED_STORE).iterdir()) == sorted(names)
        assert sorted(p.name for p in root.glob("bm25-*")) == sorted([kept.name, SHARED_STORE])

        writer.resumed = False
        assert ingestion.publish(writer, changed=False) == manifest  # nothing to do
    finally:
        catalog.close()
