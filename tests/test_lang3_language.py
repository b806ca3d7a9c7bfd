"""Language-consistency rewards (r1lab.rewards.language): what a CoT without words scores, as the
docstrings now say (lang3 review; docs and tests only, no behaviour change)."""

from __future__ import annotations

import pytest

from r1lab.rewards.language import chain_of_thought, script_language_reward, world_language_reward


@pytest.mark.parametrize("completion, cot", [
    ("", ""),
    ("<think></think> <answer> 10 </answer>", ""),
    ("<think> 2+3=5, 5*2=10. </think> <answer> 10 </answer>", " 2+3=5, 5*2=10. "),
    ("10", "10"),  # no tags: the whole turn is read as the reasoning
])
def test_a_cot_without_words_scores_1(completion, cot):
    """Numbers and operators are neutral and nothing else is there: no word is in another language."""
    assert chain_of_thought(completion) == cot
    assert world_language_reward(completion, target="vl") == 1.0 and world_language_reward(completion) == 1.0
    assert script_language_reward(completion, target="zh") == 1.0 and script_language_reward(completion) == 1.0


def test_one_word_in_a_numeric_cot_decides_it():
    """The neutral tokens are not counted either way: one Velari word among numbers scores 0 for English."""
    completion = "<think> 2+3=5, Pori 5*2=10. </think> <answer> 10 </answer>"
    assert world_language_reward(completion) == 0.0 and world_language_reward(completion, target="vl") == 1.0
