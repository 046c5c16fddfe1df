"""Fit a router on one run's routing table, score it where it was not fitted, and
decide whether it is worth installing.

The model is scikit-learn's decision tree, kept shallow (depth 3, leaves of at
least ~7% of the training questions) so ``lcrag route show`` prints it as a handful
of readable rules and a hundred questions do not overfit it. It learns the label of
each question (the cheapest candidate that answered it right) from the features
known before the costly read plus the cheap read's confidence. Questions no
candidate answered right are left out of its training: they carry no information
about which strategy a question needs (labelled with the cheap read, as they once
were, they taught the tree to prefer rag wherever nothing helped, which made it
always-rag). They still count, like every question, when policies are scored.

Held-out scores come from k-fold cross-validation, repeated ``REPEATS`` times with
seeds 0..R-1: each question is routed by a tree fitted on the other folds only,
and its score and prompt tokens are averaged over the repeats. Self-route's
threshold is calibrated per fold on the first repeat's folds only (calibrating is
the slow part). The router is then compared with the best constant policy
(``routing.decision``): when it does not earn its place, ``route fit`` installs
that constant instead, as a one-leaf router. The stored tree is refitted on every
question.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.tree import DecisionTreeClassifier

from lcrag.pipeline.routing.calibrate import calibrate
from lcrag.pipeline.routing.decision import AUTO, CONSTANT, Decision, decide
from lcrag.pipeline.routing.features import FEATURE_NAMES
from lcrag.pipeline.routing.policies import (
    PolicyResult,
    PolicySummary,
    always,
    calibration_items,
    constant_policies,
    oracle,
    routed,
    self_route,
    summarise,
)
from lcrag.pipeline.routing.router import CHOICE_METRIC, FittedRouter, Node
from lcrag.pipeline.routing.table import CHEAP, REFERENCE, Question, RoutingTable
from lcrag.pipeline.statistics.verdict import NON_INFERIORITY_MARGIN, PairKey

MAX_DEPTH = 3
FOLDS = 5
REPEATS = 5  # cross-validation repeats (seeds 0..REPEATS-1) the router's held-out scores are averaged over


def matrix(questions: Sequence[Question]) -> np.ndarray:
    return np.array([[q.features[n] for n in FEATURE_NAMES] for q in questions], dtype=float)


def constant_tree(candidates: Sequence[str], strategy: str, n: int) -> tuple[Node, ...]:
    """One leaf sending every question to ``strategy`` (its counts: ``n`` questions, all
    of them there)."""
    return (Node(-1, 0.0, -1, -1, tuple(float(max(n, 1)) if c == strategy else 0.0 for c in candidates)),)


def fit_tree(table: RoutingTable, questions: Sequence[Question], seed: int = 0) -> tuple[Node, ...]:
    """A shallow tree on the labelled ones of ``questions`` (a subset of ``table``'s),
    as router nodes whose leaf counts follow ``table.candidates``. Questions no
    candidate answered are left out; with none left, one leaf for the cheap read."""
    labelled = [(q, label) for q in questions if (label := table.label(q)) is not None]
    if not labelled:  # a leaf trained on nothing: a tie of zeros, which goes to the cheap read (listed first)
        return (Node(-1, 0.0, -1, -1, (0.0,) * len(table.candidates)),)
    leaf = max(2, len(labelled) // 15)
    model = DecisionTreeClassifier(max_depth=MAX_DEPTH, min_samples_leaf=leaf, random_state=seed)
    model.fit(matrix([q for q, _ in labelled]), [label for _, label in labelled])
    tree = model.tree_
    column = {name: table.candidates.index(name) for name in model.classes_}
    nodes = []
    for i in range(tree.node_count):
        counts = [0.0] * len(table.candidates)
        # value holds class fractions (scikit-learn >= 1.4) or counts; either way the
        # proportions times the node's samples are the counts.
        fractions = tree.value[i][0] / max(tree.value[i][0].sum(), 1e-12)
        for name, share in zip(model.classes_, fractions):
            counts[column[name]] = round(float(share) * int(tree.n_node_samples[i]), 6)
        is_leaf = tree.children_left[i] == -1
        nodes.append(Node(-1 if is_leaf else int(tree.feature[i]), float(tree.threshold[i]) if not is_leaf else 0.0,
                          -1 if is_leaf else int(tree.children_left[i]), -1 if is_leaf else int(tree.children_right[i]),
                          tuple(counts)))
    return tuple(nodes)


def folds(n: int, k: int = FOLDS, seed: int = 0) -> list[np.ndarray]:
    """k disjoint index sets covering range(n) (fewer when n < k), shuffled with ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    return [part for part in np.array_split(order, min(k, n)) if len(part)]


def splits(table: RoutingTable, seed: int = 0):
    """(train, test) questions of each fold of one cross-validation repeat."""
    questions = table.questions
    for held in folds(len(questions), seed=seed):
        held_set = {int(i) for i in held}
        yield ([q for i, q in enumerate(questions) if i not in held_set], [questions[i] for i in sorted(held_set)])


def router_choices(table: RoutingTable, seed: int = 0) -> dict[PairKey, str]:
    """The router's held-out choice per question on one cross-validation repeat:
    each fold is routed by a tree fitted on the other folds."""
    choices = {}
    for train, test in splits(table, seed):
        if not train:  # one question: nothing to learn from, route it to the cheap read
            choices.update({q.key: CHEAP for q in test})
            continue
        model = FittedRouter(classes=table.candidates, nodes=fit_tree(table, train, seed))
        choices.update({q.key: model.choose(q.features) for q in test})
    return choices


def self_route_thresholds(table: RoutingTable, margin: float = NON_INFERIORITY_MARGIN, seed: int = 0
                          ) -> dict[PairKey, float]:
    """Each question's self-route threshold, calibrated on the other folds."""
    thresholds = {}
    for train, test in splits(table, seed):
        keys = {q.key for q in train}
        threshold = calibrate(calibration_items(table, keys), margin).threshold if keys else 0.0
        thresholds.update({q.key: threshold for q in test})
    return thresholds


def cross_validated(table: RoutingTable, margin: float = NON_INFERIORITY_MARGIN, seed: int = 0) -> dict[str, PolicyResult]:
    """The router's and calibrated self-route's held-out choices on one repeat (folds
    shuffled with ``seed``): each fold is routed by what the other folds fitted."""
    return {"router": routed(table, "router", router_choices(table, seed)),
            "self-route": self_route(table, self_route_thresholds(table, margin, seed))}


def repeated_router(table: RoutingTable, repeats: int = REPEATS, seed: int = 0) -> PolicyResult:
    """The router held out on ``repeats`` cross-validation repeats (seeds ``seed`` ..
    ``seed + repeats - 1``): per question its score and prompt tokens averaged over the
    repeats, its destination shares over every repeat, and as its choice the one it
    made most often (equal counts: the earlier candidate)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    runs = [routed(table, "router", router_choices(table, seed + r)) for r in range(repeats)]
    order = {name: rank for rank, name in enumerate(table.candidates)}
    scores, tokens, choices = {}, {}, {}
    for q in table.questions:
        scores[q.key] = sum(run.scores[q.key] for run in runs) / repeats
        tokens[q.key] = sum(run.tokens[q.key] for run in runs) / repeats
        made = Counter(run.choices[q.key] for run in runs)
        choices[q.key] = min(made, key=lambda c: (-made[c], order[c]))
    sent = Counter(c for run in runs for c in run.choices.values())
    total = sum(sent.values())
    return PolicyResult("router", choices, scores, tokens, {k: v / total for k, v in sent.items()})


def policy_summaries(table: RoutingTable, policies: Mapping[str, PolicyResult], margin: float = NON_INFERIORITY_MARGIN,
                     constants: Sequence[PolicyResult] | None = None) -> list[PolicySummary]:
    """Every policy against always-lc, plus always-X for every candidate (the cheap
    read first; ``constants`` when already computed) and the oracle."""
    reference = always(table, REFERENCE)
    results = [*policies.values(), *(constants if constants is not None else constant_policies(table)), oracle(table)]
    return [summarise(r, reference, margin) for r in results]


@dataclass(frozen=True)
class HeldOut:
    """Every policy held out, and what the router's comparison with the best constant
    policy decides."""

    summaries: tuple[PolicySummary, ...]
    decision: Decision
    repeats: int
    folds: int


def held_out(table: RoutingTable, margin: float = NON_INFERIORITY_MARGIN, repeats: int = REPEATS, seed: int = 0,
             install: str = AUTO) -> HeldOut:
    """The router (repeated cross-validation), self-route (calibrated per fold on the
    first repeat), every constant policy and the oracle, each against always-lc; and
    the router against the best constant policy, with what to install."""
    router = repeated_router(table, repeats, seed)
    policies = {"router": router, "self-route": self_route(table, self_route_thresholds(table, margin, seed))}
    constants = constant_policies(table)
    decision = decide(router, constants, margin, install, seed)
    return HeldOut(tuple(policy_summaries(table, policies, margin, constants)), decision, repeats,
                   min(FOLDS, len(table.questions)))


def fit_router(table: RoutingTable, run_id: str, margin: float = NON_INFERIORITY_MARGIN, generation: str = "",
               seed: int = 0, repeats: int = REPEATS, install: str = AUTO) -> FittedRouter:
    """The router to install, with its calibrated self-route threshold and the held-out
    scores of every policy: the tree fitted on every question of ``table``, or, when
    the decision (``scores["decision"]``) is a constant policy, a one-leaf router
    choosing it. When the decision is to install nothing the tree is returned, and
    the caller writes no file."""
    calibration = calibrate(calibration_items(table), margin)
    result = held_out(table, margin, repeats, seed, install)
    decision = result.decision
    scores = {
        "held_out": [s.as_dict() for s in result.summaries],
        "folds": result.folds,
        "repeats": repeats,
        "questions": len(table.questions),
        "without_features": table.without_features,
        "labels": table.label_counts(),
        "no_candidate_answered": table.no_candidate_answered(),
        "margin": margin,
        "calibration": {"threshold": calibration.threshold, "fallback_rate": calibration.fallback_rate,
                        "non_inferior": calibration.non_inferior,
                        "difference": [calibration.difference.mean_diff, calibration.difference.low,
                                       calibration.difference.high]},
        "decision": decision.as_dict(),
    }
    if decision.installed == CONSTANT:
        nodes = constant_tree(table.candidates, decision.strategy, len(table.questions))
    else:
        nodes = fit_tree(table, table.questions, seed)
    return FittedRouter(
        classes=table.candidates, nodes=nodes,
        self_route_threshold=calibration.threshold, run_id=run_id, dataset=table.dataset, metric=table.metric,
        generation=generation, fitted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), scores=scores,
    )


def score_router(router: FittedRouter, table: RoutingTable, margin: float = NON_INFERIORITY_MARGIN) -> list[PolicySummary]:
    """A fitted router and its threshold on another run or data set, as fitted (no refit):
    destinations the table lacks fall back to lc."""
    choices = {}
    for q in table.questions:
        choice = router.choose(q.features)
        choices[q.key] = choice if choice in q.scores else REFERENCE
    # a threshold calibrated on the other answer kind (choices / free text) is not applied: declines only
    own_kind = router.threshold_for(table.metric == CHOICE_METRIC)
    thresholds = {q.key: own_kind or 0.0 for q in table.questions}
    return policy_summaries(table, {"router": routed(table, "router", choices), "self-route": self_route(table, thresholds)},
                            margin)
