"""lcrag inside LlamaIndex: the retriever hands back lcrag's hits as nodes, a
RetrieverQueryEngine with MockLLM reads them in lcrag's orderings, and bad arguments
fail when the retriever is built."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core import Settings
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode

from lcrag.app.llamaindex import (
    LcragRetriever,
    OrderPreservingPostprocessor,
    ReorderPostprocessor,
    lcrag_query_engine,
    ordering_postprocessors,
)
from lcrag.pipeline.index.search import SearchError

# Words from several documents, so the top chunks come from different places in the corpus.
QUERY = "green tea, lava from volcanoes, purring cats and bread dough"


@pytest.fixture(scope="module")
def reader(topics_reader):
    return topics_reader


def ids(nodes):
    return [n.node.node_id for n in nodes]


@pytest.mark.parametrize(
    "level, mode",
    [("chunk", "dense"), ("chunk", "bm25"), ("chunk", "hybrid"), ("unit", "hybrid"), ("doc", "bm25"), ("chunk", None)],
)
def test_retrieved_nodes_are_lcrags_hits_in_its_order(reader, level, mode):
    hits = reader.search(QUERY, k=5, mode=mode, level=level)
    nodes = LcragRetriever(reader, k=5, level=level, mode=mode).retrieve(QUERY)
    assert ids(nodes) == [h.key for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits])
    docs = reader.documents([h.doc_id for h in hits])
    for node, hit in zip(nodes, hits):
        meta = node.node.metadata
        assert node.node.get_content() == hit.text == docs[hit.doc_id].text[meta["start"] : meta["end"]]
        cited = {"doc_id": hit.doc_id, "unit_id": hit.unit_id, "chunk_id": hit.chunk_id, "start": hit.start, "end": hit.end}
        assert {key: meta[key] for key in cited} == cited and meta["level"] == level
        assert (node.node.start_char_idx, node.node.end_char_idx, node.node.ref_doc_id) == (hit.start, hit.end, hit.doc_id)
        assert meta.get("title", "") == docs[hit.doc_id].title


def test_titles_reach_the_llm_and_bookkeeping_does_not(reader):
    nodes = LcragRetriever(reader, k=1, level="doc", mode="bm25").retrieve("Sicilian Defence castling gambit")
    node = nodes[0].node
    assert node.metadata["doc_id"] == "guide/chess.html" and node.metadata["title"] == "Chess openings"
    shown = node.get_content(metadata_mode=MetadataMode.LLM)
    assert "Chess openings" in shown and "guide/chess.html" in shown
    assert "chunk_id" not in shown and "doc_position" not in shown
    assert node.get_content(metadata_mode=MetadataMode.EMBED) == node.text


def test_async_retrieval_gives_the_same_nodes(reader):
    retriever = LcragRetriever(reader, k=4, mode="hybrid")
    assert ids(asyncio.run(retriever.aretrieve(QUERY))) == ids(retriever.retrieve(QUERY))


def context_order(answer: str, nodes) -> list[int]:
    """Where each node's text stands in MockLLM's answer (it echoes the prompt)."""
    return [answer.index(n.node.get_content()) for n in nodes]


@pytest.mark.parametrize("ordering", [None, "reorder", "op-rag"])
def test_query_engine_reads_lcrag_hits_in_the_chosen_order(reader, ordering):
    llm_before = Settings._llm
    hits = reader.search(QUERY, k=5, mode="hybrid", level="chunk")
    assert len(hits) == 5
    engine = lcrag_query_engine(reader, MockLLM(), k=5, mode="hybrid", ordering=ordering)
    response = engine.query(QUERY)
    got = response.source_nodes
    assert sorted(ids(got)) == sorted(h.key for h in hits)
    keys = [h.key for h in hits]
    if ordering is None:
        assert ids(got) == keys
    elif ordering == "reorder":
        assert ids(got) == [keys[0], keys[2], keys[4], keys[3], keys[1]]
        assert {ids(got)[0], ids(got)[-1]} == set(keys[:2])
    else:
        positions = [(reader.doc_position(n.node.metadata["doc_id"]), n.node.metadata["start"]) for n in got]
        assert positions == sorted(positions)
        assert ids(got) != keys  # the query's best chunks are not already in corpus order
    # The LLM saw the passages in exactly that order.
    seen = context_order(str(response), got)
    assert seen == sorted(seen)
    assert Settings._llm is llm_before  # no global LLM was set or resolved


def test_plain_retriever_query_engine_with_both_postprocessors(reader):
    """Built the LlamaIndex way: op-rag then reorder compose like any postprocessors."""
    retriever = LcragRetriever(reader, k=4, level="chunk", mode="bm25")
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(), node_postprocessors=[OrderPreservingPostprocessor(), ReorderPostprocessor()]
    )
    response = engine.query(QUERY)
    in_corpus_order = OrderPreservingPostprocessor().postprocess_nodes(retriever.retrieve(QUERY))
    o = ids(in_corpus_order)
    assert ids(response.source_nodes) == [o[0], o[2], o[3], o[1]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"level": "page"}, "unknown level 'page'; choose one of chunk, unit, doc"),
        ({"mode": "sparse"}, "unknown mode 'sparse'; choose one of dense, bm25, hybrid"),
        ({"k": 0}, "k must be an integer of at least 1, got 0"),
        ({"k": "5"}, "k must be an integer of at least 1, got '5'"),
        ({"k": True}, "k must be an integer of at least 1"),
    ],
)
def test_bad_retriever_arguments_fail_at_construction(reader, kwargs, message):
    with pytest.raises(SearchError, match=message):
        LcragRetriever(reader, **kwargs)
    with pytest.raises(ValueError):  # SearchError is a ValueError for LlamaIndex callers
        LcragRetriever(reader, **kwargs)


def test_bad_ordering_or_missing_llm_fail_before_any_search(reader):
    with pytest.raises(SearchError, match="unknown ordering 'random'; choose one of reorder, op-rag"):
        lcrag_query_engine(reader, MockLLM(), ordering="random")
    with pytest.raises(SearchError, match="pass the LLM explicitly"):
        lcrag_query_engine(reader, None)
    assert ordering_postprocessors(None) == []


def node(name: str, score: float | None = None, **meta) -> NodeWithScore:
    start = meta.pop("start_char_idx", None)
    source = meta.pop("source", None)
    relationships = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=source)} if source else {}
    return NodeWithScore(
        node=TextNode(id_=name, text=name, metadata=meta, start_char_idx=start, relationships=relationships), score=score
    )


@pytest.mark.parametrize(
    "postprocessor, nodes, expected",
    [
        (ReorderPostprocessor(), [], []),
        (ReorderPostprocessor(), [node("a", 0.9)], ["a"]),
        (ReorderPostprocessor(), [node("a", 0.9), node("b", 0.8)], ["a", "b"]),
        (ReorderPostprocessor(), [node(x, s) for x, s in zip("abcde", (5, 4, 3, 2, 1))], ["a", "c", "e", "d", "b"]),
        # Arrival order is rank order, as in lcrag: scores are not re-sorted.
        (ReorderPostprocessor(), [node(x, s) for x, s in zip("abcd", (1, 2, 3, None))], ["a", "c", "d", "b"]),
        (OrderPreservingPostprocessor(), [], []),
        (
            OrderPreservingPostprocessor(),  # corpus position first, start offset second, scores ignored
            [
                node("late", 0.9, doc_id="z.txt", doc_position=0, start=50),
                node("b0", 0.8, doc_id="a.txt", doc_position=1, start=0),
                node("early", 0.7, doc_id="z.txt", doc_position=0, start=10),
            ],
            ["early", "late", "b0"],
        ),
        (
            OrderPreservingPostprocessor(),  # without corpus positions: doc id, then start
            [node("y", doc_id="b", start=5), node("x2", doc_id="a", start=9), node("x1", doc_id="a", start=2)],
            ["x1", "x2", "y"],
        ),
        (
            OrderPreservingPostprocessor(),  # nodes from another retriever follow lcrag's
            [node("other", doc_id="a", start=0), node("ours", doc_id="z", doc_position=3, start=0)],
            ["ours", "other"],
        ),
        (
            OrderPreservingPostprocessor(),  # plain LlamaIndex nodes: source document and start_char_idx
            [node("n2", source="d", start_char_idx=40), node("n1", source="d", start_char_idx=4), node("m", source="c")],
            ["m", "n1", "n2"],
        ),
        (
            OrderPreservingPostprocessor(),  # equal positions keep their arrival order
            [node("first", doc_id="a", start=0), node("second", doc_id="a", start=0)],
            ["first", "second"],
        ),
    ],
)
def test_postprocessors_on_hand_made_nodes(postprocessor, nodes, expected):
    out = postprocessor.postprocess_nodes(list(nodes))
    assert ids(out) == expected
    assert {id(n) for n in out} == {id(n) for n in nodes}  # the same objects, only moved
