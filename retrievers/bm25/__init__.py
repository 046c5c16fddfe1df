"""BM25 over chunk spans, growing by immutable segments (see ``index`` for the
definition, ``segment``/``state`` for the layout, ``publish`` for updates)."""

from lcrag.retrievers.bm25.analyzer import Analyzer
from lcrag.retrievers.bm25.errors import BM25FormatError
from lcrag.retrievers.bm25.index import BM25Index, BM25Retriever

__all__ = ["Analyzer", "BM25FormatError", "BM25Index", "BM25Retriever"]
