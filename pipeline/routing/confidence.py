"""How sure the reader was of a reply, from the logprobs the server returned.

Free text: the geometric mean of the reply's token probabilities
(``Answer.confidence``). Multiple choice: the probability of the chosen letter as
the first answer token, which is what the reader actually decided between.
None where the server gave no logprobs: routing then says so instead of guessing.
"""

from __future__ import annotations

import math

from lcrag.pipeline.scoring.choices import parse_choice
from lcrag.pipeline.strategies.base import Question
from lcrag.readers.base import Answer


def first_token_probability(answer: Answer, letter: str | None) -> float | None:
    """The probability the reader gave ``letter`` as its first answer token, from the
    first token's top alternatives; None without logprobs or for several letters."""
    if letter is None or len(letter) != 1 or not answer.first_token_top:
        return None
    mass = sum(math.exp(logprob) for token, logprob in answer.first_token_top if token.strip().strip("(.)").upper() == letter)
    return min(1.0, mass) if mass > 0 else None


def reply_confidence(question: Question, answer: Answer) -> float | None:
    """The confidence routing uses for ``answer`` to ``question`` (see module doc)."""
    if question.options:
        chosen = parse_choice(answer.text, question.options, multi=question.multi_answer)
        probability = first_token_probability(answer, chosen)
        if probability is not None:
            return probability
    return answer.confidence
