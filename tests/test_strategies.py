"""Strategies above the reader: a real small index, the deterministic fake reader
and a scripted attention source. Checks orderings, budgets, citations, the
self-route fallback rule, auto's routing and the ledger rows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lcrag.pipeline.config import ReaderConfig, StrategyConfig, config_from_dict
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest.ingestion import ingest
from lcrag.pipeline.ingest.loaders import load_source
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.recording import RunLabels, answer_and_record, context_budget
from lcrag.pipeline.strategies import (
    ALL,
    REGISTRY,
    Question,
    Toolkit,
    UnknownStrategyError,
    get_strategy,
    resolve_names,
)
from lcrag.pipeline.strategies.base import QUESTION_ALLOWANCE
from lcrag.readers.base import Passage, Prompt
from lcrag.readers.fake import FakeReader

CAT = Question("q-cat", "Why do cats purr and sleep so much?")
VOLCANO = Question("q-volcano", "Which volcano in Sicily is very active?")
OFF_TOPIC = Question("q-off", "Who composed the Brandenburg concertos?")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, encoder):
    from tests.conftest import TOPICS, write_corpus

    root = tmp_path_factory.mktemp("strategies")
    config = config_from_dict({"chunking": {"target_tokens": 16}, "units": {"max_tokens": 120}})
    ingest(load_source(write_corpus(root / "corpus", TOPICS)), root / "index", config, encoder, "corpus")
    with IndexReader(root / "index", lambda c: encoder) as reader:
        yield reader


class ScriptedAttention:
    """Gives each passage attention by a rule, and records the orders it saw."""

    def __init__(self, favourite_doc: str) -> None:
        self.favourite_doc = favourite_doc
        self.seen: list[list[str]] = []

    def passage_attention(self, prompt: Prompt) -> list[float]:
        self.seen.append([p.passage_id for p in prompt.passages])
        return [1.0 if p.doc_id == self.favourite_doc else 0.1 * i for i, p in enumerate(prompt.passages)]


def tools_for(corpus, budget=400, attention=None, **strategy):
    return Toolkit(corpus, FakeReader(), StrategyConfig(**strategy), budget, attention)


def assert_citations_slice_documents(corpus, passages):
    docs = corpus.documents([p.doc_id for p in passages])
    for p in passages:
        assert docs[p.doc_id].text[p.start : p.end] == p.text


@pytest.mark.parametrize("name", [n for n in ALL if n != "attention-sort"])
@pytest.mark.parametrize("budget", [40, 120, 2000])
def test_every_strategy_stays_within_budget_and_cites_offsets(corpus, name, budget):
    tools = tools_for(corpus, budget=budget, rag_k=6)
    outcomes = get_strategy(name).run_batch([CAT, VOLCANO], tools)
    assert [o.question.qid for o in outcomes] == ["q-cat", "q-volcano"]
    for outcome in outcomes:
        assert outcome.strategy == name
        if name == "coa" or outcome.route == "rule:coa":  # the whole scope over several calls: the budget bounds each piece
            pieces = [c.passages for c in tools.reader.calls if c.task == "take-notes"]
            assert pieces and all(sum(tools.passage_tokens(p) for p in piece) <= budget for piece in pieces)
        else:
            assert outcome.context.tokens <= budget
        assert sum(tools.passage_tokens(p) for p in outcome.context.passages) == outcome.context.tokens
        assert outcome.prompt_tokens > 0 and outcome.calls >= 1
        assert_citations_slice_documents(corpus, outcome.context.passages)
        if budget >= 120:
            assert outcome.context.passages, f"{name} read nothing with budget {budget}"


def test_rag_reads_top_chunks_best_first(corpus):
    outcome = get_strategy("rag").run_batch([VOLCANO], tools_for(corpus, rag_k=4))[0]
    scores = [p.score for p in outcome.context.passages]
    assert scores == sorted(scores, reverse=True)
    assert outcome.context.passages[0].doc_id == "volcanoes.txt"
    assert outcome.route == "rag" and outcome.calls == 1


def test_reorder_puts_the_two_best_at_the_ends(corpus):
    tools = tools_for(corpus, rag_k=5)
    best_first = get_strategy("rag").run_batch([VOLCANO], tools)[0].context.passages
    reordered = get_strategy("reorder").run_batch([VOLCANO], tools)[0].context.passages
    assert len(reordered) == len(best_first) >= 4
    assert {reordered[0].passage_id, reordered[-1].passage_id} == {best_first[0].passage_id, best_first[1].passage_id}
    assert reordered[len(reordered) // 2].passage_id in {p.passage_id for p in best_first[-2:]}


def test_op_rag_reads_in_document_order_whatever_the_scores(corpus):
    passages = get_strategy("op-rag").run_batch([CAT], tools_for(corpus, rag_k=6))[0].context.passages
    positions = [(corpus.doc_position(p.doc_id), p.start) for p in passages]
    assert positions == sorted(positions)
    assert [p.score for p in passages] != sorted((p.score for p in passages), reverse=True)


def test_longrag_reads_whole_units(corpus):
    outcome = get_strategy("longrag").run_batch([CAT], tools_for(corpus, budget=2000, longrag_k=1))[0]
    unit_id = outcome.context.retrieved_ids[0]
    unit = corpus.units([unit_id])[unit_id]
    assert [(p.doc_id, p.start, p.end) for p in outcome.context.passages] == [(s.doc_id, s.start, s.end) for s in unit.spans]


def test_lc_reads_the_whole_corpus_in_order_when_it_fits(corpus):
    outcome = get_strategy("lc").run_batch([CAT], tools_for(corpus, budget=5000))[0]
    assert [p.doc_id for p in outcome.context.passages] == corpus.doc_ids()
    assert not outcome.context.cut and outcome.context.scope_read == 1.0


def test_lc_keeps_head_and_tail_and_records_the_cut(corpus):
    scope = Question("q", "anything", doc_scope=("bread.md", "cats.md", "rockets.txt"))
    tools = tools_for(corpus, budget=60)
    outcome = get_strategy("lc").run_batch([scope], tools)[0]
    passages = outcome.context.passages
    assert outcome.context.cut and outcome.context.tokens <= 60
    docs = corpus.documents(list(scope.doc_scope))
    kept = sum(p.end - p.start for p in passages)
    assert outcome.context.scope_read == pytest.approx(kept / sum(len(d.text) for d in docs.values()))
    assert 0 < outcome.context.scope_read < 1  # the share read, stated per question
    ordered = sorted(scope.doc_scope, key=corpus.doc_position)
    assert passages[0].doc_id == ordered[0] and passages[0].start == 0  # the head
    last_doc = corpus.documents([ordered[-1]])[ordered[-1]]
    assert passages[-1].doc_id == ordered[-1] and passages[-1].end == len(last_doc.text)  # the tail


def test_attention_sort_moves_the_most_attended_passage_last(corpus):
    attention = ScriptedAttention(favourite_doc="volcanoes.txt")
    tools = tools_for(corpus, attention=attention, rag_k=4, attention_sort_rounds=3)
    outcome = get_strategy("attention-sort").run_batch([VOLCANO], tools)[0]
    assert len(attention.seen) == 3  # one decoding step per round
    assert outcome.context.passages[-1].doc_id == "volcanoes.txt"
    assert outcome.route == "attention-sort"
    # each attention pass prefilled the prompt: charged as tokens and calls beside the read
    assert (outcome.calls, outcome.context.passes) == (4, 3)
    assert outcome.prompt_tokens == 4 * outcome.answer.prompt_tokens > 0


def test_attention_sort_without_weights_says_how_to_get_them(corpus):
    with pytest.raises(RuntimeError, match="setup_reader"):
        get_strategy("attention-sort").run_batch([VOLCANO], tools_for(corpus))


def test_self_route_falls_back_exactly_when_the_first_answer_is_unanswerable(corpus):
    tools = tools_for(corpus, budget=3000, rag_k=2)
    answered, declined = get_strategy("self-route").run_batch([CAT, OFF_TOPIC], tools)
    assert answered.route == "rag" and answered.fell_back is False and answered.calls == 1
    assert declined.route == "rag->lc" and declined.fell_back is True and declined.calls == 2
    assert (answered.steps, declined.steps) == (("self-route", "rag"), ("self-route", "rag", "lc"))
    assert_steps_read_as_routes([answered, declined])
    first_calls = [c for c in tools.reader.calls if c.allow_unanswerable]
    assert len(first_calls) == 2 and len(tools.reader.calls) == 3  # only the declined question is read again
    lc_prompt = tools.reader.calls[-1]
    assert declined.prompt_tokens > lc_prompt.question.count(" ")  # both calls' tokens are counted
    assert declined.answer.text != "unanswerable"


def test_auto_reads_small_corpora_whole_and_routes_large_ones(corpus):
    small = get_strategy("auto").run_batch([CAT], tools_for(corpus, budget=5000))[0]
    assert small.route == "rule:lc" and small.strategy == "auto"
    # over the whole-read limit but within auto_coa_windows budgets: read whole, in pieces
    middle = get_strategy("auto").run_batch([CAT], tools_for(corpus, budget=5000, auto_lc_max_tokens=10))[0]
    assert middle.route == "rule:coa" and middle.calls >= 2 and middle.context.scope_read == 1.0
    large = get_strategy("auto").run_batch([CAT, OFF_TOPIC], tools_for(corpus, budget=5000, auto_lc_max_tokens=10,
                                                                      auto_coa_windows=0))
    assert [o.route for o in large] == ["rule:self-route:rag", "rule:self-route:rag->lc"]
    assert [small.steps, middle.steps] + [o.steps for o in large] == [
        ("auto", "lc"), ("auto", "coa"), ("auto", "self-route", "rag"), ("auto", "self-route", "rag", "lc")]
    assert_steps_read_as_routes([small, middle, *large])


def test_auto_runs_only_the_strategies_it_sends_questions_to(corpus, monkeypatch):
    from lcrag.pipeline.routing import strategies as routing

    def never(self, questions, tools):
        raise AssertionError(f"{self.name} ran with {len(questions)} question(s)")

    for cls in (routing.ChainOfAgentsStrategy, routing.SelfRouteStrategy):
        monkeypatch.setattr(cls, "run_batch", never)
    assert get_strategy("auto").run_batch([CAT], tools_for(corpus, budget=5000))[0].route == "rule:lc"


def test_a_session_builds_the_attention_source_only_when_attention_sort_asks(corpus, monkeypatch):
    from lcrag.pipeline.session import AttentionOnDemand, Session

    built = []

    class Scores:
        def passage_attention(self, prompt):
            return [1.0 / (i + 1) for i in range(len(prompt.passages))]

    def make(config, home):
        built.append(config)
        return Scores()

    monkeypatch.setattr("lcrag.pipeline.session.make_attention", make)
    session = Session(config_from_dict({}), reader=FakeReader())
    tools = session.toolkit(corpus, budget=400)
    assert isinstance(tools.attention, AttentionOnDemand) and built == []
    assert get_strategy("rag").run_batch([CAT], tools)[0].answer.text and built == []  # another strategy: never built
    outcome = get_strategy("attention-sort").run_batch([CAT], tools)[0]
    assert len(built) == 1 and outcome.context.passages  # built on the first ask, and kept
    get_strategy("attention-sort").run_batch([CAT], tools)
    assert len(built) == 1
    assert Session(config_from_dict({}), reader=FakeReader(), attention=None).toolkit(corpus, budget=400).attention is None


def assert_steps_read_as_routes(outcomes):
    """The steps and reason an outcome carries are what its route's text says (as the
    legacy reader of rows recorded before the columns, ledger m009, reads it)."""
    from lcrag.pipeline.ledger.migrations import legacy_route

    for outcome in outcomes:
        assert legacy_route(outcome.strategy, outcome.route) == (outcome.steps, outcome.route_reason), outcome.route


def test_unknown_strategy_lists_the_registry():
    with pytest.raises(UnknownStrategyError, match="rag, longrag, lc"):
        get_strategy("magic")
    assert resolve_names("all") == list(ALL) and "closed-book" not in ALL and "closed-book" in REGISTRY
    assert resolve_names("rag, lc") == ["rag", "lc"]


@pytest.mark.parametrize(
    "reader, strategies, expected",
    [
        (ReaderConfig(max_model_len=8192, max_tokens=64), StrategyConfig(prompt_overhead_tokens=96), 8032),
        (ReaderConfig(max_model_len=8192, max_tokens=64), StrategyConfig(budget_tokens=1500), 1500),
    ],
)
def test_context_budget(reader, strategies, expected):
    assert context_budget(reader, strategies) == expected


def test_every_question_and_strategy_becomes_one_ledger_row(corpus, tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    labels = RunLabels("run-1", corpus.index_id, "cfg", "fake-reader")
    names = ["rag", "lc", "self-route"]
    answer_and_record([CAT, OFF_TOPIC], names, tools_for(corpus, budget=3000), ledger, labels)
    rows = ledger.rows("run-1")
    assert sorted((r.question_id, r.strategy) for r in rows) == sorted((q, s) for q in ("q-cat", "q-off") for s in names)
    self_routed = {r.question_id: r for r in rows if r.strategy == "self-route"}
    assert self_routed["q-off"].calls == 2 and self_routed["q-off"].fell_back is True
    assert all(r.used_ids and r.index_id == corpus.index_id for r in rows)


def test_passage_cost_is_cached_per_span(corpus):
    tools = tools_for(corpus)
    p = Passage("x", "cats.md", 0, 4, "Cats", "Cats")
    assert tools.passage_tokens(p) == tools.passage_tokens(replace(p)) > 0


def test_closed_book_reads_no_context(corpus):
    tools = tools_for(corpus)
    outcome = get_strategy("closed-book").run_batch([CAT], tools)[0]
    assert outcome.context.passages == () and outcome.context.tokens == 0
    assert tools.reader.calls[-1].passages == () and outcome.answer.text


@pytest.mark.parametrize("k", [1, 3, 6])
def test_top_k_variant_reads_k_passages_and_is_recorded_under_its_name(corpus, k):
    outcome = get_strategy(f"op-rag@k{k}").run_batch([CAT], tools_for(corpus, budget=5000, rag_k=2))[0]
    assert outcome.strategy == f"op-rag@k{k}"
    assert len(outcome.context.retrieved_ids) == k and len(outcome.context.passages) == k


@pytest.mark.parametrize("name", ["op-rag@k0", "op-rag@kx", "lc@k3", "magic@k2"])
def test_bad_top_k_variants_name_the_rule(name):
    with pytest.raises(UnknownStrategyError, match="NAME@kN"):
        get_strategy(name)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("all", list(ALL)),
        ("all,closed-book", [*ALL, "closed-book"]),
        ("rag, lc,rag", ["rag", "lc"]),
        ("closed-book,all", ["closed-book", *ALL]),
        ("op-rag@k2,op-rag@k8", ["op-rag@k2", "op-rag@k8"]),
    ],
)
def test_resolve_names(spec, expected):
    assert resolve_names(spec) == expected


@pytest.mark.parametrize("spec", ["", " , ", "all,magic"])
def test_resolve_names_rejects(spec):
    with pytest.raises(UnknownStrategyError):
        resolve_names(spec)


@pytest.mark.parametrize("name", [n for n in ALL if n != "attention-sort"])
def test_may_abstain_reaches_every_prompt_of_every_strategy(corpus, name):
    tools = replace(tools_for(corpus, budget=3000), may_abstain=True)
    outcome = get_strategy(name).run_batch([OFF_TOPIC], tools)[0]
    assert tools.reader.calls and all(p.allow_unanswerable for p in tools.reader.calls)
    assert outcome.answer.text == "unanswerable"  # the fake reader abstains when nothing supports the question


def test_without_may_abstain_plain_strategies_never_offer_abstention(corpus):
    tools = tools_for(corpus, budget=3000)
    get_strategy("rag").run_batch([OFF_TOPIC], tools)
    assert not any(p.allow_unanswerable for p in tools.reader.calls)


def _outcome(text: str):
    from lcrag.pipeline.strategies import Context, Outcome
    from lcrag.readers.base import Answer

    return Outcome(CAT, "rag", "rag", Answer(text, 10, 2, 1.0, "m"), Context((), 0), 10, 2, 1.0, 0.0)


@pytest.mark.parametrize(
    "answer, golds, answerable, expected",
    [
        # (em, f1, recall, abstained, answerable, gold_answers)
        ("Paris", ("Paris",), None, (1.0, 1.0, 1.0, None, None, ("Paris",))),  # no abstention in play
        ("unanswerable", ("Paris",), True, (0.0, 0.0, 0.0, True, True, ("Paris",))),  # wrongly abstained
        ("Paris", ("Paris",), True, (1.0, 1.0, 1.0, False, True, ("Paris",))),
        ("unanswerable", (), False, (1.0, 1.0, 1.0, True, False, ())),  # rightly abstained
        ("Unanswerable.", (), False, (1.0, 1.0, 1.0, True, False, ())),
        ("Berlin", (), False, (0.0, 0.0, 0.0, False, False, ())),  # answered the unanswerable
        ("Berlin", None, None, (None, None, None, None, None, None)),  # unscored
    ],
)
def test_ledger_row_scores_answers_and_abstentions(answer, golds, answerable, expected):
    from lcrag.pipeline.recording import ledger_row

    row = ledger_row(_outcome(answer), RunLabels("r", "i", "c", "m"), golds, answerable)
    assert (row.em, row.f1, row.recall, row.abstained, row.answerable, row.gold_answers) == expected


@pytest.mark.parametrize("room, from_end", [(0, False), (1, False), (5, True), (9, False), (9, True), (500, False)])
def test_fitting_length_is_the_longest_prefix_and_asks_the_tokenizer_once(room, from_end):
    from lcrag.pipeline.strategies.ordering import longest_prefix, longest_suffix
    from tests.conftest import CountingReader

    text = "Volcanoes form where magma reaches the surface of the Earth and lava flows bury towns."
    passage = Passage("d1", "d1", 0, len(text), text, "Volcanoes")
    reader = CountingReader()
    tools = Toolkit(None, reader, StrategyConfig(), 400)
    count = FakeReader().count_tokens
    expected = (longest_suffix if from_end else longest_prefix)(text, room, count)
    assert tools.fitting_length(passage, room, from_end) == expected
    asked = len(reader.counted)
    assert tools.fitting_length(passage, room, from_end) == expected and len(reader.counted) == asked
    kept = text[len(text) - expected:] if from_end else text[:expected]
    assert count(kept) <= room


class FailingOn(FakeReader):
    """Fails (ReaderError) on the questions named, and counts the batches it is sent."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)
        self.batches: list[int] = []

    def read_many(self, prompts):
        self.batches.append(len(prompts))
        return super().read_many(prompts)

    def read(self, prompt):
        from lcrag.readers.base import ReaderError

        if prompt.question in self.failing:
            raise ReaderError("the reader at http://127.0.0.1:1/v1 did not answer within 60 s")
        return super().read(prompt)


def test_reader_failures_become_error_rows_only_when_asked(corpus, tmp_path):
    from lcrag.pipeline.recording import ReaderFailures
    from lcrag.readers.base import ReaderError

    questions = [CAT, VOLCANO, OFF_TOPIC, Question("q-tea", "Is matcha a green tea?")]
    ledger = Ledger(tmp_path / "ledger.duckdb")
    labels = RunLabels.for_corpus(corpus, "run-f", "fake-reader")
    reader = FailingOn(VOLCANO.text)
    tools = Toolkit(corpus, reader, StrategyConfig(), 3000)
    with pytest.raises(ReaderError, match="did not answer"):  # the default: the error propagates, nothing recorded
        answer_and_record(questions, ["rag"], tools, ledger, labels)
    assert ledger.count("run-f") == 0

    failures = ReaderFailures(limit=5)
    results = answer_and_record(questions, ["rag", "self-route"], tools, ledger, labels, failures=failures)
    assert {name: [o.question.qid for o in found] for name, found in results.items()} == {
        name: ["q-cat", "q-off", "q-tea"] for name in ("rag", "self-route")
    }
    rows = {(r.question_id, r.strategy): r for r in ledger.rows("run-f")}
    assert len(rows) == 8 and failures.failed == 2 and not failures.tripped
    for name in ("rag", "self-route"):
        error = rows[("q-volcano", name)]
        assert error.error.startswith("the reader at") and error.config_hash == corpus.fingerprint
        assert (error.answer, error.prompt_tokens, error.calls, error.used_ids) == ("", 0, 0, ())
    assert all(r.error is None and r.used_ids for k, r in rows.items() if k[0] != "q-volcano")
    assert max(reader.batches) == 4 and 2 in reader.batches  # halves kept batching while isolating the failure


def test_reader_failures_trip_after_the_limit_in_a_row(corpus, tmp_path):
    from lcrag.pipeline.recording import ReaderFailures
    from lcrag.readers.base import ReaderError

    questions = [CAT, VOLCANO, OFF_TOPIC]
    ledger = Ledger(tmp_path / "ledger.duckdb")
    tools = Toolkit(corpus, FailingOn(*(q.text for q in questions)), StrategyConfig(), 3000)
    failures = ReaderFailures(limit=2)
    with pytest.raises(ReaderError, match="failed on 2 questions in a row"):
        answer_and_record(questions, ["rag", "lc"], tools, ledger, RunLabels.for_corpus(corpus, "run-t", "m"), failures=failures)
    rows = ledger.rows("run-t")
    assert failures.tripped and len(rows) == 2 and all(r.error and r.strategy == "rag" for r in rows)


@pytest.mark.parametrize("name", ["lc", "rag", "longrag"])
def test_long_options_take_their_tokens_from_the_context_not_past_the_window(corpus, name):
    """L-Eval Coursera's options run to hundreds of tokens: the context shrinks by what the
    question's words take beyond their allowance, so the prompt stays inside the window."""
    short = Question("q-short", "What do cats do?", doc_scope=("bread.md", "cats.md", "rockets.txt"))
    options = tuple(f"option {i}: " + "a long-winded option text about cats and bread " * 6 for i in range(4))
    long = Question("q-long", "What do cats do?", doc_scope=short.doc_scope, options=options)
    tools = tools_for(corpus, budget=120, rag_k=6, longrag_k=2)
    own = tools.reader.count_tokens("\n".join((long.text, *options))) + 3 * len(options)
    assert tools.budget_for(short) == 120 and tools.budget_for(long) == max(1, 120 - (own - QUESTION_ALLOWANCE))
    small, large = (get_strategy(name).run_batch([q], tools)[0] for q in (short, long))
    assert large.context.tokens <= tools.budget_for(long) < small.context.tokens or large.context.tokens == 0
