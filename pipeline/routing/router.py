"""A fitted router: a small decision tree over ``features.FEATURE_NAMES`` that names
the strategy a question needs, and the calibrated self-route threshold.

Stored as plain JSON beside the index (``router.json`` in the index folder, so it
outlives generations): the tree's nodes are readable, no pickle is loaded, and a
file fitted on other features (names or ``FEATURES_VERSION``) is refused with the
command that refits it. ``lcrag.pipeline.routing`` fits it; this module only reads
and applies it, so ``auto``, ``ask`` and the API need no scikit-learn at query time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lcrag.core.errors import LcragError
from lcrag.core.files import write_text_atomic
from lcrag.pipeline.routing.features import FEATURE_NAMES, FEATURES_VERSION

log = logging.getLogger(__name__)

ROUTER_FILE = "router.json"
FORMAT = "lcrag-router/1"


CHOICE_METRIC = "accuracy"  # the metric of multiple-choice runs (``evaluation.verdict``)


def threshold_fits_kind(fitted_metric: str, is_choice: bool) -> bool:
    """Whether a self-route threshold calibrated on a run scored by ``fitted_metric``
    is on the scale of this answer's confidence. A multiple-choice confidence is the
    chosen letter's probability, a free-text one the reply's mean token probability:
    HotpotQA's calibrated 0.885 sent every TPO question to lc. A router that does not
    record its metric (older files) is taken to match."""
    return not fitted_metric or (fitted_metric == CHOICE_METRIC) == is_choice


class RouterError(LcragError, ValueError):
    """A router file that cannot be used; the message says how to refit it."""


@dataclass(frozen=True)
class Node:
    """A split (``feature`` index, go left when the value is <= ``threshold``) or a
    leaf (``feature`` -1) holding the training questions per class."""

    feature: int
    threshold: float
    left: int
    right: int
    counts: tuple[float, ...]


@dataclass(frozen=True)
class FittedRouter:
    """What ``route fit`` learnt from one run, and how it scored there."""

    classes: tuple[str, ...]  # strategy names the tree can choose; classes[0] is the cheap read
    nodes: tuple[Node, ...]
    feature_names: tuple[str, ...] = FEATURE_NAMES
    features_version: int = FEATURES_VERSION
    self_route_threshold: float | None = None  # fall back to lc below this confidence; None = declines only
    run_id: str = ""
    dataset: str = ""
    metric: str = ""
    generation: str = ""  # the index generation it was fitted on ("" when fitted on a run of many corpora)
    fitted_at: str = ""
    scores: Mapping[str, Any] = field(default_factory=dict)  # held-out results, as route show prints them

    def threshold_for(self, is_choice: bool) -> float | None:
        """The calibrated threshold for an answer of this kind, or None (declines only)
        when it was calibrated on the other kind."""
        return self.self_route_threshold if threshold_fits_kind(self.metric, is_choice) else None

    def __post_init__(self) -> None:
        if not self.classes:
            raise RouterError("a router needs at least one strategy to choose")
        if not self.nodes:
            raise RouterError("a router needs at least one node")
        for i, node in enumerate(self.nodes):
            if node.feature >= 0:
                if node.feature >= len(self.feature_names) or not (0 < node.left < len(self.nodes) and 0 < node.right < len(self.nodes)):
                    raise RouterError(f"router node {i} points outside the tree or the feature list; refit it")
            elif len(node.counts) != len(self.classes):
                raise RouterError(f"router leaf {i} has {len(node.counts)} counts for {len(self.classes)} strategies; refit it")

    @property
    def cheap(self) -> str:
        return self.classes[0]

    @property
    def constant(self) -> str | None:
        """The strategy of a one-leaf router (a constant policy, what ``route fit``
        installs when the tree does not earn its place), else None."""
        return self.choose_leaf(self.nodes[0]) if len(self.nodes) == 1 and self.nodes[0].feature < 0 else None

    def choose(self, features: Mapping[str, float]) -> str:
        """The strategy for a question with these feature values."""
        missing = [n for n in self.feature_names if n not in features]
        if missing:
            raise RouterError(f"router needs features {', '.join(missing)}")
        node = self.nodes[0]
        for _ in range(len(self.nodes)):
            if node.feature < 0:
                break
            value = float(features[self.feature_names[node.feature]])
            node = self.nodes[node.left if value <= node.threshold else node.right]
        return self.choose_leaf(node)

    def rules(self) -> list[str]:
        """The tree as indented if/else lines, for ``route show``."""
        lines: list[str] = []

        def walk(i: int, depth: int) -> None:
            node, pad = self.nodes[i], "  " * depth
            if node.feature < 0:
                total = sum(node.counts) or 1
                share = ", ".join(f"{c} {n / total:.0%}" for c, n in zip(self.classes, node.counts) if n)
                learnt = f"{int(sum(node.counts))} questions: {share}" if share else "no question to learn from"
                lines.append(f"{pad}-> {self.choose_leaf(node)}  ({learnt})")
                return
            name = self.feature_names[node.feature]
            lines.append(f"{pad}if {name} <= {node.threshold:.4g}:")
            walk(node.left, depth + 1)
            lines.append(f"{pad}else:  # {name} > {node.threshold:.4g}")
            walk(node.right, depth + 1)

        walk(0, 0)
        return lines

    def choose_leaf(self, node: Node) -> str:
        """The leaf's majority strategy; a tie goes to the cheaper (earlier) one."""
        return self.classes[max(range(len(self.classes)), key=lambda i: (node.counts[i], -i))]

    def to_json(self) -> str:
        data = asdict(self)
        data["format"] = FORMAT
        data["scores"] = dict(self.scores)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "router file") -> FittedRouter:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RouterError(f"{source} is not JSON ({exc}); refit it with `lcrag route fit`") from exc
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise RouterError(f"{source} is not an {FORMAT} file; refit it with `lcrag route fit`")
        names, version = tuple(data.get("feature_names", ())), data.get("features_version")
        if version != FEATURES_VERSION or names != FEATURE_NAMES:
            raise RouterError(
                f"{source} was fitted on other features (version {version}, {len(names)} features; this lcrag computes "
                f"version {FEATURES_VERSION}, {len(FEATURE_NAMES)} features): refit it with "
                f"`lcrag route fit --run-id {data.get('run_id') or 'RUN'} --index INDEX`"
            )
        try:
            nodes = tuple(Node(int(n["feature"]), float(n["threshold"]), int(n["left"]), int(n["right"]),
                               tuple(float(c) for c in n["counts"])) for n in data.pop("nodes"))
            return cls(nodes=nodes, classes=tuple(data.pop("classes")), feature_names=names, features_version=version,
                       **{k: v for k, v in data.items() if k not in ("feature_names", "features_version")})
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, RouterError):
                raise
            raise RouterError(f"{source} is damaged ({exc}); refit it with `lcrag route fit`") from exc


def router_path(index_root: Path) -> Path:
    """Where an index keeps its fitted router: its own folder, beside its generations."""
    return Path(index_root) / ROUTER_FILE


def save_router(router: FittedRouter, path: Path) -> Path:
    """Write atomically (a crash never leaves half a router)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, router.to_json() + "\n")


def load_router(path: Path) -> FittedRouter | None:
    """The router stored at ``path``; None when there is none. A file fitted on other
    features raises ``RouterError`` naming the refit command."""
    path = Path(path)
    if not path.is_file():
        return None
    return FittedRouter.from_json(path.read_text(encoding="utf-8"), source=str(path))


class RouterFile:
    """The router file of a long-running server: reread when it changes on disk, so a
    `route fit` takes effect without a restart. A file that cannot be used is logged
    (with the refit command) and routing keeps the size rule until it is refitted.
    Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._router: FittedRouter | None = None

    def get(self) -> FittedRouter | None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._router = load_router(self.path) if stamp else None
                except RouterError as err:
                    log.warning("ignoring the router file: %s", err)
                    self._router = None
                self._stamp = stamp
            return self._router
