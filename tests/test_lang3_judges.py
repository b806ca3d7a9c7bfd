"""Judges (r1lab.judges) found wrong by the lang3 review: each test failed before its fix."""

from __future__ import annotations

import pytest

from r1lab.judges import parse_verdict


@pytest.mark.parametrize("reply, verdict", [
    ("<think>\nIs it <answer>yes</answer>? 7 is not 8.\n</think>\nNo.", False),  # was True: a wrong sample kept
    ("<think>\nFirst guess: <answer>no</answer>. Wait, 7 = 7.\n</think>\nYes.", True),  # was False
    ("<think>\nhm <answer>no</answer>\n</think>\n<answer>yes</answer>", True),  # an answer block after the reasoning
    ("<think>\n<answer>yes</answer>\n</think>\n<answer>no</answer>", False),
    ("<think>\nok\n</think>\nyes<|eos|></think>no", True),  # what follows the end of the reply is not read
])
def test_the_verdict_is_read_after_the_judges_reasoning(reply, verdict):
    """An <answer> block inside the judge's <think> was read as its verdict, over the reply after
    </think> that the docstring says is read."""
    assert parse_verdict(reply) is verdict
