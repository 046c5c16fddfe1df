"""From units to chunk vectors: plan sentence-aligned chunks, then embed them
late (one encoder pass per context, span-pooled) or naively (each chunk alone).

A context is what the encoder reads for late chunking: each document's part of
the unit (``document``, the default) or the whole unit (``unit``). Either way a
context is ``title`` + newline + text, so titles inform every chunk vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lcrag.core.types import Chunk, Document, Unit, chunk_id_for
from lcrag.pipeline.config import ChunkConfig
from lcrag.pipeline.ingest.sentences import chunk_ranges, count_tokens
from lcrag.retrievers.encoders.late_chunking import pool_spans


def plan_chunks(unit: Unit, docs: Mapping[str, Document], offsets: Mapping[str, np.ndarray], target: int) -> list[Chunk]:
    """The unit's chunks in reading order; ids are stable for a given unit."""
    chunks: list[Chunk] = []
    for span in unit.spans:
        doc = docs[span.doc_id]
        for start, end in chunk_ranges(doc.text, offsets[span.doc_id], (span.start, span.end), target):
            position = len(chunks)
            chunks.append(
                Chunk(
                    chunk_id_for(unit.unit_id, position),
                    unit.unit_id,
                    span.doc_id,
                    start,
                    end,
                    position,
                    count_tokens(offsets[span.doc_id], start, end),
                )
            )
    return chunks


@dataclass(frozen=True)
class LateContext:
    """A text the encoder reads once, and where each of its chunks sits in it."""

    text: str
    chunk_rows: tuple[int, ...]  # indices into the unit's chunk list
    ranges: tuple[tuple[int, int], ...]  # each chunk's character range inside ``text``


def render_span(doc: Document, start: int, end: int) -> tuple[str, int]:
    """The span as read (title line, then text) and the shift from document
    offsets to offsets in the rendered string."""
    prefix = f"{doc.title}\n" if doc.title else ""
    return prefix + doc.text[start:end], len(prefix) - start


def late_contexts(unit: Unit, chunks: Sequence[Chunk], docs: Mapping[str, Document], context: str) -> list[LateContext]:
    pieces: list[tuple[str, list[int], list[tuple[int, int]]]] = []
    for span in unit.spans:
        text, shift = render_span(docs[span.doc_id], span.start, span.end)
        rows = [i for i, c in enumerate(chunks) if c.doc_id == span.doc_id and span.start <= c.start and c.end <= span.end]
        pieces.append((text, rows, [(chunks[i].start + shift, chunks[i].end + shift) for i in rows]))
    if context == "document":
        return [LateContext(t, tuple(r), tuple(g)) for t, r, g in pieces]
    texts: list[str] = []
    joined_rows: list[int] = []
    ranges: list[tuple[int, int]] = []
    cursor = 0
    for piece_text, piece_rows, piece_ranges in pieces:
        texts.append(piece_text)
        joined_rows.extend(piece_rows)
        ranges.extend((s + cursor, e + cursor) for s, e in piece_ranges)
        cursor += len(piece_text) + 2  # the "\n\n" joiner
    return [LateContext("\n\n".join(texts), tuple(joined_rows), tuple(ranges))]


def embed_units(
    units: Sequence[Unit],
    docs: Mapping[str, Document],
    offsets: Mapping[str, np.ndarray],
    encoder,
    config: ChunkConfig,
) -> tuple[list[Chunk], np.ndarray]:
    """Chunks of all given units and one L2-normalised vector per chunk.
    Contexts of many units go to the encoder together so batches stay full."""
    all_chunks: list[Chunk] = []
    per_unit: list[tuple[int, list[Chunk]]] = []
    for unit in units:
        chunks = plan_chunks(unit, docs, offsets, config.target_tokens)
        per_unit.append((len(all_chunks), chunks))
        all_chunks.extend(chunks)
    if not all_chunks:
        return [], np.zeros((0, encoder.dim), dtype=np.float32)

    if config.method == "naive":
        texts = [docs[c.doc_id].text[c.start : c.end] for c in all_chunks]
        return all_chunks, encoder.embed_documents(texts)

    contexts: list[tuple[int, LateContext]] = []
    for unit, (base, chunks) in zip(units, per_unit):
        contexts.extend((base, ctx) for ctx in late_contexts(unit, chunks, docs, config.context))
    token_embeddings = encoder.token_embeddings([ctx.text for _, ctx in contexts])
    vectors = np.zeros((len(all_chunks), encoder.dim), dtype=np.float32)
    for (base, ctx), embedded in zip(contexts, token_embeddings):
        if ctx.chunk_rows:
            vectors[[base + r for r in ctx.chunk_rows]] = pool_spans(embedded, list(ctx.ranges))
    return all_chunks, vectors
