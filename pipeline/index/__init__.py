"""The index on disk and reading it: the catalog, the folder with its manifest and lock,
generations published atomically, and search over a finished index."""
