"""Retrieval-only evaluation (BEIR data sets): each judged query ranked by each
retrieval method over one index of the corpus, judged against the qrels with
nDCG@10, Recall@k and MRR (trec_eval's definitions, ``lcrag.pipeline.statistics.intervals``). No
reader is involved, so rows go to the ledger's ``retrieval`` table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.types import Document
from lcrag.pipeline.config import MODE_CHOICES, Config
from lcrag.pipeline.evaluation.items import EvalDataError, sample
from lcrag.pipeline.evaluation.runner import index_folder
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest.ingestion import ingest
from lcrag.pipeline.ingest.loaders import LoadResult, load_source
from lcrag.pipeline.ingest.loaders.beir import load_beir_qrels, load_beir_queries
from lcrag.pipeline.ledger import Ledger, RetrievalRow
from lcrag.pipeline.statistics.intervals import mrr, ndcg_at_k, recall_at_k

_RECORD_BATCH = 50


@dataclass(frozen=True)
class RetrievalSet:
    """Judged queries over one corpus."""

    name: str
    queries: tuple[tuple[str, str], ...]  # (query id, text), each with at least one relevant document
    qrels: Mapping[str, Mapping[str, int]]
    documents: tuple[Document, ...]

    def __post_init__(self) -> None:
        unjudged = [qid for qid, _ in self.queries if not any(g > 0 for g in self.qrels.get(qid, {}).values())]
        if unjudged:
            raise EvalDataError(f"queries without a relevant document cannot be scored: {unjudged[:5]}")


def beir(path: Path, limit: int | None = None, seed: int = 0, split: str = "test") -> RetrievalSet:
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv); queries without
    a relevant document in the split are left out, as BEIR's evaluation does."""
    path = Path(path)
    qrels = load_beir_qrels(path, split)
    judged = [(q.qid, q.text) for q in load_beir_queries(path) if any(g > 0 for g in qrels.get(q.qid, {}).values())]
    if not judged:
        raise EvalDataError(f"no query of {path} has a relevant document in qrels/{split}.tsv")
    loaded = load_source(path, "beir")
    return RetrievalSet(f"beir/{path.name}", tuple(sample(judged, limit, seed)), qrels, tuple(loaded.documents))


def resolve_methods(text: str) -> tuple[str, ...]:
    """``all`` or a comma-separated subset of the search modes (bm25, dense, hybrid)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return MODE_CHOICES
    unknown = [n for n in names if n not in MODE_CHOICES]
    if unknown or not names:
        raise EvalDataError(f"beir evaluates retrieval methods: choose from {', '.join(MODE_CHOICES)} or all; got {text!r}")
    return tuple(dict.fromkeys(names))


def judge(run_id: str, dataset: str, query_id: str, method: str, index_id: str, ranked: Sequence[str],
          relevance: Mapping[str, int], k: int, retrieval_ms: float) -> RetrievalRow:
    return RetrievalRow(
        run_id=run_id, dataset=dataset, query_id=query_id, method=method, index_id=index_id, k=k,
        ndcg_at_10=ndcg_at_k(ranked, relevance, 10), recall_at_k=recall_at_k(ranked, relevance, k),
        mrr=mrr(ranked, relevance), retrieval_ms=retrieval_ms,
    )


def run_retrieval(
    rset: RetrievalSet,
    run_id: str,
    methods: Sequence[str],
    work_dir: Path,
    config: Config,
    encoder,
    ledger: Ledger,
    k: int = 100,
    level: str = "doc",
    progress: Callable[[int], None] | None = None,
) -> int:
    """Judge every pending (query, method) pair; returns how many were judged. The
    corpus is ingested once (incremental on a rerun); a rerun of a run id resumes."""
    done = ledger.retrieval_done(run_id)
    labels = {m: f"{m}/{level}" for m in methods}
    todo = [(qid, text, m) for m in methods for qid, text in rset.queries if (qid, labels[m]) not in done]
    if not todo:
        return 0
    index = index_folder(Path(work_dir), rset.name)
    ingest(LoadResult("beir", rset.documents, ()), index, config, encoder, "eval")
    judged, batch = 0, []
    with IndexReader(index, lambda _: encoder) as corpus:
        for qid, text, method in todo:
            started = time.perf_counter()
            hits = corpus.search(text, k=k, mode=method, level=level)
            elapsed = (time.perf_counter() - started) * 1000
            batch.append(judge(run_id, rset.name, qid, labels[method], corpus.index_id, [h.key for h in hits],
                               rset.qrels[qid], k, elapsed))
            if len(batch) >= _RECORD_BATCH:
                judged += ledger.record_retrieval(batch)
                batch = []
            if progress is not None:
                progress(1)
        judged += ledger.record_retrieval(batch)
    return judged
