"""Ingestion: loading sources, cutting sentences and LongRAG units, encoding with late
chunking, and writing the stores of an index folder (``ingestion``)."""
