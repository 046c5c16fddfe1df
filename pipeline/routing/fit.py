"""Fit a router on one run's routing table, and score it where it was not fitted.

The model is scikit-learn's decision tree, kept shallow (depth 3, leaves of at
least ~7% of the questions) so ``lcrag route show`` prints it as a handful of
readable rules and a hundred questions do not overfit it. It learns the label of
each question (the cheapest candidate that answered it right) from the features
known before the costly read plus the cheap read's confidence.

Held-out scores come from k-fold cross-validation: each question is routed by a
tree (and a self-route threshold) fitted on the other folds only. The stored
router is then refitted on every question.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np
from sklearn.tree import DecisionTreeClassifier

from lcrag.pipeline.answer.features import FEATURE_NAMES
from lcrag.pipeline.answer.router import CHOICE_METRIC, FittedRouter, Node
from lcrag.pipeline.evaluation.verdict import NON_INFERIORITY_MARGIN, PairKey
from lcrag.pipeline.routing.calibrate import calibrate
from lcrag.pipeline.routing.policies import (
    PolicyResult,
    PolicySummary,
    always,
    calibration_items,
    oracle,
    routed,
    self_route,
    summarise,
)
from lcrag.pipeline.routing.table import CHEAP, REFERENCE, Question, RoutingTable

MAX_DEPTH = 3
FOLDS = 5


def matrix(questions: Sequence[Question]) -> np.ndarray:
    return np.array([[q.features[n] for n in FEATURE_NAMES] for q in questions], dtype=float)


def fit_tree(table: RoutingTable, questions: Sequence[Question], seed: int = 0) -> tuple[Node, ...]:
    """A shallow tree on ``questions`` (a subset of ``table``'s), as router nodes whose
    leaf counts follow ``table.candidates``."""
    labels = [table.label(q) for q in questions]
    leaf = max(2, len(questions) // 15)
    model = DecisionTreeClassifier(max_depth=MAX_DEPTH, min_samples_leaf=leaf, random_state=seed)
    model.fit(matrix(questions), labels)
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


def cross_validated(table: RoutingTable, margin: float = NON_INFERIORITY_MARGIN, seed: int = 0) -> dict[str, PolicyResult]:
    """The router's and calibrated self-route's held-out choices: each fold is routed by
    what the other folds fitted."""
    questions = table.questions
    router_choice: dict[PairKey, str] = {}
    thresholds: dict[PairKey, float] = {}
    for held in folds(len(questions), seed=seed):
        held_set = set(int(i) for i in held)
        train = [q for i, q in enumerate(questions) if i not in held_set]
        test = [questions[i] for i in sorted(held_set)]
        if not train:  # one question: nothing to learn from, route it to the cheap read
            router_choice.update({q.key: CHEAP for q in test})
            thresholds.update({q.key: 0.0 for q in test})
            continue
        model = FittedRouter(classes=table.candidates, nodes=fit_tree(table, train, seed))
        threshold = calibrate(calibration_items(table, {q.key for q in train}), margin).threshold
        for q in test:
            router_choice[q.key] = model.choose(q.features)
            thresholds[q.key] = threshold
    return {"router": routed(table, "router", router_choice), "self-route": self_route(table, thresholds)}


def policy_summaries(table: RoutingTable, policies: Mapping[str, PolicyResult], margin: float = NON_INFERIORITY_MARGIN
                     ) -> list[PolicySummary]:
    """Every policy against always-lc, plus always-rag, always-lc and the oracle."""
    reference = always(table, REFERENCE)
    results = [*policies.values(), always(table, CHEAP), reference, oracle(table)]
    return [summarise(r, reference, margin) for r in results]


def fit_router(table: RoutingTable, run_id: str, margin: float = NON_INFERIORITY_MARGIN, generation: str = "",
               seed: int = 0) -> FittedRouter:
    """The router fitted on every question of ``table``, with its calibrated self-route
    threshold and the cross-validated scores of every policy."""
    calibration = calibrate(calibration_items(table), margin)
    held_out = policy_summaries(table, cross_validated(table, margin, seed), margin)
    labels = [table.label(q) for q in table.questions]
    scores = {
        "held_out": [s.as_dict() for s in held_out],
        "folds": min(FOLDS, len(table.questions)),
        "questions": len(table.questions),
        "without_features": table.without_features,
        "labels": {c: labels.count(c) for c in table.candidates},
        "margin": margin,
        "calibration": {"threshold": calibration.threshold, "fallback_rate": calibration.fallback_rate,
                        "non_inferior": calibration.non_inferior,
                        "difference": [calibration.difference.mean_diff, calibration.difference.low,
                                       calibration.difference.high]},
    }
    return FittedRouter(
        classes=table.candidates, nodes=fit_tree(table, table.questions, seed),
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
