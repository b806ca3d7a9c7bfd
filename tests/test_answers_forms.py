"""Answer equality at its edges (r1lab.rewards.math / answer_forms): equations against a number,
unit words after a number, and the majority vote's merging of equal wrong answers."""

from __future__ import annotations


import pytest
from scaling import assert_linear

from r1lab.rewards.math import answers_equal, canonical_answer


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


@pytest.mark.parametrize("pred, gold, expected", [
    ("1,250 dollars", "1250", True),  # GSM8K answers often carry their unit
    ("1250 dollars", "1,250", True),
    ("1 250 cookies", "1250", True),
    ("12 red apples.", "12", True),
    ("5 dollars a day", "5", True),
    ("0.5 dollars", "\\frac{1}{2}", True),  # math-verify decides: it read a product of letters
    ("12 apples", "13", False),
    ("12 apples 13", "12", False),  # not a number and its unit
    ("5 x", "5", False),  # a variable, not a unit
    ("2 pi", "2", False),
    ("5 sin", "5", False),
])
def test_a_number_with_unit_words_is_the_number(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_unit_words_vote_with_their_number():
    assert canonical_answer("1,250 dollars") == canonical_answer("$1250$") == "1250"
    assert canonical_answer("5 x") == "5x"


def test_unit_words_on_degenerate_text_stay_linear():
    def run(k: int) -> None:
        for text in ("5 " + "a" * k + "1", "5" + " abc" * (k * 2 // 5) + "-", "5 " + "ab-" * (k * 2 // 5) + "7"):
            assert canonical_answer(text) != "5"

    assert_linear(run, 6_250)


# The right side of an equation is read as the fast path reads a number: "x = 1,000" is x = 1000
@pytest.mark.parametrize("pred, gold, expected", [
    ("x = 1,000", "1000", True),
    ("x=1,000", "1,000", True),
    ("n = 1,000,000", "10^6", True),
    ("x = \\$1{,}000.50", "\\frac{2001}{2}", True),
    ("x = \u22121,000", "-1000", True),
    ("x = 1,000", "1001", False),
    ("4 = 1,000", "1000", False),  # a false statement stays false
    ("x = 1,234", "(1,234)", False),  # a number, not the pair
])
def test_an_equation_ending_in_a_number_with_thousands_commas(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


# A comma then a space lists numbers: "1, 234" is 1 and 234, not 1234 ("1,\!234" still is 1234)
@pytest.mark.parametrize("pred, gold, expected", [
    ("1, 234", "1234", False),
    ("1125", "1, 125", False),
    ("1,125", "1, 125", False),
    ("1, 125", "1,125", False),
    ("1, 125", "1, 125", True),
    ("1,\\!125", "1125", True),
    ("1,125", "1125", True),
])
def test_a_comma_and_a_space_list_numbers(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_listed_numbers_vote_apart_from_the_number():
    assert canonical_answer("1, 234") == "1, 234" != canonical_answer("1,234") == "1234"
    assert canonical_answer("(1, 2)") == canonical_answer("(1,2)") == "(1,2)"
