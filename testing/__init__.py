"""What a plugin author tests with (``lcrag.testing``): the fake reader -- deterministic,
no server, the ``fake`` reader backend -- and the contract-test mixins every backend of a
role passes (``lcrag.testing.contracts``). Needs pytest. Nothing of lcrag's runtime
imports this package (tests/test_import_graph.py holds it to that).
"""

from __future__ import annotations

from lcrag.readers.fake import FakeReader
from lcrag.testing.contracts import ReaderContract, RetrieverContract, VectorStoreContract

__all__ = ["FakeReader", "ReaderContract", "RetrieverContract", "VectorStoreContract"]
