"""An lcrag plugin in one module: the ``first-passage`` strategy reads only the
top-ranked chunk. Registered in its pyproject under ``lcrag.strategies``; once installed,
``lcrag ask --strategy first-passage`` and ``lcrag eval --strategies rag,first-passage``
find it as they find a built-in, and the report lists it."""

from __future__ import annotations

from lcrag.pipeline.strategies import Context, ContextStrategy, Question, Toolkit
from lcrag.pipeline.strategies.retrieval import context_of, retrieve_chunks


class FirstPassageStrategy(ContextStrategy):
    """Retrieves as rag does (top-k chunks that fit the budget, best first) and reads the
    best one alone. No ``rank``: it sorts after the built-ins in ``all`` and the reports."""

    name = "first-passage"  # must equal the entry point's name

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        passages, retrieved = retrieve_chunks(question, tools)
        return context_of(passages[:1], retrieved, tools)  # every retrieved id is still recorded
