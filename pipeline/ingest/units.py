"""LongRAG retrieval units: related documents grouped up to a token limit.

A document that fits is placed whole; a longer one is cut into consecutive
pieces (paragraph, then sentence edges), each a unit of its own. Whole documents
are grouped by a key (source file, folder, title, a metadata field) or by
content similarity (TF-IDF nearest neighbours, the general-corpus stand-in for
the paper's hyperlink groups), and packed greedily, never past the limit.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lcrag.core.types import Document, Span, Unit, unit_id_for
from lcrag.pipeline.ingest.sentences import count_tokens, cut_ranges, trim


@dataclass(frozen=True)
class Piece:
    """A document range with its token cost (text plus title), ready to be grouped."""

    doc_index: int
    span: Span
    n_tokens: int
    whole: bool  # the entire document (only whole documents share units)


def title_cost(title_tokens: int) -> int:
    """Tokens a span's title line adds to a unit when the unit is read."""
    return title_tokens + 1 if title_tokens else 0


def cut_document(doc_index: int, doc: Document, offsets: np.ndarray, title_tokens: int, limit: int) -> list[Piece]:
    """The pieces one document contributes: itself, or consecutive cuts of it.
    Only a title longer than the whole limit can push a piece past it."""
    budget = max(limit - title_cost(title_tokens), 1)
    sections = [(s.start, s.end) for s in doc.sections]
    ranges = cut_ranges(doc.text, offsets, sections, budget)
    whole = len(ranges) == 1 and ranges[0] == trim(doc.text, 0, len(doc.text))
    return [
        Piece(doc_index, Span(doc.doc_id, s, e), count_tokens(offsets, s, e) + title_cost(title_tokens), whole)
        for s, e in ranges
    ]


def group_key(doc: Document, group_by: str) -> str:
    if group_by == "source":
        return doc.source
    if group_by == "directory":
        return posixpath.dirname(doc.source)
    if group_by == "title":
        return doc.title
    if group_by.startswith("meta:"):
        return doc.meta(group_by[5:])
    return ""


def pack_in_order(pieces: Sequence[Piece], limit: int) -> list[list[Piece]]:
    """Sequential greedy packing: consecutive pieces share a unit while they fit."""
    groups: list[list[Piece]] = []
    current: list[Piece] = []
    used = 0
    for piece in pieces:
        if current and used + piece.n_tokens > limit:
            groups.append(current)
            current, used = [], 0
        current.append(piece)
        used += piece.n_tokens
    if current:
        groups.append(current)
    return groups


def pack_by_neighbours(pieces: Sequence[Piece], neighbours: Sequence[Sequence[int]], limit: int) -> list[list[Piece]]:
    """Greedy neighbour packing: the first ungrouped piece seeds a unit, which then
    takes the seed's nearest ungrouped neighbours (most similar first) while they fit.
    ``neighbours[i]`` lists indices into ``pieces``, most similar first."""
    taken = [False] * len(pieces)
    groups: list[list[Piece]] = []
    for seed in range(len(pieces)):
        if taken[seed]:
            continue
        taken[seed] = True
        group, used = [pieces[seed]], pieces[seed].n_tokens
        for other in neighbours[seed]:
            if taken[other] or used + pieces[other].n_tokens > limit:
                continue
            taken[other] = True
            group.append(pieces[other])
            used += pieces[other].n_tokens
        groups.append(group)
    return groups


def tfidf_neighbours(texts: Sequence[str], k: int, block: int = 2048) -> list[list[int]]:
    """Each text's ``k`` most similar other texts by TF-IDF cosine, most similar first."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) < 2:
        return [[] for _ in texts]
    try:
        matrix = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1).fit_transform(texts)
    except ValueError:  # every text is stop words only
        return [[] for _ in texts]
    k = min(k, len(texts) - 1)
    result: list[list[int]] = []
    for first in range(0, len(texts), block):
        sims = (matrix[first : first + block] @ matrix.T).toarray()
        for row, i in enumerate(range(first, min(first + block, len(texts)))):
            sims[row, i] = -1.0
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k else np.zeros((len(sims), 0), dtype=int)
        for row in range(len(sims)):
            order = top[row][np.lexsort((top[row], -sims[row, top[row]]))]
            result.append([int(j) for j in order if sims[row, j] > 0])
    return result


def build_units(
    docs: Sequence[Document],
    offsets: Sequence[np.ndarray],
    title_tokens: Sequence[int],
    limit: int,
    group_by: str,
    neighbours_k: int = 32,
    neighbours_fn: Callable[[Sequence[str], int], list[list[int]]] = tfidf_neighbours,
) -> list[Unit]:
    """Group documents into units. Deterministic: the same documents in the same
    order always give the same units with the same ids."""
    doc_hashes = {d.doc_id: d.content_hash for d in docs}
    wholes: list[Piece] = []
    solo_groups: list[list[Piece]] = []
    for i, doc in enumerate(docs):
        pieces = cut_document(i, doc, offsets[i], title_tokens[i], limit)
        if len(pieces) == 1 and pieces[0].whole:
            wholes.append(pieces[0])
        else:
            solo_groups.extend([p] for p in pieces)

    if group_by == "none":
        groups = [[p] for p in wholes]
    elif group_by == "neighbours":
        texts = [f"{docs[p.doc_index].title}\n{docs[p.doc_index].text}" for p in wholes]
        groups = pack_by_neighbours(wholes, neighbours_fn(texts, neighbours_k), limit)
    else:
        keyed = sorted(range(len(wholes)), key=lambda j: group_key(docs[wholes[j].doc_index], group_by))
        groups = []
        start = 0
        for end in range(1, len(keyed) + 1):
            if end == len(keyed) or group_key(docs[wholes[keyed[end]].doc_index], group_by) != group_key(
                docs[wholes[keyed[start]].doc_index], group_by
            ):
                groups.extend(pack_in_order([wholes[j] for j in keyed[start:end]], limit))
                start = end

    units = []
    for group in sorted(groups + solo_groups, key=lambda g: (g[0].doc_index, g[0].span.start)):
        spans = tuple(p.span for p in group)
        key = group_key(docs[group[0].doc_index], group_by) if group_by not in ("neighbours", "none") else ""
        units.append(Unit(unit_id_for(spans, doc_hashes), spans, sum(p.n_tokens for p in group), key))
    return units
