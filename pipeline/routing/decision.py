"""Whether a fitted router earns its place, and what ``route fit`` installs.

A router is only worth its tree if it does better than sending every question to
one strategy. The yardstick is the best constant policy: among always-X for every
candidate X, the highest held-out mean score; equal means go to fewer mean prompt
tokens; constants still equal are a tie, reported as such and never broken by name.

The router earns its place when the paired interval of (router - best constant),
per question held out and averaged over the cross-validation repeats, has its
lower bound above 0 (it beats it), or above -margin (non-inferior, the verdict
rule) while the router reads fewer mean prompt tokens. Otherwise the best constant
is installed instead (a one-leaf router); when several are tied, the cheap read
if it is among them, else nothing. ``--install tree|constant|none`` overrides the
rule; the assessment is recorded either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lcrag.pipeline.routing.policies import CONSTANT_PREFIX, PolicyResult
from lcrag.pipeline.routing.table import CHEAP
from lcrag.pipeline.statistics.intervals import PairedDifference, paired_difference
from lcrag.pipeline.statistics.verdict import LEVEL, NON_INFERIOR, NON_INFERIORITY_MARGIN, outcome_of

AUTO, TREE, CONSTANT, NONE = "auto", "tree", "constant", "none"
INSTALL_CHOICES = (AUTO, TREE, CONSTANT, NONE)
RESAMPLES = 10_000  # the router against the best constant: one interval that decides, so a fine one
TIE_TOLERANCE = 1e-9  # means closer than this are equal (sums of the same per-question values)


def _mean(values) -> float:
    items = list(values)
    return sum(items) / len(items)


def signed(x: float) -> str:
    """+0.05, −0.02 (a true minus), 0.00 without a sign."""
    text = f"{x:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text.replace("-", "\u2212")


def interval_text(d: PairedDifference) -> str:
    return f"{signed(d.mean_diff)} [{signed(d.low)}, {signed(d.high)}]"


def best_constants(constants: Sequence[PolicyResult]) -> tuple[str, ...]:
    """The best constant policies' names: highest mean score, then fewest mean prompt
    tokens; several when still equal (in the order given), never broken by name."""
    if not constants:
        raise ValueError("no constant policies to compare")
    stats = [(c.name, _mean(c.scores.values()), _mean(c.tokens.values())) for c in constants]
    top = max(score for _, score, _ in stats)
    best = [s for s in stats if s[1] >= top - TIE_TOLERANCE]
    fewest = min(tokens for _, _, tokens in best)
    return tuple(name for name, _, tokens in best if tokens <= fewest + TIE_TOLERANCE)


def strategy_of(policy: str) -> str:
    """always-rag -> rag."""
    return policy[len(CONSTANT_PREFIX):] if policy.startswith(CONSTANT_PREFIX) else policy


@dataclass(frozen=True)
class Decision:
    installed: str  # TREE, CONSTANT or NONE
    policy: str  # "router", a constant ("always-rag"), or "" when nothing is installed
    best_constant: tuple[str, ...]  # several: tied in mean score and mean prompt tokens
    against: str  # the best constant ``difference`` is against (when tied, the one least favourable to the router)
    difference: PairedDifference  # (router - against), held out, averaged over the repeats per question
    router_tokens: float  # mean prompt tokens, held out
    constant_tokens: float
    earns_place: bool
    assessment: str  # what the comparison shows
    reason: str  # the assessment and what was installed
    requested: str = AUTO
    margin: float = NON_INFERIORITY_MARGIN

    @property
    def strategy(self) -> str | None:
        """The installed constant's strategy (rag for always-rag), else None."""
        return strategy_of(self.policy) if self.installed == CONSTANT else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["best_constant"] = list(self.best_constant)
        data["difference"] = {**asdict(self.difference), "against": self.against, "level": LEVEL,
                              "resamples": RESAMPLES}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        diff = dict(data["difference"])
        against = diff.pop("against", data.get("against", ""))
        for extra in ("level", "resamples"):
            diff.pop(extra, None)
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in ("difference", "against")}
        return cls(**{**fields, "best_constant": tuple(data.get("best_constant", ())), "against": against,
                      "difference": PairedDifference(**diff)})


def assess(router: PolicyResult, constants: Sequence[PolicyResult], margin: float = NON_INFERIORITY_MARGIN,
           seed: int = 0) -> tuple[tuple[str, ...], str, PairedDifference, bool, str]:
    """(best constants, the one compared against, router - it, earns its place, what
    that says). Against tied best constants the router must earn its place against
    each: the comparison kept is the least favourable (lowest lower bound)."""
    best = best_constants(constants)
    by_name = {c.name: c for c in constants}
    diffs = {name: paired_difference(router.scores, by_name[name].scores, resamples=RESAMPLES, level=LEVEL, seed=seed)
             for name in best}
    against = min(best, key=lambda name: (diffs[name].low, diffs[name].mean_diff))  # min keeps the first of equals
    diff = diffs[against]
    router_tokens = _mean(router.tokens.values())
    constant_tokens = _mean(by_name[against].tokens.values())
    ratio = router_tokens / constant_tokens if constant_tokens else float("inf")
    named = against if len(best) == 1 else f"the tied best constant policies ({', '.join(best)})"
    shown = f"difference {interval_text(diff)}" + ("" if len(best) == 1 else f" against {against}")
    if diff.low > 0:
        return best, against, diff, True, f"the router beats {named} ({shown})"
    non_inferior = outcome_of(diff, margin) == NON_INFERIOR
    if non_inferior and router_tokens < constant_tokens:
        return best, against, diff, True, (f"the router is non-inferior to {named} ({shown}, margin {margin:.2f}) "
                                          f"at {ratio:.2f}\u00d7 its prompt tokens")
    # non-inferior at as many tokens or more is no reason to keep a tree: the prompt tokens are shown beside it
    return best, against, diff, False, f"the router does not beat {named} ({shown})"


def decide(router: PolicyResult, constants: Sequence[PolicyResult], margin: float = NON_INFERIORITY_MARGIN,
           install: str = AUTO, seed: int = 0) -> Decision:
    """What to install (see the module doc), and why, in one sentence."""
    if install not in INSTALL_CHOICES:
        raise ValueError(f"install must be one of {', '.join(INSTALL_CHOICES)}, got {install!r}")
    best, against, diff, earns, assessment = assess(router, constants, margin, seed)
    cheap = f"{CONSTANT_PREFIX}{CHEAP}"
    if len(best) == 1:
        constant, why_not = best[0], ""
    elif cheap in best:
        constant, why_not = cheap, ""
    else:
        constant, why_not = "", (f"the best constant policies ({', '.join(best)}) are tied in mean score and prompt "
                                 f"tokens and none is the cheap read ({CHEAP}), so there is no constant to install")
    asked = "" if install == AUTO else f" as asked (--install {install})"
    if install == TREE or (install == AUTO and earns):
        installed, policy, action = TREE, "router", f"installing the router{asked}"
    elif install == NONE:
        installed, policy, action = NONE, "", f"installing nothing{asked}"
    elif constant:
        tied = "" if len(best) == 1 else f", the cheap read among the tied best ({', '.join(best)})"
        installed, policy, action = CONSTANT, constant, f"installing {constant}{asked}{tied}"
    else:
        installed, policy, action = NONE, "", f"installing nothing: {why_not}"
    router_tokens = _mean(router.tokens.values())
    constant_tokens = _mean(next(c for c in constants if c.name == against).tokens.values())
    return Decision(installed, policy, best, against, diff, router_tokens, constant_tokens, earns, assessment,
                    f"{assessment}; {action}", install, margin)
