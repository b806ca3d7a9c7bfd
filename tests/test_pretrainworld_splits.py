"""problem_set's error when one kind/difficulty pair runs out of distinct problems."""

import pytest

from r1lab.world import ARITHMETIC, PRETRAIN, problem_set
from r1lab.world.arithmetic import ArithmeticConfig

# 2..5 then +/- 1..2 or *2..9, values within 1..12: 26 two-operand chains (24 in the pretrain
# split) and 125 three-operand ones (104 in it), counted by enumerating every chain
SMALL = ArithmeticConfig(max_first=5, max_operand=2, max_value=12)


def test_running_out_names_the_exhausted_difficulty_not_a_total():
    # 100 asked, 50 of each difficulty in turn: the 24 two-operand problems run out, though the
    # split holds 128 of these kinds and difficulties; the old message said "only about 48"
    with pytest.raises(ValueError, match=r"only about 24 distinct problems of kind arithmetic and difficulty 2\b"):
        problem_set(PRETRAIN, 100, kinds=(ARITHMETIC,), difficulties={ARITHMETIC: (2, 3)}, arithmetic=SMALL)


def test_every_distinct_problem_of_a_difficulty_is_found():
    problems = problem_set(PRETRAIN, 24, kinds=(ARITHMETIC,), difficulties={ARITHMETIC: (2,)}, arithmetic=SMALL)
    assert len({p.canonical for p in problems}) == 24
    assert all(p.split == PRETRAIN and p.difficulty == 2 for p in problems)
