"""Retrieval backends, one per module: dense (Qdrant), BM25 (rank-bm25), fusion."""
