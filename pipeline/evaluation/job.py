"""One evaluation, start to finish: the function ``lcrag eval``, the Prefect flow and
any library caller share, so they cannot drift apart. ``NAME:PATH`` picks the data set;
``beir:PATH`` judges retrieval only (no reader), every other name answers questions
with every strategy and records scored rows. Rerunning a run id resumes it.

With ``until_decided`` the questions are answered in rounds of ``round_size`` (a
seeded order, ``sequential.round_order``) and the run's verdict is taken after each
round at that look's share of the error rate (``sequential``), stopping once every
data set is resolved or futile. Each round is ``run_evaluation`` on the growing set
of questions, which skips the pairs already answered, so a rerun with the same run id
and round size re-derives the same looks from the ledger and resumes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lcrag.core.paths import default_ledger, state_home
from lcrag.pipeline.config import Config
from lcrag.pipeline.evaluation import DATASETS
from lcrag.pipeline.evaluation.items import EvalDataError, EvalSet, reply_tokens_needed
from lcrag.pipeline.evaluation.needles import parse_lengths
from lcrag.pipeline.evaluation.retrieval import beir, resolve_methods, run_retrieval
from lcrag.pipeline.evaluation.runner import EvalRun, not_asked, pending_pairs, run_evaluation
from lcrag.pipeline.evaluation.sequential import (
    RESOLVED,
    Decide,
    RoundReport,
    default_decide,
    judge_round,
    look_alphas,
    looks,
    round_order,
)
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.recording import new_run_id
from lcrag.pipeline.session import Session
from lcrag.pipeline.statistics.verdict import VerdictSettings
from lcrag.pipeline.strategies import CONTROL_NAMES, resolve_names

RETRIEVAL_DATASET = "beir"
NEEDLE_DATASETS = ("niah", "niah-agg")  # take --niah-lengths / --niah-questions
SYNTH_DATASET = "synth"  # synth:N: questions the reader writes about the index (evaluation/synth.py)
MIN_BEIR_K = 10  # nDCG@10 needs ten ranks
ROUND_SIZE = 20  # --until-decided: questions answered between two looks at the verdict

# Progress: called with a total once, then with each step's count.
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda n: None


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate. ``dataset`` is NAME:PATH; ``strategies`` names strategies (or
    retrieval methods for beir), comma-separated, or ``all``."""

    dataset: str
    strategies: str = "all"
    k: int = 100  # beir: documents retrieved per query
    limit: int | None = None
    seed: int = 0
    run_id: str | None = None
    positions: tuple[int, ...] = ()
    index: Path | None = None  # qa-jsonl: the user's own index
    ledger: Path | None = None
    work: Path | None = None
    fields: str | None = None  # longdoc: a field mapping such as "document=text,question=q,answers=a"
    router: Path | None = None  # a fitted router file used on every corpus (auto, self-route's threshold)
    until_decided: bool = False  # answer in rounds, stop once the verdict is settled (``sequential``)
    round_size: int = ROUND_SIZE  # questions per round with until_decided
    niah_lengths: str | None = None  # niah / niah-agg: haystack lengths, words or k tokens ("8k,16k,32k")
    niah_questions: int | None = None  # niah / niah-agg: questions per (depth, length) cell

    def __post_init__(self) -> None:
        name, _, path = self.dataset.partition(":")
        valid = ", ".join([*DATASETS, RETRIEVAL_DATASET, SYNTH_DATASET])
        if isinstance(self.round_size, bool) or not isinstance(self.round_size, int) or self.round_size < 1:
            raise EvalDataError(f"--round-size must be at least 1, got {self.round_size!r}")
        if self.until_decided and name == RETRIEVAL_DATASET:
            raise EvalDataError("--until-decided stops on the answering verdict; beir judges retrieval only (no verdict)")
        if name == SYNTH_DATASET:
            if not path.isdigit() or int(path) < 1:
                raise EvalDataError(f"--dataset synth:N needs N, the number of questions to write (>= 1); got {self.dataset!r}")
            if self.index is None:
                raise EvalDataError("--dataset synth:N writes questions about an index: pass --index INDEX")
            return
        if not path or name not in (*DATASETS, RETRIEVAL_DATASET):
            raise EvalDataError(f"--dataset must be NAME:PATH with NAME one of {valid}; got {self.dataset!r}")
        if self.positions and name != "hotpotqa":
            raise EvalDataError("--positions applies to --dataset hotpotqa only (kv records its gold index itself)")
        if name == RETRIEVAL_DATASET and self.k < MIN_BEIR_K:
            raise EvalDataError(f"--k must be at least {MIN_BEIR_K} (nDCG@10 needs ten ranks), got {self.k}")
        if self.fields and name != "longdoc":
            raise EvalDataError("--fields applies to --dataset longdoc only")
        if (self.niah_lengths is not None or self.niah_questions is not None) and name not in NEEDLE_DATASETS:
            raise EvalDataError(f"--niah-lengths and --niah-questions apply to --dataset {' / '.join(NEEDLE_DATASETS)} only")
        if self.niah_lengths is not None:
            parse_lengths(self.niah_lengths)  # says what is wrong with the lengths before anything runs
        if self.niah_questions is not None and (isinstance(self.niah_questions, bool) or self.niah_questions < 1):
            raise EvalDataError(f"--niah-questions must be at least 1, got {self.niah_questions!r}")
        if self.limit is not None and self.limit < 1:
            raise EvalDataError(f"--limit must be at least 1, got {self.limit}")
        if not Path(path).exists():
            raise EvalDataError(f"{path} does not exist; --dataset needs NAME:PATH with an existing file or folder")

    @property
    def name(self) -> str:
        return self.dataset.partition(":")[0]

    @property
    def path(self) -> Path:
        return Path(self.dataset.partition(":")[2])

    @property
    def needle_options(self) -> dict:
        """The niah / niah-agg grid options given (lengths in words), for the loader."""
        options: dict = {}
        if self.niah_lengths is not None:
            options["lengths"] = parse_lengths(self.niah_lengths)
        if self.niah_questions is not None:
            options["questions"] = self.niah_questions
        return options

    @property
    def judges_retrieval(self) -> bool:
        return self.name == RETRIEVAL_DATASET


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str
    ledger: Path
    kind: str  # "answers" or "retrieval"
    questions: int
    done: int  # pairs answered or judged in this call (0 when the run was complete)
    summary: tuple[dict, ...]  # one row per strategy or method
    rounds: tuple[RoundReport, ...] = ()  # until_decided: the look after each round, the stopping one last
    # (strategy, questions it was not asked): the oracle skips questions without gold evidence
    not_asked: tuple[tuple[str, int], ...] = ()


def with_reply_room(config: Config, reply_tokens: int) -> Config:
    """``config`` with at least ``reply_tokens`` reply tokens for the reader. The context
    budget is derived from the same setting, so prompts still fit the window."""
    if reply_tokens <= config.reader.max_tokens:
        return config
    return replace(config, reader=replace(config.reader, max_tokens=reply_tokens))


def evaluate(
    request: EvalRequest,
    config: Config,
    progress: ProgressFactory = _no_progress,
    announce: Callable[[str], None] = lambda line: None,
) -> EvalOutcome:
    """Run (or resume) the evaluation and return its per-strategy summary."""
    ledger = Ledger(request.ledger or default_ledger())
    run_id = request.run_id or new_run_id()
    work = request.work or state_home() / "eval"
    if request.judges_retrieval:
        return _judge_retrieval(request, config, ledger, run_id, work, progress, announce)
    names = tuple(resolve_names(request.strategies))
    builder = DATASETS[request.name] if request.name != SYNTH_DATASET else DATASETS["qa-jsonl"]
    if request.name == SYNTH_DATASET:
        evalset = builder(synthesize(request, config, run_id, work, progress, announce))
    elif request.positions:
        evalset = builder(request.path, request.limit, request.seed, request.positions)
    elif request.fields:
        evalset = builder(request.path, request.limit, request.seed, request.fields)
    elif request.name in NEEDLE_DATASETS:
        evalset = builder(request.path, request.limit, request.seed, **request.needle_options)
    else:
        evalset = builder(request.path, request.limit, request.seed)
    for reason in evalset.skipped:
        announce(f"skipped {reason}")
    needed = reply_tokens_needed(evalset)
    if needed > config.reader.max_tokens:
        announce(f"{evalset.name} answers need up to {needed} reply tokens: reader.max_tokens "
                 f"{config.reader.max_tokens} -> {needed} for this run")
    config = with_reply_room(config, needed)
    if request.until_decided and len(candidates := compared_strategies(names)) < 2:
        raise EvalDataError("--until-decided stops once the verdict between strategies is settled: name at least two "
                            f"strategies to compare (got {', '.join(candidates) or 'none'}; closed-book is a control)")
    rounds: tuple = ()
    with Session(config, ledger=ledger) as session:
        session.reader  # noqa: B018 -- a reader that answers now, or the error naming `lcrag reader start`
        run = EvalRun(run_id, evalset.name, names, work, request.index, router=request.router)
        done = ledger.done_keys(run.run_id)
        total = pending_pairs(evalset.items, names, done)
        announce(f"run {run.run_id}: {len(evalset.items)} questions x {len(names)} strategies, {total} to answer")
        unasked = not_asked(evalset.items, names)
        for name, count in unasked.items():
            announce(f"{name}: {count} of {len(evalset.items)} questions carry no gold evidence and are not asked")
        session.encoder  # noqa: B018 -- loaded before the progress bar starts
        budget, bar = session.budget(), progress("questions x strategies", total)

        def answer(subset: EvalSet) -> int:
            return run_evaluation(subset, run, session, budget, bar)

        if request.until_decided:
            answered, rounds = answer_until_decided(evalset, run_id, names, ledger, answer, round_size=request.round_size,
                                                    seed=request.seed, announce=announce)
        else:
            answered = answer(evalset)
    ledger.compact()  # rows that waited in segments (the file was held) join the file for plain SQL
    return EvalOutcome(run_id, ledger.path, "answers", len(evalset.items), answered, answer_summary(ledger, run_id),
                       rounds, tuple(unasked.items()))


def compared_strategies(names: Sequence[str]) -> tuple[str, ...]:
    """The names a verdict compares (controls such as closed-book left out)."""
    return tuple(n for n in names if n not in CONTROL_NAMES)


def answer_until_decided(
    evalset: EvalSet,
    run_id: str,
    strategies: tuple[str, ...],
    ledger: Ledger,
    answer: Callable[[EvalSet], int],
    *,
    round_size: int = ROUND_SIZE,
    seed: int = 0,
    settings: VerdictSettings = VerdictSettings(),
    decide: Decide | None = None,
    announce: Callable[[str], None] = lambda line: None,
) -> tuple[int, tuple[RoundReport, ...]]:
    """Answer ``evalset`` in rounds of ``round_size`` questions (``round_order``) with
    ``answer`` (``run_evaluation`` on the questions so far: pairs already recorded are
    skipped), and after each round judge the run's rows of those questions at that
    look's share of ``settings.alpha`` (N = every question of the set); stop after the
    first look where every data set is resolved or futile. Returns the pairs answered
    and the looks taken; announces one line per look."""
    decide = decide or default_decide(compared_strategies(strategies))  # the controls' rows still set the margin
    order = round_order((i.question.qid for i in evalset.items), seed)
    sizes = looks(len(order), round_size)
    alphas = look_alphas(sizes, len(order), settings.alpha)
    answered, reports = 0, []
    for number, size in enumerate(sizes, start=1):
        chosen = set(order[:size])
        # the loader's order within the round: questions on one document stay together (prefix cache)
        answered += answer(replace(evalset, items=tuple(i for i in evalset.items if i.question.qid in chosen)))
        rows = [r for r in ledger.rows(run_id) if r.question_id in chosen and r.strategy in strategies]
        report = judge_round(rows, number=number, sizes=sizes, alphas=alphas, planned=len(order), settings=settings,
                             decide=decide)
        reports.append(report)
        announce(report.line())
        if report.decided:
            why = ("every data set is resolved" if report.stop == RESOLVED else
                   f"every data set is resolved or futile (no size up to {len(order)} questions would settle it)")
            announce(f"stopped after {size} of {len(order)} questions ({report.stop}): {why}")
            break
    else:
        if reports:
            announce(f"all {len(order)} questions answered without settling every data set")
    return answered, tuple(reports)


def synthesize(request: EvalRequest, config: Config, run_id: str, work: Path, progress: ProgressFactory,
               announce: Callable[[str], None]) -> Path:
    """The run's synthetic question file (``work/synth/RUN.jsonl``): written once, reused
    when the run resumes (so a user's edits to it stand)."""
    from lcrag.pipeline.evaluation.synth import MAX_ATTEMPTS_PER_QUESTION, generate, sample_passages, to_qa_jsonl

    path = work / "synth" / f"{run_id}.jsonl"
    if path.is_file():
        announce(f"reusing the synthetic questions in {path}")
        return path
    wanted = int(request.path.name)
    with Session(config) as session:
        session.reader  # noqa: B018 -- a reader that answers now, before the index loads
        with session.open_index(request.index) as corpus:
            chunks = list(corpus.catalog.iter_chunks())
            documents = corpus.documents(corpus.doc_ids())
            passages = sample_passages(chunks, documents, wanted * MAX_ATTEMPTS_PER_QUESTION, request.seed)
        result = generate(passages, session.reader, wanted, progress("passages -> questions", len(passages)))
    if not result.kept:
        raise EvalDataError(f"the reader wrote no question that survived the round trip ({result.attempted} passages "
                            f"tried, {result.unparsed} replies without a question and an answer); try a larger reader")
    to_qa_jsonl(result, path)
    stats = {"wanted": wanted, "kept": len(result.kept), "attempted": result.attempted, "unparsed": result.unparsed,
             "acceptance": round(result.acceptance, 4), "index": str(request.index), "seed": request.seed}
    path.with_suffix(".stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    announce(f"wrote {len(result.kept)} synthetic questions to {path}: {result.attempted} passages tried, "
             f"{result.acceptance:.0%} kept by the round trip ({result.unparsed} replies unparsed). "
             f"Review or edit them, then rerun with --dataset qa-jsonl:{path} --index {request.index}")
    return path


def _judge_retrieval(request: EvalRequest, config: Config, ledger: Ledger, run_id: str, work: Path,
                     progress: ProgressFactory, announce: Callable[[str], None]) -> EvalOutcome:
    methods = resolve_methods(request.strategies)
    rset = beir(request.path, request.limit, request.seed)
    announce(f"run {run_id}: {len(rset.queries)} judged queries x {len(methods)} methods over {len(rset.documents)} documents")
    judged = run_retrieval(rset, run_id, methods, work, config, Session(config, ledger=ledger).encoder, ledger,
                           k=request.k, progress=progress("queries x methods", len(rset.queries) * len(methods)))
    return EvalOutcome(run_id, ledger.path, "retrieval", len(rset.queries), judged, retrieval_summary(ledger, run_id))


def answer_summary(ledger: Ledger, run_id: str) -> tuple[dict, ...]:
    return tuple(ledger.query(
        "select strategy, count(*) n, round(avg(em), 3) em, round(avg(f1), 3) f1, round(avg(prompt_tokens)) prompt_tokens, "
        "round(avg(retrieval_ms + reading_ms) / 1000, 2) mean_latency_s from ledger where run_id = ? group by 1 order by f1 desc",
        [run_id],
    ))


def retrieval_summary(ledger: Ledger, run_id: str) -> tuple[dict, ...]:
    return tuple(ledger.query(
        "select method, count(*) n, round(avg(ndcg_at_10), 3) ndcg_at_10, round(avg(recall_at_k), 3) recall_at_k, "
        "round(avg(mrr), 3) mrr, round(avg(retrieval_ms), 1) mean_ms from retrieval where run_id = ? group by 1 order by 3 desc",
        [run_id],
    ))
