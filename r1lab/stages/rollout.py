"""Rollouts for RL: sample groups, score them, and lay them out as a training batch.

Shared by R1-Zero and reasoning RL (both `grpo.py`). The batch keeps each prompt
once (left-padded) and the completions right-padded; the policy's log-probs are read at the
completion positions only, the G completions of a prompt sharing one forward over it. A step's
metrics record (`step_record`) is built from the rollouts and update statistics of every process.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from r1lab.engine import Completion, Engine, SamplingParams
from r1lab.losses import equal_groups, token_logprobs
from r1lab.model import PrefixCache, Transformer
from r1lab.prompts import CHAT, format_rule, prompt_ids
from r1lab.rewards import RewardTerm, Rubric, strict_format_reward
from r1lab.rewards.language import world_language_reward
from r1lab.tokenizer import Tokenizer


def world_rubric(config: Any) -> Rubric:
    """accuracy + format (+ language consistency), the R1 rule rewards, for world problems.

    The strict R1-Zero format is the world's own rule (`follows_r1_zero_format`): it reads a reply
    as far as the accuracy rule does, so a reply past the world's read limit is neither right nor
    in format (the strict reward, reading it whole, paid 1 for it); on shorter ones the two agree.
    ``strict_format`` chooses between R1-Zero's strict and lenient rules; the chat template has one
    format rule (``<think>`` reasoning then a summary), so a lenient format with it is refused.
    """
    from r1lab.world import check_completion, follows_r1_zero_format

    def accuracy(completion: str, problem: Any) -> float:
        return 1.0 if check_completion(problem, completion) else 0.0

    def world_format(completion: str, problem: Any = None) -> float:
        return 1.0 if follows_r1_zero_format(completion) else 0.0

    template = getattr(config, "template", "r1_zero")
    if template == CHAT and not config.strict_format:  # else ignored: the format term stayed R1's summary rule
        raise ValueError("strict_format=False (R1-Zero's lenient format) does not apply to template 'chat', whose "
                         "format reward is <think> reasoning then a summary; keep strict_format=True")
    fmt = format_rule(template, config.strict_format)
    if fmt is strict_format_reward:
        fmt = world_format
    terms = [RewardTerm("accuracy", accuracy, config.accuracy_weight), RewardTerm("format", fmt, config.format_weight)]
    if config.language_weight > 0:
        lang = functools.partial(world_language_reward, target=config.language)
        terms.append(RewardTerm("language", lang, config.language_weight))
    return Rubric(terms)


@dataclass
class Rollout:
    prompts: list[list[int]]  # token ids per question
    completions: list[Completion]  # G per question, grouped
    examples: list[Any]  # the question record of each completion
    rewards: Any  # RubricResult
    group_size: int
    # seconds `collect` spent sampling (the engine) and scoring (the rubric, whose code reward can run
    # a sandbox for seconds): apart, so that a generation speed does not count the scoring
    generate_s: float = 0.0
    reward_s: float = 0.0

    @classmethod
    def collect(cls, engine: Engine, tokenizer: Tokenizer, problems: Sequence[Any], rubric: Rubric,
                params: SamplingParams, template: str = "r1_zero") -> "Rollout":
        t0 = time.perf_counter()
        prompts = [prompt_ids(tokenizer, p.question, template) for p in problems]
        groups = engine.generate(prompts, params)
        completions = [c for g in groups for c in g]
        examples = [problems[c.prompt_index] for c in completions]
        t1 = time.perf_counter()
        rewards = rubric([c.text for c in completions], examples)
        return cls(prompts=prompts, completions=completions, examples=examples, rewards=rewards,
                   group_size=params.n, generate_s=t1 - t0, reward_s=time.perf_counter() - t1)

    @classmethod
    def merge(cls, parts: Sequence["Rollout"]) -> "Rollout":
        """One rollout of the data-parallel processes' parts, in rank order (the step's metrics and
        samples are the whole step's). A reward term missing from a part (none of its prompts had
        one) is None there; the seconds are the slowest part's."""
        if len(parts) == 1:
            return parts[0]
        from r1lab.rewards import RubricResult

        completions, offset = [], 0
        for part in parts:
            completions += [dataclasses.replace(c, prompt_index=c.prompt_index + offset) for c in part.completions]
            offset += len(part.prompts)
        terms = list(dict.fromkeys(k for part in parts for k in part.rewards.per_term))
        rewards = RubricResult(total=[x for part in parts for x in part.rewards.total],
                               per_term={k: [x for part in parts for x in part.rewards.per_term.get(
                                   k, [None] * len(part.completions))] for k in terms})
        return cls(prompts=[p for part in parts for p in part.prompts], completions=completions,
                   examples=[e for part in parts for e in part.examples], rewards=rewards,
                   group_size=parts[0].group_size, generate_s=max(part.generate_s for part in parts),
                   reward_s=max(part.reward_s for part in parts))

    @property
    def n_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.completions)

    def show(self, k: int = 4) -> list[dict[str, Any]]:
        """A few distinct completions with their rewards, for the samples log: the first sample of
        successive groups, then the second ones when there are fewer than k groups."""
        out = []
        groups = len(self.completions) // self.group_size
        for i in range(min(k, len(self.completions))):
            idx = i % groups * self.group_size + i // groups
            example = self.examples[idx]
            out.append({"question": getattr(example, "question", str(example)),
                        "answer": str(getattr(example, "answer", "")), "completion": self.completions[idx].text,
                        **{name: v[idx] for name, v in self.rewards.per_term.items()},
                        "reward": self.rewards.total[idx]})
        return out


@dataclass
class TrainBatch:
    """Completions and the prompts they answer, each prompt stored once: in training the G
    completions of a question share one forward over its prompt (`PrefixCache`)."""

    prompt_ids: torch.Tensor  # (Pn, L) prompts, left-padded
    prompt_mask: torch.Tensor  # (Pn, L) bool, True on real tokens
    prompt_of: torch.Tensor  # (N,) the prompt row each completion answers
    tokens: torch.Tensor  # (N, T) completion ids, right-padded
    token_valid: torch.Tensor  # (N, T) bool, True on real completion tokens
    mask: torch.Tensor  # (N, T) float, 1 where the loss is taken
    old_logp: torch.Tensor  # (N, T) log-probs at sampling time
    advantages: torch.Tensor  # (N,)

    def to(self, device: torch.device | str) -> "TrainBatch":
        return TrainBatch(**{k: v.to(device) for k, v in vars(self).items()})

    @classmethod
    def filler(cls, device: torch.device | str) -> "TrainBatch":
        """One row that trains nothing, for a data-parallel process left without rows in a step or
        a minibatch (dynamic sampling keeps unequal numbers of groups): it must still run the
        forward and backward whose collectives every process joins. Its one prompt token and two
        completion tokens are padding (no MoE load; each query sees itself, so no NaN) under a
        loss mask of 0; `policy_update` weighs it 0. Two tokens, so that the completion forward
        runs as on real rows."""
        def full(shape: tuple[int, ...], value: object, dtype: torch.dtype) -> torch.Tensor:
            return torch.full(shape, value, dtype=dtype, device=device)

        return cls(prompt_ids=full((1, 1), 0, torch.long), prompt_mask=full((1, 1), False, torch.bool),
                   prompt_of=full((1,), 0, torch.long), tokens=full((1, 2), 0, torch.long),
                   token_valid=full((1, 2), False, torch.bool), mask=full((1, 2), 0.0, torch.float32),
                   old_logp=full((1, 2), 0.0, torch.float32), advantages=full((1,), 0.0, torch.float32))


def build_batch(rollout: Rollout, advantages: torch.Tensor, pad_id: int, drop_equal_groups: bool,
                mask_truncated: bool, shape_multiple: int = 1, min_width: int = 1) -> TrainBatch:
    """Lays the rollout out as tensors; optionally drops zero-variance groups (DAPO's dynamic
    sampling) and masks completions cut by the length limit (DAPO's overlong filtering).
    Prompt and completion widths are padded to a multiple of `shape_multiple` (see SHAPE_MULTIPLE),
    completions to at least `min_width` tokens (data-parallel processes: 2, as `TrainBatch.filler`,
    so that every process runs the completion forward of `completion_logprobs`)."""
    G = rollout.group_size
    rewards = torch.tensor(rollout.rewards.total).view(-1, G)
    keep_group = ~equal_groups(rewards) if drop_equal_groups else torch.ones(rewards.shape[0], dtype=torch.bool)
    rows = [i for i in range(len(rollout.completions)) if keep_group[i // G]]
    comps = [rollout.completions[i] for i in rows]
    L = _round_up(max((len(p) for p in rollout.prompts), default=1), shape_multiple)
    prompt_ids = torch.full((len(rollout.prompts), L), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros(len(rollout.prompts), L, dtype=torch.bool)
    for r, p in enumerate(rollout.prompts):
        prompt_ids[r, L - len(p):], prompt_mask[r, L - len(p):] = torch.tensor(p), True
    T = max(_round_up(max((len(c.token_ids) for c in comps), default=1), shape_multiple), min_width)
    tokens = torch.full((len(rows), T), pad_id, dtype=torch.long)
    valid = torch.zeros(len(rows), T, dtype=torch.bool)
    mask, old = torch.zeros(len(rows), T), torch.zeros(len(rows), T)
    for r, c in enumerate(comps):
        n = len(c.token_ids)
        tokens[r, :n], valid[r, :n], old[r, :n] = torch.tensor(c.token_ids), True, torch.tensor(c.logprobs)
        mask[r, :n] = 0.0 if (mask_truncated and c.finish_reason == "length") else 1.0
    prompt_of = torch.tensor([c.prompt_index for c in comps], dtype=torch.long)
    return TrainBatch(prompt_ids=prompt_ids, prompt_mask=prompt_mask, prompt_of=prompt_of, tokens=tokens,
                      token_valid=valid, mask=mask, old_logp=old, advantages=advantages[rows].float())


# With bf16, prompt and completion widths are padded to a multiple of this (padding is masked),
# so that training shapes repeat from step to step: on CPUs, bf16 matmuls (oneDNN) build a
# kernel per new shape. float32 matmuls do not, and padding would only add work.
SHAPE_MULTIPLE = 16


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def completion_logprobs(model: Transformer, batch: TrainBatch, rows: torch.Tensor,
                        temperature: float) -> torch.Tensor:
    """log pi(completion token) (n, T) for the given rows.

    One forward over the prompts records their latents; the completions then attend to their
    prompt's (`PrefixCache`), so a group of G completions costs one prompt forward, not G. The
    logits are those of full [prompt | completion] rows (tests/test_stages.py checks it).
    The MoE's sequence-wise balance loss (`seq_aux_loss_alpha`, V3 eq. 17-20) is left out of RL:
    prompt and completion are separate passes, and its per-sequence statistics would not be the
    whole row's. The bias balancing (V3 §2.1.2) still runs after every optimizer step."""
    prefix = PrefixCache()
    # only the prompts these rows answer: a minibatch (or dynamic sampling's dropped groups) must not
    # forward the others, which cost work and counted toward the MoE balancing load of every minibatch
    used, of = batch.prompt_of[rows].unique(return_inverse=True)  # (u,) prompt rows, (n,) index into them
    prompt_mask = batch.prompt_mask[used]  # (u, L)
    prompt_pos = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)  # (u, L) left padding
    h_prompt, _ = model.hidden_states(batch.prompt_ids[used], position_ids=prompt_pos, attention_mask=prompt_mask,
                                      cache=prefix)  # (u, L, D)
    h = h_prompt[of, -1:]  # (n, 1, D): the last prompt token predicts completion token 0
    tokens = batch.tokens[rows]  # (n, T)
    if tokens.shape[1] > 1:  # completion token j predicts token j + 1
        pos = prompt_mask[of].sum(-1, keepdim=True) + torch.arange(tokens.shape[1] - 1, device=tokens.device)
        # input j counts as real where token j + 1 is (the token it predicts): a row's last token
        # predicts nothing, and counting it only where the row is shorter than the batch's longest
        # made the MoE load, hence the router biases, depend on the padding (and on how a batch
        # is split across data-parallel processes)
        keys = torch.cat([prompt_mask[of], batch.token_valid[rows][:, 1:]], dim=1)  # (n, L + T - 1)
        h_comp, _ = model.hidden_states(tokens[:, :-1], position_ids=pos, attention_mask=keys,
                                        cache=prefix.select(of))
        h = torch.cat([h, h_comp], dim=1)  # (n, T, D)
    return _head_logprobs(model, h, tokens, temperature)


# Log-probs per chunk of token rows in `_head_logprobs`: this many logits (2 MiB in float32, 512
# tokens of the world's 1,024-word vocabulary), at least `LOGITS_CHUNK_MIN_ROWS` tokens. A tiny
# GRPO update in bf16 (8 x 8 samples; reference forward, policy forward and backward, AdamW) was
# 1.01-1.08x as fast at 64 tokens and 1.21-1.23x at 256 with these chunks as with 16 MiB ones, the same in
# float32 (benchmarks/logits_chunk.py): with 16 MiB chunks an update page-faulted fresh memory in
# 5,000-63,000 times, with these 40-400 (a fault costs ~4 us on the 2-core VM). The head alone, forward
# and backward in bf16 on 64 x 256 tokens, is 2.1x as fast as in one go (design_choices.py, key
# `logits_chunk`). Values and gradients are bit for bit those of one chunk.
LOGITS_CHUNK = 1 << 19
LOGITS_CHUNK_MIN_ROWS = 64  # a large vocabulary (V3's 129,280) is not split into a few tokens a chunk


def _head_logprobs(model: Transformer, h: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Output head over hidden states h (n, T, D), then log-probs a chunk of tokens at a time.
    Tokens are independent, so the values and gradients are those of one go."""
    logits = model.lm_head(model.model.norm(h))  # (n, T, V)
    n, T, V = logits.shape
    rows = max(LOGITS_CHUNK_MIN_ROWS, LOGITS_CHUNK // V)
    flat, targets = logits.view(n * T, V), tokens.reshape(n * T)  # (n T, V), (n T,)
    return torch.cat([token_logprobs(z, t, temperature) for z, t in zip(flat.split(rows), targets.split(rows))]).view(n, T)


def rollout_metrics(rollout: Rollout, rewards: torch.Tensor) -> dict[str, float]:
    """rewards (P, G). Accuracy, format rate, lengths, truncation, zero-variance share, reward means,
    and the policy's entropy: the mean over sampled tokens of the sampling distribution's entropy."""
    lengths = torch.tensor([len(c.token_ids) for c in rollout.completions], dtype=torch.float)
    texts = [c.text for c in rollout.completions]
    means = rollout.rewards.means()
    out = {**means, "accuracy": means.get("reward/accuracy", 0.0),
           "format_rate": means.get("reward/format", sum(strict_format_reward(t) for t in texts) / len(texts)),
           "length_mean": lengths.mean().item(), "length_max": lengths.max().item(),
           "truncation_rate": sum(c.finish_reason == "length" for c in rollout.completions) / len(texts),
           "zero_variance_groups": equal_groups(rewards).float().mean().item(),
           "entropy": sum(sum(c.entropies) for c in rollout.completions) / max(lengths.sum().item(), 1)}
    return out


@dataclass
class StepPart:
    """What one process did in a step: its groups' rollout, its update's statistics and seconds."""

    rollout: Rollout
    stats: dict[str, float]  # policy_update's (train_tokens included)
    rollout_s: float  # sampling and scoring: generate_s + reward_s
    train_s: float


def step_record(step: int, lr: float, rollout: Rollout, parts: Sequence[StepPart], step_s: float) -> dict[str, Any]:
    """The metrics record of a step, over every process's groups (one part in one process); the
    update statistics averaged over the processes, the seconds the slowest's. `rollout`: the parts'
    rollouts merged."""
    rewards = torch.tensor(rollout.rewards.total).view(-1, rollout.group_size)  # (P, G)
    # a process whose groups dynamic sampling dropped, or whose minibatches were fillers, has no loss statistics
    keys = dict.fromkeys(k for p in parts for k in p.stats if k != "train_tokens")
    stats = {k: sum(v) / len(v) for k in keys if (v := [p.stats[k] for p in parts if k in p.stats])}
    train_s = max(p.train_s for p in parts)
    return {"step": step + 1, "lr": lr, **rollout_metrics(rollout, rewards), **stats,
            "rollout_s": max(p.rollout_s for p in parts),
            "generate_s": rollout.generate_s, "reward_s": rollout.reward_s, "train_s": train_s,
            "step_s": step_s,  # the whole step: rollout, batch, update, bookkeeping
            # the engine's speed: over sampling time only (the rubric's scoring, a code sandbox's
            # seconds, is reward_s)
            "rollout_tokens_per_s": rollout.n_tokens / max(rollout.generate_s, 1e-9),
            # tokens forwarded and backpropagated (masked truncated rows of a trained minibatch too)
            "train_tokens_per_s": sum(p.stats["train_tokens"] for p in parts) / max(train_s, 1e-9)}
