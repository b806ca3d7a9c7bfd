"""Losses and advantages as small pure tensor functions (no modules, no state).

Shapes: G samples per prompt, N = rows (prompts x G), T = completion tokens (right-padded, with
a 0/1 `mask`). Sources: R1 §2.2.1 (GRPO), Dr. GRPO (arXiv 2503.20783), DAPO (arXiv 2503.14476);
see ../shared/R1-FACTS.md, "GRPO".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSS_AGGREGATIONS = ("seq_mean", "token_mean", "constant")


def equal_groups(rewards: torch.Tensor) -> torch.Tensor:
    """rewards (P, G) -> (P,) bool: the groups whose rewards are all equal (no signal to learn
    from). Compared exactly: a float32 std of equal values such as 2.1 can come out ~2e-7."""
    return rewards.amax(dim=-1) == rewards.amin(dim=-1)


def group_advantages(rewards: torch.Tensor, *, scale_by_std: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """rewards (P, G), or one group (G,) -> advantages of the same shape:
    A_i = (r_i - mean(r)) / (std(r) + eps) within each group (R1 §2.2.1), std the sample (unbiased,
    n - 1) one, as TRL's. `scale_by_std=False` keeps r_i - mean(r) (Dr. GRPO). A group whose
    rewards are all equal gets advantage exactly 0 for every sample, whatever eps (its float32 mean
    can be a rounding unit off, which the division by std + eps would turn into a push of ~2e-3 in
    an arbitrary direction; with eps = 0, 0 / 0).
    A group of one sample is such a group: its unbiased std is NaN, read as 0 (not NaN advantages).
    A NaN or inf reward is refused: it would turn its group's advantages, and the loss, into NaN.
    Integer or bool rewards (0/1 correctness) give float32 advantages, as their float values would."""
    if not rewards.is_floating_point():  # mean() and std() refuse integer and bool tensors
        rewards = rewards.float()
    if not rewards.isfinite().all():
        raise ValueError(f"group_advantages: rewards must be finite, got {rewards[~rewards.isfinite()].tolist()}")
    equal = equal_groups(rewards).unsqueeze(-1)  # (P, 1), or (1,) for one group (G,)
    centered = (rewards - rewards.mean(dim=-1, keepdim=True)).masked_fill(equal, 0.0)
    if not scale_by_std:
        return centered
    if rewards.shape[-1] < 2:
        return centered  # (P, 1) of zeros; std with one degree of freedom would be NaN (and warn)
    # an equal group's std is 0: with eps = 0 its zero advantages would be 0 / 0 = NaN
    std = rewards.std(dim=-1, keepdim=True, unbiased=True).masked_fill(equal, 1.0)
    return centered / (std + eps)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref): r - log r - 1 with r = pi_ref / pi_theta;
    unbiased and always >= 0 (R1 §2.2.1). log r is clamped to [-20, 20] (as verl does), so exp
    cannot overflow: a token farther from the reference keeps the value at the bound, with no gradient."""
    log_ratio = (ref_logp - logp).clamp(-20, 20)
    return log_ratio.exp() - log_ratio - 1


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, how: str, max_len: int | None = None) -> torch.Tensor:
    """(N, T) per-token losses -> scalar.

    seq_mean:   mean over each sequence's tokens, then over the sequences that have any unmasked
                token (GRPO as in the paper). A fully masked row (DAPO's overlong filtering, arXiv
                2503.14476) is left out of the mean: counted as 0 it would shrink the update by the
                truncation rate. No unmasked token at all: 0;
    token_mean: mean over every token of the batch (DAPO: long answers weigh by their length);
    constant:   sum over tokens / (N * max_len), a length-independent normaliser (Dr. GRPO); masked
                rows still count in N, as the normaliser is a constant by definition."""
    if how == "seq_mean":
        has_tokens = mask.sum(-1) > 0  # (N,)
        per_seq = masked_mean(per_token, mask, dim=-1)  # (N,); 0 on fully masked rows
        return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1)
    if how == "token_mean":
        return masked_mean(per_token, mask)
    if how == "constant":
        return (per_token * mask).sum() / (per_token.shape[0] * (max_len or per_token.shape[1]))
    raise ValueError(f"loss aggregation must be one of {LOSS_AGGREGATIONS}, got {how!r}")


def aggregation_count(mask: torch.Tensor, how: str) -> torch.Tensor:
    """What `aggregate` divides by, as a count of items: sequences with a loss token (seq_mean),
    loss tokens (token_mean) or rows (constant). Data-parallel processes weigh their losses by it,
    so that their averaged gradients are those of `aggregate` over the union of their rows."""
    if how == "seq_mean":
        return (mask.sum(-1) > 0).sum()
    if how == "token_mean":
        return mask.sum()
    if how == "constant":
        return torch.tensor(mask.shape[0])
    raise ValueError(f"loss aggregation must be one of {LOSS_AGGREGATIONS}, got {how!r}")


@dataclass
class PolicyLoss:
    loss: torch.Tensor  # scalar to minimise
    policy_loss: torch.Tensor  # the clipped surrogate part (detached)
    kl: torch.Tensor  # k3 KL to the reference, aggregated as the loss is (detached; 0 without a reference)
    clip_fraction: torch.Tensor  # share of tokens whose ratio was clipped (detached)
    ratio_mean: torch.Tensor  # mean pi_theta / pi_old (detached)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip_eps_low: float = 0.2, clip_eps_high: float = 0.2, kl_coef: float = 0.0,
              ref_logp: torch.Tensor | None = None, aggregation: str = "seq_mean",
              max_len: int | None = None) -> PolicyLoss:
    """GRPO's clipped objective, negated for minimisation (R1 §2.2.1, per token):

        -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A) + kl_coef * KL_k3(pi_theta || pi_ref)

    logp, old_logp, ref_logp, mask: (N, T) (checked); advantages: (N,). rho = exp(logp - old_logp).
    eps_high > eps_low is DAPO's clip-higher. The `kl` statistic is aggregated like the loss, so
    loss = policy_loss + kl_coef * kl: with seq_mean, R1's per-output KL_i (mean over its tokens)
    averaged over outputs; a token mean instead weighed long outputs more than the loss does."""
    if logp.dim() != 2:  # one sequence as (T,) with (T,) advantages passed the checks below: a (T, T) loss
        raise ValueError(f"grpo_loss: logp must be (N, T) (one row per completion), got {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1] or old_logp.shape != logp.shape or mask.shape != logp.shape:
        # an (N, 1) column would broadcast against (N, T) into an (N, N, T) loss without an error
        raise ValueError(f"grpo_loss: advantages must be (N,) and old_logp, mask (N, T) like logp {tuple(logp.shape)}, "
                         f"got {tuple(advantages.shape)}, {tuple(old_logp.shape)}, {tuple(mask.shape)}")
    if ref_logp is not None and ref_logp.shape != logp.shape:
        # the whole batch's (N, T) against a one-row minibatch broadcasts into N rows of loss
        raise ValueError(f"grpo_loss: ref_logp must be (N, T) like logp {tuple(logp.shape)}, got {tuple(ref_logp.shape)}")
    adv = advantages[:, None]  # (N, 1): every token of a sample shares its advantage
    ratio = (logp - old_logp).exp()  # (N, T)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps_low, 1 + clip_eps_high) * adv
    surrogate = -torch.minimum(unclipped, clipped)  # (N, T)
    per_token = surrogate
    kl = torch.zeros_like(per_token)
    if ref_logp is not None and kl_coef > 0:
        kl = kl_k3(logp, ref_logp)
        per_token = per_token + kl_coef * kl
    loss = aggregate(per_token, mask, aggregation, max_len)
    with torch.no_grad():
        was_clipped = (clipped < unclipped).float()  # the min picked the clipped term
        stats = dict(policy_loss=aggregate(surrogate.detach(), mask, aggregation, max_len),
                     kl=aggregate(kl, mask, aggregation, max_len), clip_fraction=masked_mean(was_clipped, mask),
                     ratio_mean=masked_mean(ratio, mask))
    return PolicyLoss(loss=loss, **stats)


def _log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """float32 log-softmax; bf16 logits at T = 1 are read as they are (no float32 copy first)."""
    z = logits if temperature == 1.0 else logits.float() / temperature
    return z.log_softmax(-1, dtype=torch.float32)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """logits (N, T, V), tokens (N, T) -> log pi(token) (N, T), float32, under softmax(logits / T)."""
    return _log_softmax(logits, temperature).gather(-1, tokens[..., None]).squeeze(-1)


def entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """logits (N, T, V) -> per-token entropy (N, T) of softmax(logits / T): -sum p log p, with
    0 log 0 = 0 (a -inf logit, a banned token, is a term of 0, not 0 * -inf = NaN)."""
    logp = _log_softmax(logits, temperature)  # (N, T, V)
    return -(logp.exp() * logp.masked_fill(logp.isneginf(), 0.0)).sum(-1)


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on response tokens only: logits (N, T, V), labels (N, T) (already shifted),
    mask (N, T) 1 where the label is a response token; mean over those tokens."""
    ce = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    return masked_mean(ce, mask.float())


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Reward-model loss on preference pairs: -log sigmoid(r_chosen - r_rejected), mean over pairs
    (R1 §2.3.4's helpfulness reward model is trained on such pairs)."""
    if chosen.shape != rejected.shape:  # (N,) against a reward head's (N, 1) broadcast into N x N pairs
        raise ValueError(f"bradley_terry_loss: chosen and rejected must have the same shape (one reward per pair), "
                         f"got {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    return -F.logsigmoid(chosen - rejected).mean()


def pointwise_reward_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reward-model loss on labelled responses: binary cross-entropy of sigmoid(score) against the
    label, 1 = good / safe, 0 = bad / unsafe, mean over items. R1 §2.3.4's safety reward model is
    trained pointwise on responses labelled safe or unsafe (../shared/R1-FACTS.md, "All-scenario RL").
    scores (N,) logits; labels (N,) 0/1 of any dtype."""
    if scores.shape != labels.shape:  # (N,) against a head's (N, 1) broadcast into N x N terms
        raise ValueError(f"pointwise_reward_loss: scores and labels must have the same shape (one label per "
                         f"item), got {tuple(scores.shape)} and {tuple(labels.shape)}")
    return F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype))  # (N,) -> scalar mean
