"""A segment: the term frequencies of some chunks, written once and never changed.

Segments hold what analysis produced and nothing that depends on the rest of the
corpus (no IDF, no average length), so adding chunks writes one new segment and
leaves the others as they are. Postings are CSC-style: the rows (chunks) holding
term ``t`` are ``rows[term_ptr[t]:term_ptr[t + 1]]``, ascending, with their term
frequencies in ``tf``; terms are sorted so a query term is found by binary search.

    SEGMENT/segment.json                 counts, written last
    SEGMENT/doc_len.npy                  int32, tokens per row (chunk)
    SEGMENT/term_ptr.npy                 int64, terms + 1
    SEGMENT/rows.npy, SEGMENT/tf.npy     int32, one per (term, row) posting
    SEGMENT/terms.{blob,offsets}.npy     the sorted terms
    SEGMENT/chunk_ids.{blob,offsets}.npy chunk id of each row
    SEGMENT/units.{blob,offsets}.npy     the units of the segment; row_unit.npy (int32) says which per row
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from lcrag.retrievers.bm25.errors import BM25FormatError, rebuild_hint
from lcrag.retrievers.bm25.files import load_array, load_json, move_into_place, save_array, save_json, staging_folder
from lcrag.retrievers.bm25.strings import StringTable

SEGMENT_FORMAT = 1


@dataclass(frozen=True, eq=False)
class Segment:
    doc_len: np.ndarray
    term_ptr: np.ndarray
    rows: np.ndarray
    tf: np.ndarray
    terms: StringTable
    chunk_ids: StringTable
    units: StringTable
    row_unit: np.ndarray

    def __post_init__(self) -> None:
        n_rows, n_terms = len(self.doc_len), len(self.terms)
        consistent = (
            len(self.term_ptr) == n_terms + 1
            and len(self.rows) == len(self.tf) == int(self.term_ptr[-1])
            and len(self.chunk_ids) == len(self.row_unit) == n_rows
        )
        if not consistent:
            raise BM25FormatError(f"inconsistent BM25 segment: {n_rows} rows, {n_terms} terms, {len(self.rows)} postings")

    @property
    def n_rows(self) -> int:
        return len(self.doc_len)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, term frequencies) of TERM, or None when no row has it."""
        t = self.terms.find(term)
        if t < 0:
            return None
        start, end = int(self.term_ptr[t]), int(self.term_ptr[t + 1])
        return self.rows[start:end], self.tf[start:end]

    def posting_terms(self) -> np.ndarray:
        """The term of every posting (expanded from ``term_ptr``)."""
        return np.repeat(np.arange(len(self.terms), dtype=np.int64), np.diff(self.term_ptr))


class SegmentBuilder:
    """Accumulates analysed chunks batch by batch, so a large build never holds
    every token list at once: each batch is reduced to (row, term, tf) triples."""

    def __init__(self) -> None:
        self._vocabulary: defaultdict[str, int] = defaultdict()
        self._vocabulary.default_factory = self._vocabulary.__len__  # a new term gets the next id
        self._pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._doc_len: list[np.ndarray] = []
        self._chunk_ids: list[str] = []
        self._units: dict[str, int] = {}
        self._row_unit: list[int] = []

    @property
    def n_rows(self) -> int:
        return len(self._chunk_ids)

    def add(self, chunk_ids: Sequence[str], unit_ids: Sequence[str], token_lists: Sequence[Sequence[str]]) -> None:
        if not len(chunk_ids) == len(unit_ids) == len(token_lists):
            raise ValueError(f"{len(chunk_ids)} chunk ids, {len(unit_ids)} unit ids, {len(token_lists)} token lists")
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        flat = chain.from_iterable(token_lists)
        ids = np.fromiter(map(self._vocabulary.__getitem__, flat), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(self.n_rows, self.n_rows + len(chunk_ids), dtype=np.int64), lengths)
        keys, tf = np.unique((rows << 32) | ids, return_counts=True)  # sorted by row, then term
        self._pieces.append((keys >> 32, keys & 0xFFFFFFFF, tf))
        self._doc_len.append(lengths)
        self._chunk_ids.extend(chunk_ids)
        self._row_unit.extend(self._units.setdefault(u, len(self._units)) for u in unit_ids)

    def finish(self) -> Segment:
        terms = list(self._vocabulary)  # in id order
        order = sorted(range(len(terms)), key=terms.__getitem__)
        rank = np.empty(len(terms), dtype=np.int64)
        rank[order] = np.arange(len(terms), dtype=np.int64)
        if self._pieces:
            rows, ids, tf = (np.concatenate(column) for column in zip(*self._pieces))
        else:
            rows = ids = tf = np.zeros(0, dtype=np.int64)
        term = rank[ids]
        by_term = np.argsort(term, kind="stable")  # rows stay ascending within a term
        term_ptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term, minlength=len(terms)), out=term_ptr[1:])
        return Segment(
            doc_len=np.concatenate(self._doc_len).astype(np.int32) if self._doc_len else np.zeros(0, dtype=np.int32),
            term_ptr=term_ptr,
            rows=rows[by_term].astype(np.int32),
            tf=tf[by_term].astype(np.int32),
            terms=StringTable.from_strings(terms[i] for i in order),
            chunk_ids=StringTable.from_strings(self._chunk_ids),
            units=StringTable.from_strings(self._units),
            row_unit=np.asarray(self._row_unit, dtype=np.int32),
        )


def build_segment(chunk_ids: Sequence[str], unit_ids: Sequence[str], token_lists: Sequence[Sequence[str]]) -> Segment:
    builder = SegmentBuilder()
    builder.add(chunk_ids, unit_ids, token_lists)
    return builder.finish()


def write_segment(segment: Segment, folder: Path) -> None:
    """Write SEGMENT as FOLDER, all at once (staged, then renamed)."""
    staging = staging_folder(folder)
    for name in ("doc_len", "term_ptr", "rows", "tf", "row_unit"):
        save_array(staging, name, getattr(segment, name))
    for name in ("terms", "chunk_ids", "units"):
        getattr(segment, name).save(staging, name)
    save_json(staging, "segment.json", {"format": SEGMENT_FORMAT, "rows": segment.n_rows, "terms": len(segment.terms),
                                        "postings": len(segment.rows)})
    move_into_place(staging, folder)


def read_segment(folder: Path) -> Segment:
    """A written segment, memory-mapped."""
    meta = load_json(folder, "segment.json")
    if meta.get("format") != SEGMENT_FORMAT:
        raise BM25FormatError(f"{rebuild_hint(folder)} (segment format {meta.get('format')}, this lcrag reads {SEGMENT_FORMAT})")
    arrays: dict[str, Any] = {name: load_array(folder, name) for name in ("doc_len", "term_ptr", "rows", "tf", "row_unit")}
    tables: dict[str, Any] = {name: StringTable.load(folder, name) for name in ("terms", "chunk_ids", "units")}
    segment = Segment(
        **arrays,
        **tables,
    )
    if (segment.n_rows, len(segment.terms), len(segment.rows)) != (meta["rows"], meta["terms"], meta["postings"]):
        raise BM25FormatError(f"{rebuild_hint(folder)} (segment arrays do not match segment.json)")
    return segment
