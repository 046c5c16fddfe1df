"""The encoder role: token embeddings for late chunking, pooled vectors for search."""
