"""Countdown's rule reads an expression of the task only, not whatever Python would parse."""

import pytest

from r1lab import world


@pytest.mark.parametrize("expression", [
    "1_2+3",  # a digit separator: Python's 12, never written by the world
    "12+3 # 99",  # a comment hides the rest
    "12+3#",
    "(12+\n3)",  # a line break inside brackets
])
def test_text_python_reads_as_an_expression_is_no_solution(expression):
    assert world.countdown.evaluate_expression(expression) is None
    assert not world.is_solution(expression, (12, 3), 15)


def test_surrounding_whitespace_is_still_accepted():
    assert world.countdown.evaluate_expression(" 12 + 3\n") == (15, [12, 3])
    assert world.is_solution("(12+3) ", (12, 3), 15)
