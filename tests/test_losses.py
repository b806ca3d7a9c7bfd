"""Losses and advantages against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from r1lab.losses import (
    aggregate,
    bradley_terry_loss,
    entropy,
    equal_groups,
    group_advantages,
    grpo_loss,
    kl_k3,
    sft_loss,
    token_logprobs,
)


def test_group_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    std = math.sqrt(1 / 3)  # unbiased std of (1, 0, 0, 1)
    a = group_advantages(r, eps=0.0 + 1e-12)
    torch.testing.assert_close(a[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / std)
    assert torch.equal(a[1], torch.zeros(4))  # equal rewards: zero advantage
    torch.testing.assert_close(group_advantages(r, scale_by_std=False)[0], torch.tensor([0.5, -0.5, -0.5, 0.5]))


def test_a_group_of_equal_fractional_rewards_gets_exactly_zero_advantage():
    """1 + 1 + 0.1 (accuracy, format, language) eight times: the float32 mean is a rounding unit
    off, which / (std + 1e-4) made a -0.0024 push on every sample; its std was not even 0 alone."""
    r = torch.full((1, 8), 1.0 + 1.0 + 0.1)
    assert float(r.mean() - r[0, 0]) != 0.0 and equal_groups(r).tolist() == [True]
    assert torch.equal(group_advantages(r), torch.zeros(1, 8))
    assert torch.equal(group_advantages(r, scale_by_std=False), torch.zeros(1, 8))
    mixed = torch.tensor([[2.1, 2.1, 1.0, 2.1]])
    assert equal_groups(mixed).tolist() == [False] and (group_advantages(mixed) != 0).all()


def test_a_group_of_one_sample_gets_zero_advantage_not_nan():
    """G = 1: nothing to compare against. The unbiased std of one value is NaN, and 0 / NaN made
    every advantage (and so the loss) NaN."""
    r = torch.tensor([[1.0], [0.0]])  # (P=2, G=1)
    assert torch.equal(group_advantages(r), torch.zeros(2, 1))
    assert torch.equal(group_advantages(r, scale_by_std=False), torch.zeros(2, 1))


def test_kl_k3_by_hand_and_zero_at_equality():
    logp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    r = 0.25 / 0.5
    torch.testing.assert_close(kl_k3(logp, ref), torch.tensor([r - math.log(r) - 1]))
    assert kl_k3(ref, ref).abs().max() == 0


def test_ratio_one_and_kl_zero_when_policy_equals_old_and_reference():
    logp = torch.log(torch.rand(3, 5))
    adv = torch.tensor([1.0, -2.0, 0.5])
    mask = torch.ones(3, 5)
    out = grpo_loss(logp, logp.clone(), adv, mask, kl_coef=0.1, ref_logp=logp.clone())
    assert out.ratio_mean.item() == pytest.approx(1.0)
    assert out.kl.item() == 0 and out.clip_fraction.item() == 0
    assert out.loss.item() == pytest.approx(-adv.mean().item())  # -mean(A) with seq_mean


def test_clipping_by_hand():
    old = torch.log(torch.full((2, 1), 0.5))
    new = torch.log(torch.tensor([[0.9], [0.1]]))  # ratios 1.8 and 0.2
    adv = torch.tensor([1.0, -1.0])
    out = grpo_loss(new, old, adv, torch.ones(2, 1), clip_eps_low=0.2, clip_eps_high=0.28)
    # row 0: min(1.8, 1.28) * 1 = 1.28; row 1: min(0.2 * -1, 0.8 * -1) = -0.8 -> loss = -(1.28 - 0.8) / 2
    assert out.loss.item() == pytest.approx(-(1.28 - 0.8) / 2, abs=1e-6)
    assert out.clip_fraction.item() == pytest.approx(1.0)


def test_clip_fraction_counts_only_tokens_where_the_min_took_the_clipped_term():
    """A ratio outside [1 - eps, 1 + eps] is not clipped when the min takes the unclipped term (rho > 1
    with A < 0, rho < 1 with A > 0); masked tokens count in neither clip fraction nor ratio mean."""
    old = torch.log(torch.full((4, 2), 0.5))
    # ratios 1.8, 0.2, 1.8, 0.2; the masked tokens' (100 or 0.02) would all be clipped
    new = torch.log(torch.tensor([[0.9, 50.0], [0.1, 0.01], [0.9, 0.01], [0.1, 50.0]]))
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    mask = torch.tensor([[1.0, 0.0]] * 4)
    out = grpo_loss(new, old, adv, mask, clip_eps_low=0.2, clip_eps_high=0.28)
    # rows 0, 1 clipped: min(1.8, 1.28) = 1.28, min(-0.2, -0.8) = -0.8; rows 2, 3 not: min(-1.8, -1.28) = -1.8,
    # min(0.2, 0.8) = 0.2
    assert out.clip_fraction.item() == pytest.approx(2 / 4)
    assert out.ratio_mean.item() == pytest.approx((1.8 + 0.2 + 1.8 + 0.2) / 4)
    assert out.loss.item() == pytest.approx(-(1.28 - 0.8 - 1.8 + 0.2) / 4, abs=1e-6)


def test_raising_logprob_of_positive_advantage_lowers_loss():
    old = torch.log(torch.full((2, 3), 0.3))
    adv = torch.tensor([1.0, -1.0])
    mask = torch.ones(2, 3)
    base = grpo_loss(old.clone(), old, adv, mask).loss
    up = old.clone()
    up[0] += 0.05  # more likely: the good sample
    assert grpo_loss(up, old, adv, mask).loss < base
    logp = old.clone().requires_grad_(True)
    grpo_loss(logp, old, adv, mask).loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # descent raises the good, lowers the bad


def test_aggregations_by_hand():
    per_token = torch.tensor([[1.0, 1.0, 0.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate(per_token, mask, "seq_mean").item() == pytest.approx((1.0 + 4.0) / 2)
    assert aggregate(per_token, mask, "token_mean").item() == pytest.approx(6.0 / 3)
    assert aggregate(per_token, mask, "constant", max_len=4).item() == pytest.approx(6.0 / (2 * 4))
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(per_token, mask, "sum")


def test_seq_mean_leaves_fully_masked_rows_out():
    """DAPO's overlong filtering masks whole rows; seq_mean averages over the rows left (counting
    the masked one as 0 would shrink the loss, and the update, by the truncation rate)."""
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    loss = aggregate(per_token, mask, "seq_mean")
    assert loss.item() == pytest.approx((1.5 + 8.0) / 2)  # rows 0 and 2: (1 + 2) / 2 and (7 + 8 + 9) / 3
    loss.backward()
    torch.testing.assert_close(per_token.grad, torch.tensor([[0.25, 0.25, 0.0], [0.0, 0.0, 0.0],
                                                             [1 / 6, 1 / 6, 1 / 6]]))
    assert aggregate(per_token, torch.zeros(3, 3), "seq_mean").item() == 0.0  # nothing unmasked: 0, not NaN
    # token_mean and constant are unchanged: all unmasked tokens / 5; sum / (N * max_len) with N = 3
    assert aggregate(per_token, mask, "token_mean").item() == pytest.approx(27.0 / 5)
    assert aggregate(per_token, mask, "constant", max_len=4).item() == pytest.approx(27.0 / (3 * 4))


def test_masked_tokens_do_not_count():
    logp = torch.log(torch.rand(2, 4))
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    other = logp.clone()
    other[0, 2:] = 0.0  # change only masked positions
    adv = torch.tensor([1.0, -1.0])
    a = grpo_loss(logp, logp.detach() - 0.1, adv, mask).loss
    b = grpo_loss(other, logp.detach() - 0.1, adv, mask).loss
    assert a.item() == pytest.approx(b.item())


def test_entropy_of_logits_with_banned_tokens_is_finite():
    """A -inf logit (a token masked out) has p = 0 and adds 0 to the entropy; p * log p was
    0 * -inf = NaN."""
    logits = torch.tensor([[[0.0, float("-inf"), 0.0]]])  # (1, 1, 3): two equally likely tokens
    torch.testing.assert_close(entropy(logits), torch.tensor([[math.log(2.0)]]))


def test_grpo_loss_refuses_advantages_of_another_shape():
    """Advantages as an (N, 1) column (or group_advantages' (P, G) unflattened) broadcast against
    the (N, T) ratios into an (N, N, T) loss: a 4x wrong number here, and no error."""
    logp, mask = torch.log(torch.full((4, 3), 0.5)), torch.ones(4, 3)
    advantages = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert grpo_loss(logp, logp, advantages, mask).loss.item() == pytest.approx(-0.25)
    for bad in (advantages[:, None], advantages.view(2, 2)):
        with pytest.raises(ValueError, match=r"advantages must be \(N,\)"):
            grpo_loss(logp, logp, bad, mask)


def test_grpo_loss_refuses_one_sequence_given_as_a_vector():
    """logp (T,) with per-token advantages (T,) passed the shape checks and broadcast into a (T, T)
    loss: one sequence at ratio 1 with A = 1 everywhere gave -3 (T = 3), not -1, and no error."""
    logp, mask, advantages = torch.tensor([-1.0, -2.0, -0.5]), torch.ones(3), torch.ones(3)
    with pytest.raises(ValueError, match=r"logp must be \(N, T\).*got \(3,\)"):
        grpo_loss(logp, logp, advantages, mask)
    # as one row of three tokens, with its one advantage: the surrogate is -A
    assert grpo_loss(logp[None], logp[None], advantages[:1], mask[None]).loss.item() == pytest.approx(-1.0)


def test_token_logprobs_entropy_sft_and_bradley_terry():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])  # (1, 2, 2)
    tokens = torch.tensor([[1, 0]])
    torch.testing.assert_close(token_logprobs(logits, tokens), torch.tensor([[math.log(0.5), math.log(0.75)]]))
    torch.testing.assert_close(entropy(logits)[0, 0], torch.tensor(math.log(2.0)))
    p = torch.tensor([0.75, 0.25])
    torch.testing.assert_close(entropy(logits)[0, 1], -(p * p.log()).sum())
    hot = token_logprobs(logits * 2, tokens, temperature=2.0)  # temperature divides the logits
    torch.testing.assert_close(hot, token_logprobs(logits, tokens))
    torch.testing.assert_close(entropy(logits * 2, temperature=2.0), entropy(logits))
    mask = torch.tensor([[0.0, 1.0]])  # only the second token is a response token
    assert sft_loss(logits, tokens, mask).item() == pytest.approx(-math.log(0.75))
    assert bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(
        -math.log(1 / (1 + math.exp(-2.0))))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_reward_is_refused_not_turned_into_nan_advantages(bad):
    """A NaN (or inf: inf - inf) reward made its group's advantages NaN, then the loss and, after
    the optimizer step, every weight, with no error."""
    with pytest.raises(ValueError, match="rewards must be finite"):
        group_advantages(torch.tensor([[1.0, bad, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="rewards must be finite"):
        group_advantages(torch.tensor([[1.0, bad]]), scale_by_std=False)


# GRPO loss statistics against hand-computed values.
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


# integer and bool rewards: advantages as for the same rewards in float
@pytest.mark.parametrize("scale_by_std", [True, False])
def test_integer_and_bool_rewards_give_the_advantages_of_their_float_values(scale_by_std):
    as_int = torch.tensor([[1, 0, 0, 1], [2, 2, 2, 2]])
    expected = group_advantages(as_int.float(), scale_by_std=scale_by_std)
    assert expected[0, 0] > 0 and torch.equal(expected[1], torch.zeros(4))
    torch.testing.assert_close(group_advantages(as_int, scale_by_std=scale_by_std), expected)
    torch.testing.assert_close(group_advantages(as_int[:1].bool(), scale_by_std=scale_by_std), expected[:1])


# eps = 0 (the paper's A = (r - mean) / std, no eps): an equal group still gets advantage 0
def test_equal_group_gets_zero_advantage_without_eps():
    r = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    a = group_advantages(r, eps=0.0)
    assert torch.equal(a[0], torch.zeros(3))  # was 0 / 0 = NaN
    std = math.sqrt(1 / 3)  # unbiased std of (1, 0, 0)
    torch.testing.assert_close(a[1], torch.tensor([2 / 3, -1 / 3, -1 / 3]) / std)


# one group as a 1-D tensor (G,): the advantages of the same rewards as a (1, G) row
@pytest.mark.parametrize("scale_by_std", [True, False])
def test_one_group_as_a_vector_gets_its_row_advantages(scale_by_std):
    r = torch.tensor([1.0, 0.0, 0.0, 1.0])
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5]) / (math.sqrt(1 / 3) + 1e-4 if scale_by_std else 1.0)
    torch.testing.assert_close(group_advantages(r, scale_by_std=scale_by_std), expected)
    assert torch.equal(group_advantages(torch.full((4,), 2.0), scale_by_std=scale_by_std), torch.zeros(4))


# the reference log-probs must be shaped like logp: the whole batch's against a one-row minibatch
def test_grpo_loss_refuses_reference_logprobs_of_another_shape():
    logp, mask, adv = torch.log(torch.full((1, 3), 0.5)), torch.ones(1, 3), torch.tensor([1.0])
    ref = torch.log(torch.tensor([[0.5] * 3, [0.25] * 3]))  # (2, 3): broadcast into a loss of -2 + KL, not -1
    assert grpo_loss(logp, logp, adv, mask, kl_coef=0.1, ref_logp=ref[:1]).loss.item() == pytest.approx(-1.0)
    for bad in (ref, ref[0], ref[:1, :1]):
        with pytest.raises(ValueError, match="ref_logp must be"):
            grpo_loss(logp, logp, adv, mask, kl_coef=0.1, ref_logp=bad)


# clip-higher is asymmetric: eps_high bounds a rising ratio (A > 0), eps_low a falling one (A < 0); the
# defaults are R1's symmetric eps = 0.2. Each side alone: summed, (1.28, 0.8) and swapped (1.2, 0.72) agree.
def test_each_clip_bound_uses_its_own_eps_and_the_defaults_are_symmetric():
    old, mask = torch.log(torch.full((1, 1), 0.5)), torch.ones(1, 1)
    up, down = torch.log(torch.tensor([[0.9]])), torch.log(torch.tensor([[0.1]]))  # ratios 1.8 and 0.2
    good, bad = torch.tensor([1.0]), torch.tensor([-1.0])
    dapo = dict(clip_eps_low=0.2, clip_eps_high=0.28)
    assert grpo_loss(up, old, good, mask, **dapo).loss.item() == pytest.approx(-1.28)  # -min(1.8, 1.28)
    assert grpo_loss(down, old, bad, mask, **dapo).loss.item() == pytest.approx(0.8)  # -min(-0.2, -0.8)
    assert grpo_loss(up, old, good, mask).loss.item() == pytest.approx(-1.2)
    assert grpo_loss(down, old, bad, mask).loss.item() == pytest.approx(0.8)


# the default aggregation is R1's: each output's token mean, then the mean over outputs
def test_grpo_loss_default_is_the_mean_over_outputs_of_their_token_means():
    logp = torch.log(torch.full((2, 3), 0.5))
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([1.0, -0.5])
    # ratio 1: -A on every token; (-1 + 0.5) / 2, where a token mean would give (-1 + 3 * 0.5) / 4 = 0.125
    assert grpo_loss(logp, logp.clone(), adv, mask).loss.item() == pytest.approx(-0.25)


# a group of two samples is scaled by its std like any other (only a group of one has none)
def test_a_group_of_two_is_divided_by_its_std():
    a = group_advantages(torch.tensor([[1.0, 0.0], [3.0, 1.0]]))
    s0, s1 = math.sqrt(0.5) + 1e-4, math.sqrt(2.0) + 1e-4  # unbiased std of (1, 0) and (3, 1), + eps
    torch.testing.assert_close(a, torch.tensor([[0.5 / s0, -0.5 / s0], [1.0 / s1, -1.0 / s1]]))


# k3 is exact while |log r| <= 20, held at the bound beyond it (finite, no gradient), as verl clamps
def test_kl_k3_is_exact_inside_the_clamp_and_held_at_its_bound_beyond():
    logp = torch.tensor([-15.0, 0.0, -30.0, -200.0], requires_grad=True)
    ref = torch.tensor([0.0, -15.0, 0.0, 0.0])  # log r = 15, -15, 30, 200
    kl = kl_k3(logp, ref)
    at_bound = math.exp(20) - 20 - 1
    torch.testing.assert_close(kl, torch.tensor([math.exp(15) - 16, math.exp(-15) + 14, at_bound, at_bound]))
    kl.sum().backward()
    assert logp.grad[2:].tolist() == [0.0, 0.0]


# SFT averages over response tokens (a long answer weighs by its length), not over sequences
def test_sft_loss_is_the_mean_over_all_response_tokens():
    logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[math.log(3.0), 0.0], [math.log(3.0), 0.0]]])
    labels = torch.tensor([[1, 1], [0, 0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # 1 token of row 0 (p = 1/2), 2 of row 1 (p = 3/4 each)
    expected = (math.log(2.0) - 2 * math.log(0.75)) / 3  # per sequence: (log 2 - log 0.75) / 2
    assert sft_loss(logits, labels, mask).item() == pytest.approx(expected)


# Bradley-Terry: the mean over pairs, not the sum
def test_bradley_terry_loss_is_the_mean_over_pairs():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-2.0)) + math.log(2.0)) / 2)


# rewards of another shape are refused: (2,) chosen against a reward head's (2, 1) column broadcast into
# 4 pairs, (2 - 0, 0 - 0, 2 - 1, 0 - 1), and gave their mean with no error
def test_bradley_terry_loss_refuses_rewards_of_another_shape():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    pair_mean = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0))) / 2  # pairs (2, 0) and (0, 1)
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(pair_mean)
    assert bradley_terry_loss(chosen[:, None], rejected[:, None]).item() == pytest.approx(pair_mean)
    with pytest.raises(ValueError, match=r"same shape \(one reward per pair\), got \(2,\) and \(2, 1\)"):
        bradley_terry_loss(chosen, rejected[:, None])


# bf16 logits at T = 1 skip the float32 copy, but the log-probs still come out float32 (ratios of
# bf16 log-probs would carry ~3 significant digits)
def test_bf16_logits_give_float32_logprobs_entropy_and_sft_loss():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]]).bfloat16()
    tokens = torch.tensor([[1, 0]])
    out = token_logprobs(logits, tokens)
    assert out.dtype == torch.float32 and entropy(logits).dtype == torch.float32
    assert torch.equal(out, token_logprobs(logits.float(), tokens))
    mask = torch.ones(1, 2)  # the SFT loss too is a float32 cross-entropy of the bf16 values
    assert sft_loss(logits, tokens, mask).dtype == torch.float32
    assert torch.equal(sft_loss(logits, tokens, mask), sft_loss(logits.float(), tokens, mask))


# The gradient by hand: d/dlogp of -min(rho A, clip(rho) A) is -rho A where the min takes a term that
# moves with rho (inside the clip range, or the unclipped side), 0 where the clip holds it; the KL adds
# kl_coef * (1 - pi_ref / pi_theta). seq_mean: / 3 tokens / 2 rows.
def test_grpo_loss_gradient_by_hand():
    old, ref = torch.log(torch.full((2, 3), 0.5)), torch.log(torch.full((2, 3), 0.5))
    p = torch.tensor([[0.55, 0.9, 0.25], [0.45, 0.1, 0.75]])  # ratios 1.1, 1.8, 0.5 and 0.9, 0.2, 1.5
    adv = torch.tensor([1.0, -1.0])
    logp = p.log().requires_grad_(True)
    grpo_loss(logp, old, adv, torch.ones(2, 3), kl_coef=0.1, ref_logp=ref).loss.backward()
    rho = p / 0.5
    moves = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])  # 1.8 (A > 0) and 0.2 (A < 0) are clipped
    expected = (-rho * adv[:, None] * moves + 0.1 * (1 - 0.5 / p)) / 6
    torch.testing.assert_close(logp.grad, expected)


# equal rewards are compared exactly: rewards float32 units apart are a (tiny) signal, not an equal group
def test_rewards_a_few_rounding_units_apart_are_not_an_equal_group():
    d = 2**-22  # two float32 units at 1 (one unit's mean would round), far inside torch.isclose's tolerance
    r = torch.tensor([[1.0, 1.0 + d]])
    assert equal_groups(r).tolist() == [False]
    a = group_advantages(r)  # centered -+d / 2, unbiased std d / sqrt(2)
    torch.testing.assert_close(a, torch.tensor([[-d / 2, d / 2]]) / (d / math.sqrt(2) + 1e-4))
