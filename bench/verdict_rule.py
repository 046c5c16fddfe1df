"""Operating characteristics of the verdict rule, by simulation (seeded).

Paired 0/1 outcomes for lc and k cheaper strategies at distinct costs; each cheaper one
is truly worse than lc by ``gap`` (0.05 = the margin: recommending it is the error the
rule controls at 2.5%; 0 = equal: recommending it is the power). Writes
bench/results/verdict-rule.json and .md.

    python bench/verdict_rule.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from lcrag.pipeline.statistics.verdict import decide

RESULTS = Path(__file__).resolve().parent / "results"


def simulate(n: int, k: int, gap: float, runs: int, discordance: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    b, c = (discordance + gap) / 2, (discordance - gap) / 2
    hits = 0
    for _ in range(runs):
        lc = rng.random(n) < 0.6
        scores = {"lc": dict(enumerate(lc.astype(float)))}
        for i in range(k):
            u = rng.random(n)
            scores[f"s{i}"] = dict(enumerate(np.where(lc, u >= b / 0.6, u < c / 0.4).astype(float)))
        costs = {"lc": 8000.0} | {f"s{i}": 1000.0 * (i + 1) for i in range(k)}
        answers = {name: {q: f"{name}{v}" for q, v in per.items()} for name, per in scores.items()}
        verdict = decide(scores, costs, margin=0.05, answers=answers)
        hits += verdict.resolved and "lc" not in verdict.use
    return hits / runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args(argv)
    records = []
    for k in (1, 3):
        for discordance in (0.15, 0.30):
            for n in (100, 200, 400, 800):
                for gap, what in ((0.05, "false recommendation"), (0.0, "power")):
                    rate = simulate(n, k, gap, args.runs, discordance, seed=n * 10 + k)
                    se = math.sqrt(max(rate * (1 - rate), 1e-9) / args.runs)
                    records.append({"cheaper": k, "discordance": discordance, "questions": n, "true_gap": gap,
                                    "measures": what, "rate": rate, "se": se, "runs": args.runs})
                    print(json.dumps(records[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "verdict-rule.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = ["# Verdict rule: operating characteristics (simulated)", "",
             f"{args.runs} seeded runs per cell; lc right on 60% of questions; margin 0.05, alpha 0.025.",
             "`false` = a cheaper strategy recommended when every cheaper one is truly 0.05 worse (nominal <= 0.025);",
             "`power` = a cheaper strategy recommended when all are truly equal.", "",
             "| cheaper strategies | discordance | questions | false | power |", "|---:|---:|---:|---:|---:|"]
    for k in (1, 3):
        for d in (0.15, 0.30):
            for n in (100, 200, 400, 800):
                cell = {r["measures"]: r["rate"] for r in records
                        if r["cheaper"] == k and r["discordance"] == d and r["questions"] == n}
                lines.append(f"| {k} | {d:.2f} | {n} | {cell['false recommendation']:.3f} | {cell['power']:.2f} |")
    (RESULTS / "verdict-rule.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
