"""Prompt layout: what varies with the question comes after the passages, so the
server's prefix cache can serve the passages once for every prompt that reads them."""

from __future__ import annotations

import pytest

from lcrag.readers.base import Passage, Prompt
from lcrag.readers.prompts import MAY_ABSTAIN, SYSTEM, is_unanswerable, messages

PASSAGES = (
    Passage("p1", "etna", 0, 54, "Etna is an active volcano on the east coast of Sicily.", title="Etna"),
    Passage("p2", "vesuvius", 0, 36, "Vesuvius overlooks the Bay of Naples.", title="Vesuvius"),
)


def rendered(prompt: Prompt) -> str:
    """The chat as one string, in the order the server's template lays it out."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages(prompt))


def shared_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


@pytest.mark.parametrize(
    "first, second",
    [
        # self-route's first pass and rag read the same passages
        (Prompt("Where is Etna?", PASSAGES), Prompt("Where is Etna?", PASSAGES, allow_unanswerable=True)),
        # two questions on one document
        (Prompt("Where is Etna?", PASSAGES), Prompt("What overlooks Naples?", PASSAGES)),
        # multiple choice, with and without leave to decline
        (Prompt("What is Etna?", PASSAGES, options=("a volcano", "a river")),
         Prompt("What is Etna?", PASSAGES, options=("a volcano", "a river"), allow_unanswerable=True)),
    ],
)
def test_prompts_over_the_same_passages_share_every_passage_as_prefix(first, second):
    prefix = shared_prefix(rendered(first), rendered(second))
    assert PASSAGES[-1].text in prefix  # the last passage is inside the shared prefix


@pytest.mark.parametrize("allow, present", [(True, True), (False, False)])
def test_leave_to_decline_follows_the_passages_and_precedes_the_question(allow, present):
    system, user = messages(Prompt("Where is Etna?", PASSAGES, allow_unanswerable=allow))
    assert system["content"] == SYSTEM
    assert (MAY_ABSTAIN in user["content"]) is present
    if present:
        text = user["content"]
        assert text.index(PASSAGES[-1].text) < text.index(MAY_ABSTAIN) < text.index("Question: Where is Etna?")
    assert user["content"].endswith("Question: Where is Etna?\nAnswer:")


@pytest.mark.parametrize(
    "reply, declines",
    [
        ("unanswerable", True),
        ("Unanswerable.", True),
        ("The question is unanswerable", True),
        ("Not answerable from the passages", True),
        ("Cannot be answered.", True),
        ("No answer", True),
        ("No answers are wrong here: Sicily", False),
        ("Sicily", False),
        ("It is on the east coast of Sicily, not unanswerable at all really", False),
    ],
)
def test_a_decline_is_told_from_its_first_words(reply, declines):
    assert is_unanswerable(reply) is declines
