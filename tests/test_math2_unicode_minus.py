"""The typeset minus sign U+2212 is a minus (r1lab.rewards.answer_forms / math): models copy it from
typeset text, and majority voting and the checker must read "−5" as they read "-5"."""

from __future__ import annotations

import pytest

from r1lab.rewards.math import accuracy_reward, answers_equal, canonical_answer

MINUS = "\u2212"


@pytest.mark.parametrize("answer, form", [
    (f"{MINUS}5", "-5"),  # "−5" and "-5" must vote together in cons@k
    (f"{MINUS}1,000", "-1000"),
    (f"{MINUS}0.5", "-1/2"),
    (f"{MINUS}\\frac{{1}}{{2}}", "-\\frac{1}{2}"),
])
def test_canonical_answer_reads_the_unicode_minus_as_a_minus(answer, form):
    assert canonical_answer(answer) == form


@pytest.mark.parametrize("pred, gold, expected", [
    (f"{MINUS}1,000", "-1000", True),  # math-verify read the set {-1, 0}
    (f"{MINUS}1,000", "1000", False),
    (f"x = {MINUS}\\frac{{1}}{{2}}", "-0.5", True),
    (f"{MINUS}5", "5", False),
])
def test_answers_with_the_unicode_minus(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_accuracy_reward_with_the_unicode_minus():
    completion = f"<think>\nIt drops by 1,000.\n</think>\n\nThe change is $\\boxed{{{MINUS}1,000}}$."
    assert accuracy_reward(completion, {"answer": "-1000"}) == 1.0
