"""GRPO loss statistics against hand-computed values (review helper grpo2)."""

from __future__ import annotations

import math

import pytest
import torch

from r1lab.losses import grpo_loss

K = 0.5 - math.log(0.5) - 1  # k3 of one token with pi_ref / pi_theta = 0.5


@pytest.mark.parametrize("how, expected", [
    ("seq_mean", (K / 3 + K) / 2),  # row 0: (K + 0 + 0) / 3; row 1: K; row 2 fully masked, left out
    ("token_mean", 2 * K / 4),  # 4 unmasked tokens
    ("constant", 2 * K / (3 * 4)),  # N = 3 rows (masked one too), max_len = 4
])
def test_logged_kl_is_aggregated_like_the_loss(how, expected):
    """The KL statistic was a token mean whatever the aggregation: with seq_mean (R1: KL_i averaged
    over each output's tokens, then over outputs) it weighed long outputs more than the loss does,
    and loss != policy_loss + kl_coef * kl."""
    logp = torch.log(torch.full((3, 3), 0.5))
    ref = logp.clone()
    ref[0, 0] = ref[1, 0] = math.log(0.25)
    ref[2] = math.log(0.01)  # a large KL on the fully masked row: must not count
    ref[1, 1:] = math.log(0.01)  # and on the padding of row 1
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, -1.0, 0.5])
    out = grpo_loss(logp, logp.clone(), adv, mask, kl_coef=0.1, ref_logp=ref, aggregation=how, max_len=4)
    assert out.kl.item() == pytest.approx(expected, rel=1e-5)
    assert out.loss.item() == pytest.approx(out.policy_loss.item() + 0.1 * out.kl.item(), rel=1e-5)
