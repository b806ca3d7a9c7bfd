"""chain_of_thought when the prompt opened the <think> block: the completion has only </think>."""

from __future__ import annotations

import pytest

from r1lab.rewards.language import chain_of_thought, script_language_reward, world_language_reward


@pytest.mark.parametrize("completion, cot", [
    ("因为 3+4=7 </think> The answer is 7.", "因为 3+4=7 "),  # R1 format: a summary, no <answer>
    ("a </think> b <answer> 7 </answer>", "a "),  # the summary before <answer> is not reasoning either
    ("a </think> b </think> c", "a </think> b "),  # up to the last </think>, like the answer extractors
    ("a </think> <think> b </think> c", "a \n b "),  # a block opened by the prompt, then one of its own
    ("Sure. <think> a </think> b", " a "),  # text before a <think> with no </think> stays out, as before
    ("a b <answer> 7 </answer>", "a b "),  # no tags at all: the text before <answer>, as before
])
def test_chain_of_thought_stops_at_a_close_tag_without_an_opening_one(completion, cot):
    """The text before <answer> was taken, summary included (the whole completion in R1's format)."""
    assert chain_of_thought(completion) == cot


def test_the_summary_does_not_count_against_the_reasoning_language():
    """A Chinese CoT with an English summary after </think> scored 0.5 for target zh (1.0 now)."""
    assert script_language_reward("因为 所以 </think> So it is seven.", target="zh") == 1.0
    assert world_language_reward("First, 2+3=5. </think> Tuka") == 1.0  # Tuka is Velari
