"""lcrag's smallest layer: the vocabulary every role shares (documents, units, chunks,
hits), the one base class of domain errors, and where state lives. It imports nothing
else of lcrag, so readers, retrievers and the pipeline can all stand on it."""
