"""Merging live segments into one by concatenating their arrays.

Many small segments cost a term lookup each per query, and tombstoned rows cost
space and scoring work; a merge drops both without analysing any chunk again.
Row order is kept (segment by segment), so search ties break the same way after.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.segment import Segment
from lcrag.retrievers.bm25.stats import union_terms
from lcrag.retrievers.bm25.strings import StringTable


def merge_segments(parts: Sequence[LiveSegment]) -> Segment:
    """One segment holding the live rows of PARTS, in order."""
    union = union_terms(parts)
    rows, terms, tfs = [], [], []
    doc_len, chunk_ids, units, row_unit = [], [], [], []
    row_base = unit_base = 0
    for part, term_map in zip(parts, union.maps):
        seg, alive = part.segment, part.alive
        new_row = np.cumsum(alive, dtype=np.int64) - 1 + row_base
        keep = alive[seg.rows]
        rows.append(new_row[seg.rows[keep]])
        terms.append(term_map[seg.posting_terms()[keep]])
        tfs.append(np.asarray(seg.tf)[keep])
        live = part.live_rows
        doc_len.append(np.asarray(seg.doc_len)[live])
        chunk_ids.append(seg.chunk_ids.take(live))
        unit_live = part.live_unit_mask()
        new_unit = np.cumsum(unit_live, dtype=np.int64) - 1 + unit_base
        units.append(seg.units.take(np.flatnonzero(unit_live)))
        row_unit.append(new_unit[np.asarray(seg.row_unit, dtype=np.int64)[live]])
        row_base += len(live)
        unit_base += int(unit_live.sum())
    term = np.concatenate(terms) if terms else np.zeros(0, dtype=np.int64)
    by_term = np.argsort(term, kind="stable")  # parts come in row order, so rows stay ascending per term
    term_ptr = np.zeros(len(union.terms) + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=len(union.terms)), out=term_ptr[1:])
    return Segment(
        doc_len=_cat(doc_len, np.int32),
        term_ptr=term_ptr,
        rows=_cat(rows, np.int32)[by_term],
        tf=_cat(tfs, np.int32)[by_term],
        terms=StringTable.from_strings(union.terms),
        chunk_ids=StringTable.concat(chunk_ids),
        units=StringTable.concat(units),
        row_unit=_cat(row_unit, np.int32),
    )


def _cat(arrays: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)
