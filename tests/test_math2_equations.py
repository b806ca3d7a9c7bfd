"""An equation as the final answer against a gold that is a value (r1lab.rewards.math): it states the
value only when solved for its unknown(s); a half-solved or copied equation is not the answer."""

from __future__ import annotations

import pytest

from r1lab.rewards.math import accuracy_reward, answers_equal


@pytest.mark.parametrize("pred, gold, expected", [
    ("2x=10", "10", False),  # math-verify read the right side: x was never solved for
    ("2x = 10", "10", False),
    ("x^2=4", "4", False),
    ("\\frac{x}{2}=5", "5", False),  # math-verify takes x/2 for "symbols only"
    ("-x=5", "5", False),
    ("x = 10", "10", True),  # an assignment states the answer
    ("x_1=5", "5", True),
    ("a+b=7", "7", True),  # "find a+b": a left side of symbols only still counts
    ("x = 2+3 = 5", "5", True),
    ("2+3=5", "5", True),
    ("2x=10", "x=5", False),  # against an equation gold, math-verify compares equations
    ("y = 2x + 3", "y = 2x + 3", True),
])
def test_an_equation_counts_only_when_solved_for_its_unknown(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_accuracy_reward_pays_no_copied_equation():
    completion = "<think>\nWe have 2x = 10.\n</think>\n\nSo $\\boxed{2x=10}$."
    assert accuracy_reward(completion, {"answer": "10"}) == 0.0
    assert accuracy_reward(completion.replace("2x=10", "x=5"), {"answer": "5"}) == 1.0
