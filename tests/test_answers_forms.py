"""Answer equality at its edges (r1lab.rewards.math / answer_forms): equations against a number,
unit words after a number, and the majority vote's merging of equal wrong answers."""

from __future__ import annotations

import pytest

from r1lab.rewards.math import answers_equal, check_answers


@pytest.mark.parametrize("pred, gold, expected", [
    ("4=5", "5", False),  # a false statement, not the answer 5 (math-verify read its right side)
    ("1+1=3", "3", False),
    ("4=5=5", "5", False),
    ("x=5", "5", True),  # an assignment states the answer
    ("x = 2+3 = 5", "5", True),
    ("2+3=5", "5", True),  # a true computation ending in the answer
    ("5=5", "5", True),
    ("3=\\frac12", "\\frac12", False),
    ("4=5", "x=5", False),
])
def test_an_equation_with_a_constant_left_side_must_hold(pred, gold, expected):
    assert answers_equal(pred, gold) is expected
