"""Judges found wrong in review (r1lab.judges): each test failed before its fix."""

from __future__ import annotations

import pytest

from r1lab.judges import parse_verdict


@pytest.mark.parametrize("reply", ["Yes or no: no", "Yes/No", "yes or no", "<think>\nhm\n</think>\nYes - no, 7 is not 8."])
def test_a_judge_echoing_the_instruction_is_no_yes(reply):
    """The first word was all that was read, so a judge that parroted "Reply with yes or no"
    marked every prediction correct."""
    assert parse_verdict(reply) is False


def test_a_clear_yes_still_reads_as_yes():
    assert [parse_verdict(r) for r in ("Yes.", "**Yes**, it matches.", "<think>\n7 = 7\n</think>\nyes")] == [True] * 3
