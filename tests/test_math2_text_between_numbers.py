"""Two numbers with words in \\text{} between them are not the first number (r1lab.rewards.answer_forms):
math-verify reads "5 \\text{ hours } 30 \\text{ minutes}" as 5, which paid it against the gold 5."""

from __future__ import annotations

import time

import pytest

from r1lab.rewards.answer_forms import fast_verdict
from r1lab.rewards.math import accuracy_reward, answers_equal, canonical_answer


@pytest.mark.parametrize("pred, gold, expected", [
    ("5 \\text{ hours } 30 \\text{ minutes}", "5", False),
    ("5 \\text{ dollars and } 6 \\text{ cents}", "5", False),
    ("5 \\text{ apples and } 3 \\text{ pears}", "5", False),
    ("5 \\mathrm{ m } 20 \\mathrm{ cm}", "5", False),
    ("5 \\text{ hours}", "5", True),  # one number and its unit still counts
    ("5 \\text{ cm}^2", "5", True),
    ("1,250\\,\\text{km}", "1250", True),
    ("5 \\text{ hours } 30 \\text{ minutes}", "5 \\text{ hours } 30 \\text{ minutes}", True),
])
def test_words_between_two_numbers(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_accuracy_reward_pays_no_first_number_of_two():
    completion = "<think>\n330 minutes.\n</think>\n\n$\\boxed{5 \\text{ hours } 30 \\text{ minutes}}$"
    assert accuracy_reward(completion, {"answer": "5"}) == 0.0
    assert accuracy_reward(completion, {"answer": "6"}) == 0.0


def test_the_check_stays_linear_on_an_unclosed_text_group():
    start = time.perf_counter()
    assert canonical_answer("1\\text{" + "a" * 50_000) == "1\\text{" + "a" * 50_000
    assert fast_verdict("1\\text{" + "a" * 50_000, "1") is None  # math-verify decides
    assert time.perf_counter() - start < 2.0
