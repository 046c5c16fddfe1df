"""The letter-bias section of the report, as Markdown lines and an HTML fragment.

Formatting only: every number and every decision (which strategies are above
chance, the best one, the letters nobody got right) comes from
``lcrag.pipeline.statistics.letter_bias``. The layout is in ``templates/letters.html.j2``
and ``letters.md.j2`` (the table style follows the report's: ``table-wrap``, ``tr.best``,
``ul.findings``, ``p.note``); escaping comes from ``markup``, as for every section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lcrag.pipeline.report.markup import md_lines, render
from lcrag.pipeline.statistics.letter_bias import (
    ALPHA,
    CONTROL,
    LetterFindings,
    LetterProfile,
    letter_findings,
)

HEADERS = (
    "Strategy",
    "n",
    "Accuracy",
    "Chance baseline",
    "p (above chance)",
    "Letters chosen",
    "Accuracy by gold letter",
)

NOTE = ("Chance baseline: the accuracy of an answerer that picks letters with the strategy's own frequencies "
        "(unparseable replies never match) regardless of the question, on its questions' gold letters. "
        "p: one-sided exact binomial test of the hits against that baseline.")


def heading(dataset: str) -> str:
    return f"Letter bias: {dataset}"


def fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def chosen_text(profile: LetterProfile) -> str:
    """``"A 90, B 5, none 5"``."""
    return ", ".join(f"{choice} {count}" for choice, count in profile.chosen.items())


def by_gold_text(profile: LetterProfile) -> str:
    """``"A 3/11, B 8/24, C 20/36, D 0/29"``."""
    return ", ".join(f"{letter} {hits}/{questions}" for letter, (hits, questions) in profile.accuracy_by_gold.items())


def cells(profile: LetterProfile) -> tuple[str, ...]:
    """One table row as plain text, in ``HEADERS`` order."""
    return (
        profile.strategy,
        str(profile.n),
        f"{profile.accuracy:.3f}",
        f"{profile.chance:.3f}",
        fmt_p(profile.p_above_chance),
        chosen_text(profile),
        by_gold_text(profile),
    )


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def sentences(findings: LetterFindings, profiles: Mapping[str, LetterProfile]) -> list[str]:
    """One plain-text sentence per notable finding."""
    out: list[str] = []
    level = f"p < {findings.alpha:g}"
    if findings.above:
        out.append(f"Above their chance baseline ({level}): {_names(findings.above)}.")
    else:
        out.append(f"No strategy is above its chance baseline ({level}).")
    if findings.constant is not None and findings.best:
        letter, accuracy = findings.constant
        always = " or ".join(f'"{x}"' for x in letter.split("="))
        who = (f"the best strategy, {findings.best[0]}, scores" if len(findings.best) == 1
               else f"the best strategies, {_names(findings.best)}, score")
        out.append(f"Always answering {always} scores {accuracy:.3f} on the questions {findings.best[0]} answered; "
                   f"{who} {findings.best_accuracy:.3f} ({findings.best_vs_constant} it).")
    for letter, (fewest, most) in findings.never_right.items():
        count = f"{most}" if fewest == most else f"{fewest}–{most}"
        out.append(f"No strategy got a gold-{letter} question right ({count} such questions per strategy).")
    if findings.control is not None and findings.control_top is not None:
        p = profiles[findings.control].p_above_chance
        top, times, n = findings.control_top
        habit = " or ".join(f'"{x}"' for x in top.split("="))
        if findings.control_guessing:
            out.append(f"{findings.control} is not above its chance baseline (p = {fmt_p(p)}; it answered {habit} "
                       f"{times} of {n} times): its hits are guesses, not questions answerable without the context.")
        else:
            out.append(f"{findings.control} is above its chance baseline (p = {fmt_p(p)}): the reader answers some "
                       "questions without the context.")
    return out


# ------------------------------------------------------------------- templates


def letter_view(
    dataset: str, profiles: Mapping[str, LetterProfile], control: str = CONTROL, alpha: float = ALPHA
) -> dict:
    """What both templates show for one data set, as plain text: the heading and, when it
    has answers (else ``rows`` is None), the note, the table, which rows are the best
    strategies (bold in HTML) and the findings."""
    view: dict = {"dataset": dataset, "heading": heading(dataset), "rows": None}
    if profiles:
        findings = letter_findings(profiles, control, alpha)
        view.update(note=NOTE, headers=HEADERS, rows=[cells(p) for p in profiles.values()],
                    best={i for i, p in enumerate(profiles.values()) if p.strategy in findings.best},
                    sentences=sentences(findings, profiles))
    return view


def letter_markdown(
    dataset: str, profiles: Mapping[str, LetterProfile], control: str = CONTROL, alpha: float = ALPHA
) -> list[str]:
    """A heading line, the letter table and one bullet per finding."""
    return md_lines(render("letters.md.j2", section=letter_view(dataset, profiles, control, alpha)))


def letter_html(
    dataset: str, profiles: Mapping[str, LetterProfile], control: str = CONTROL, alpha: float = ALPHA
) -> str:
    """The same as ``letter_markdown``: a ``<section>`` fragment, every text escaped."""
    return render("letters.html.j2", section=letter_view(dataset, profiles, control, alpha))
