"""The Rubric (r1lab.rewards.rubric) found wrong by the lang3 review: each test failed before its fix."""

from __future__ import annotations

import pytest

from r1lab.rewards import RewardTerm, Rubric, strict_format_reward


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), None, "2"])
def test_a_weight_that_is_no_finite_number_is_refused_naming_the_term(weight):
    """A NaN or inf weight was reported as "reward 'total (weighted sum)' is nan for completion 0"
    ("rewards must be finite numbers"), blaming the model's text; None failed with a bare
    TypeError from the sum, and "2" with "can't multiply sequence"."""
    with pytest.raises(ValueError, match=f"reward term 'format': weight must be a finite number, got {weight!r}"):
        Rubric([RewardTerm("format", strict_format_reward, weight)])


def test_finite_weights_still_weigh_each_term():
    rubric = Rubric([RewardTerm("format", strict_format_reward, 2), RewardTerm("half", strict_format_reward, 0.5)])
    result = rubric(["<think> 3+4=7 </think> <answer> 7 </answer>", "7"], [None, None])
    assert result.total == [2.5, 0.0] and result.means() == {"reward/format": 0.5, "reward/half": 0.5, "reward/total": 1.25}
