"""Answer equality at its edges (r1lab.rewards.math / answer_forms): equations against a number,
unit words after a number, and the majority vote's merging of equal wrong answers."""

from __future__ import annotations


import random
from decimal import Decimal
from fractions import Fraction

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


# A number and its unit set in text together are the number, as with the unit alone in text: math-verify
# read "\\text{18 dollars}" as one word, so a right GSM8K answer scored 0 where "18 \\text{ dollars}" scored 1
@pytest.mark.parametrize("pred, gold, expected", [
    ("\\text{18 dollars}", "18", True),
    ("\\text{18 dollars}", "\\$18", True),
    ("\\text{-3 degrees}", "-3", True),
    ("\\text{3.5 hours}", "3.5", True),
    ("\\text{3.5 hours}", "3", False),
    ("\\text{18 hours 30 minutes}", "18", False),  # not a number and its unit
    ("\\text{5 sin}", "5", False),  # a maths word is no unit
])
def test_a_number_with_its_unit_in_text_is_the_number(pred, gold, expected):
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


# Normal forms of numbers and percentages: every written form of one number shares a normal form
# ("%" and "\%" alike), and two different numbers or percentages never do.
@pytest.mark.parametrize("answer, expected", [
    ("50%", "50\\%"), ("50\\%", "50\\%"), ("$50.0\\%$", "50\\%"), ("50 percent", "50\\%"),
    ("1,000%", "1000\\%"), ("12.50%", "25/2\\%"), ("-5 \\%", "-5\\%"),
    ("1, 234%", "1,234%"),  # a list, not the percentage 1234%
    ("x%", "x%"), ("%", "%"),
])
def test_percentages_have_one_normal_form(answer, expected):
    assert canonical_answer(answer) == expected


def _written_forms(number: str) -> dict[str, str]:
    """Ways to write the decimal `number`, by what they mean: "n" the number, "p" the percentage."""
    sign, digits = ("-", number[1:]) if number.startswith("-") else ("", number)
    whole, dot, frac = digits.partition(".")
    groups = [whole[max(i - 3, 0):i] for i in range(len(whole), 0, -3)][::-1]
    with_sep = {sep: sign + sep.join(groups) + dot + frac for sep in (",", "\\,", "\\!", " ", "{,}")}
    forms = {f"${number}$": "n", f"\\text{{{number}}}": "n", f"{with_sep[',']} dollars": "n",
             f"\\${with_sep[',']}": "n", number.replace("-", "\u2212"): "n", f"{number}{'' if dot else '.'}0": "n",
             f"{number}%": "p", f"{number}\\%": "p", f"{with_sep[',']} percent": "p"}
    return {number: "n", **{form: "n" for form in with_sep.values()}, **forms}


def test_forms_of_random_numbers_merge_only_when_equal():
    rng = random.Random(0)
    numbers = set()
    while len(numbers) < 300:
        value = rng.choice([rng.randint(-10**7, 10**7), rng.randint(-1000, 1000), rng.randint(0, 20)])
        places = rng.choice([0, 0, 1, 2, 3])
        numbers.add(format(Decimal(value).scaleb(-places), "f"))
    meaning_of: dict[str, tuple[str, Fraction]] = {}
    for number in sorted(numbers):
        for form, kind in _written_forms(number).items():
            meaning = (kind, Fraction(number))
            assert meaning_of.setdefault(canonical_answer(form), meaning) == meaning, form
    assert len(meaning_of) == 2 * len({Fraction(n) for n in numbers})


# a list before a percent sign is no percentage: "1, 234%" is not 1234 (nor 12.34), as "1, 234" is not
@pytest.mark.parametrize("pred, gold", [("1, 234%", "1234"), ("1234", "1, 234%"), ("1, 234\\%", "12.34")])
def test_a_list_before_a_percent_sign_is_no_percentage(pred, gold):
    assert not answers_equal(pred, gold)


def test_answer_forms_doctests():
    import doctest

    import r1lab.rewards.answer_forms as forms

    assert doctest.testmod(forms).failed == 0


# The normal form (canonical_answer, which majority voting groups by): what it removes, and what it keeps.
@pytest.mark.parametrize("answer, form", [
    ("\\(\\frac{1}{2}\\)", "\\frac{1}{2}"), ("\\[ 5 \\]", "5"), ("$x+1$", "x+1"),  # math delimiters go
    ("\\frac{1}{2}.", "\\frac{1}{2}"), ("x+1.", "x+1"),  # a trailing period goes, number or not
    ("12 3456", "12 3456"), ("1 2345", "1 2345"),  # a gap before 4 digits is no thousands separator
    ("\\leftarrow", "\\leftarrow"), ("\\rightarrow", "\\rightarrow"),  # commands, not \left / \right
])
def test_the_normal_form_of_an_answer(answer, form):
    assert canonical_answer(answer) == form


@pytest.mark.parametrize("pred, gold, expected", [
    ("12 3456", "123456", False),  # two numbers, not one
    ("8", "3 5", False),  # a gold listing two numbers equals no one number, as a prediction does not
    ("\u22121,000 \\text{ dollars}", "-1000", True),  # U+2212 before a number with its unit
    ("\u22121,000 \\text{ dollars}", "1000", False),
    ("AB = BC = 1,000", "1000", True),  # the last side of a chain of equations is the value
    ("AB = BC = 1,000", "100", False),
])
def test_answers_equal_at_the_edges_of_the_fast_path(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


# Words set in text between two numbers refuse only a one-number gold ("5 \text{ hours } 30 \text{ minutes}"
# is not 5); against a gold listing both numbers math-verify decides.
@pytest.mark.parametrize("pred, gold, expected", [
    ("2 \\text{ and } 3", "2, 3", True),
    ("2 \\text{ and } 3", "2, 4", False),
    ("2 \\text{ and } 3", "2", False),
])
def test_words_between_two_numbers_against_a_list_gold(pred, gold, expected):
    assert answers_equal(pred, gold) is expected
