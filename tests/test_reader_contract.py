"""The reader contract: every Reader backend passes the same behaviour tests.
A backend's test class inherits ``ReaderContract`` (``lcrag.testing``, where a plugin's
tests find it too) and provides one fixture, ``reader`` (Haystack's document-store test
pattern)."""

from __future__ import annotations

import pytest

from lcrag.testing import FakeReader, ReaderContract


class TestFakeReader(ReaderContract):
    @pytest.fixture
    def reader(self):
        return FakeReader()


@pytest.mark.reader
class TestVLLMReader(ReaderContract):
    @pytest.fixture(scope="class")
    def reader(self, live_reader):
        from lcrag.readers.vllm import VLLMReader
        from tests.conftest import STATE

        client = VLLMReader(live_reader, home=STATE)
        yield client
        client.close()
