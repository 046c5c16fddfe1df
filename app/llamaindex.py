"""lcrag inside LlamaIndex: a retriever over a finished index and node postprocessors
for lcrag's context orderings, so a LlamaIndex query engine reads lcrag's units and
late-chunk vectors without leaving LlamaIndex.

- ``LcragRetriever``: a ``BaseRetriever`` over an ``IndexReader``; each hit becomes a
  ``NodeWithScore`` of a ``TextNode`` (the hit's text, score and citation metadata),
  in the reader's order.
- ``ReorderPostprocessor``: retrieval reordering, best nodes at both ends.
- ``OrderPreservingPostprocessor``: OP-RAG, nodes in corpus order (document, then offset).
- ``lcrag_query_engine``: a ``RetrieverQueryEngine`` over the retriever, the LLM passed
  in explicitly; nothing here reads or sets LlamaIndex's global ``Settings.llm``.
- ``open_retriever``: a retriever over an index opened by a ``Session`` (the composition
  root), so the encoder is the one the index was built with:
  ``with Session.from_file(cfg) as s, open_retriever(s, folder) as retriever: ...``

The orderings are lcrag's own pure functions (``lcrag.pipeline.strategies.ordering``); the
postprocessors only adapt nodes to them. This module is a leaf: nothing in lcrag
imports it, so LlamaIndex stays out of every other code path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.llms import LLM
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
except ImportError as missing:  # an optional extra: say how to get it, not just what is missing
    raise ImportError(f"lcrag's LlamaIndex adapter needs llama-index-core: pip install 'lcrag[llamaindex]' ({missing})") from missing

from lcrag.core.types import LEVELS, Hit, Level
from lcrag.pipeline.index.search import MODE_CHOICES, IndexReader, SearchError
from lcrag.pipeline.session import Session
from lcrag.pipeline.strategies.ordering import document_order, reorder_ends

ORDERING_CHOICES = ("reorder", "op-rag")

# Metadata a node carries for citation and ordering, kept out of the LLM's prompt and
# out of any embedding text; doc_id and title stay visible to the LLM.
HIDDEN_KEYS = ("key", "level", "unit_id", "chunk_id", "start", "end", "doc_position", "dense_score", "bm25_score")


def _choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SearchError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


class LcragRetriever(BaseRetriever):
    """lcrag's search as a LlamaIndex retriever.

    ``level`` is chunk, unit or doc (a unit's or document's score is its best chunk's);
    ``mode`` is dense, bm25 or hybrid, or None for the index's configured mode. Both
    and ``k`` are checked here, so a bad value fails when the retriever is built, not
    on the first query. The reader stays the caller's to close.

    Every node is one lcrag ``Hit``: ``id_`` is the hit's key (chunk, unit or doc id),
    the text is the best chunk's text, ``start_char_idx``/``end_char_idx`` its offsets
    in the document, the source relationship the document; metadata holds doc_id,
    unit_id, chunk_id, start, end, level, key, doc_position (corpus order, for
    ``OrderPreservingPostprocessor``), per-retriever scores and the title when the
    document has one.
    """

    def __init__(
        self,
        reader: IndexReader,
        k: int = 10,
        level: Level = "chunk",
        mode: str | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SearchError(f"k must be an integer of at least 1, got {k!r}")
        _choice("level", level, LEVELS)
        if mode is not None:
            _choice("mode", mode, MODE_CHOICES)
        self.reader = reader
        self.k = k
        self.level: Level = level
        self.mode = mode
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.reader.search(query_bundle.query_str, k=self.k, mode=self.mode, level=self.level)
        docs = self.reader.documents(list(dict.fromkeys(h.doc_id for h in hits)))
        return [
            NodeWithScore(node=self.node_of(hit, docs[hit.doc_id].title if hit.doc_id in docs else ""), score=hit.score)
            for hit in hits
        ]

    def node_of(self, hit: Hit, title: str = "") -> TextNode:
        metadata: dict[str, Any] = {
            "doc_id": hit.doc_id,
            "unit_id": hit.unit_id,
            "chunk_id": hit.chunk_id,
            "start": hit.start,
            "end": hit.end,
            "level": hit.level,
            "key": hit.key,
            "doc_position": self.reader.doc_position(hit.doc_id),
        }
        metadata.update({f"{name}_score": float(score) for name, score in hit.sources})
        if title:
            metadata["title"] = title
        return TextNode(
            id_=hit.key,
            text=hit.text,
            metadata=metadata,
            start_char_idx=hit.start,
            end_char_idx=hit.end,
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
            excluded_llm_metadata_keys=list(HIDDEN_KEYS),
            excluded_embed_metadata_keys=list(metadata),
        )


class ReorderPostprocessor(BaseNodePostprocessor):
    """Retrieval reordering (lcrag's ``reorder_ends``): the nodes as they arrive are
    taken as best first, and placed with the best at both ends of the context and the
    worst in the middle. [1, 2, 3, 4, 5] -> [1, 3, 5, 4, 2]. Put it after any
    postprocessor that re-ranks."""

    @classmethod
    def class_name(cls) -> str:
        return "LcragReorderPostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        return reorder_ends(nodes)


def corpus_position(node: NodeWithScore) -> tuple[float, str, int]:
    """Where a node stands in the corpus: (document's corpus position, doc id, start
    offset). Nodes without a ``doc_position`` (not from ``LcragRetriever``) come after
    those with one, documents then ordered by id; the start falls back to the node's
    ``start_char_idx``, the doc id to its source document."""
    meta = node.node.metadata
    position = meta.get("doc_position")
    doc_id = meta.get("doc_id") or node.node.ref_doc_id or ""
    start = meta.get("start", node.node.start_char_idx if isinstance(node.node, TextNode) else None)
    return (math.inf if position is None else position, str(doc_id), start or 0)


class OrderPreservingPostprocessor(BaseNodePostprocessor):
    """Order-preserving RAG (lcrag's ``document_order``): the nodes in the order they
    stand in the corpus (document, then start offset), whatever their scores."""

    @classmethod
    def class_name(cls) -> str:
        return "LcragOrderPreservingPostprocessor"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        return document_order(nodes, corpus_position)


def ordering_postprocessors(ordering: str | None) -> list[BaseNodePostprocessor]:
    """The postprocessors for one of lcrag's orderings; None keeps the score order."""
    if ordering is None:
        return []
    _choice("ordering", ordering, ORDERING_CHOICES)
    return [ReorderPostprocessor() if ordering == "reorder" else OrderPreservingPostprocessor()]


def lcrag_query_engine(
    reader: IndexReader,
    llm: LLM,
    *,
    k: int = 10,
    level: Level = "chunk",
    mode: str | None = None,
    ordering: Literal["reorder", "op-rag"] | None = None,
    **engine_args: Any,
) -> RetrieverQueryEngine:
    """A ``RetrieverQueryEngine`` reading lcrag's hits in the chosen ordering, answered
    by ``llm`` (required: LlamaIndex's global ``Settings.llm`` is never consulted).
    ``engine_args`` go to ``RetrieverQueryEngine.from_args`` (response_mode, templates...)."""
    if llm is None:
        raise SearchError("pass the LLM explicitly; lcrag never falls back to LlamaIndex's global Settings.llm")
    postprocessors = ordering_postprocessors(ordering)
    retriever = LcragRetriever(reader, k=k, level=level, mode=mode)
    return RetrieverQueryEngine.from_args(retriever, llm=llm, node_postprocessors=postprocessors, **engine_args)


@contextmanager
def open_retriever(session: Session, index: Path, **options: Any) -> Iterator[LcragRetriever]:
    """An ``LcragRetriever`` over ``index`` opened through the session; the index is
    closed on exit. ``options`` are the retriever's (k, level, mode)."""
    with session.open_index(index) as reader:
        yield LcragRetriever(reader, **options)
