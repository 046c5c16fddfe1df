"""Evaluation: data sets as questions over corpora, run by every strategy into the ledger."""

from lcrag.pipeline.evaluation.items import (
    CorpusSpec,
    EvalItem,
    EvalSet,
    hotpotqa,
    hotpotqa_pooled,
    kv_retrieval,
    longdoc,
    move_gold,
    qa_jsonl,
    squad2,
)
from lcrag.pipeline.evaluation.needles import niah, niah_agg
from lcrag.pipeline.evaluation.runner import EvalRun, run_evaluation

DATASETS = {
    "hotpotqa": hotpotqa,
    "hotpotqa-pooled": hotpotqa_pooled,
    "squad2": squad2,
    "qa-jsonl": qa_jsonl,
    "kv": kv_retrieval,
    "niah": niah,
    "niah-agg": niah_agg,  # aggregation needles: two facts at different depths, one question
    "longdoc": longdoc,
}

__all__ = ["DATASETS", "CorpusSpec", "EvalItem", "EvalRun", "EvalSet", "move_gold", "run_evaluation"]
