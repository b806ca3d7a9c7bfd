"""Rollouts for RL: sample groups, score them, and lay them out as a training batch.

Shared by GRPO (R1-Zero and reasoning RL) and all-scenario RL. A row of the batch is
[left-padded prompt | completion | right padding]; the policy's log-probs are read at the
completion positions only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from r1lab.engine import Completion, Engine, SamplingParams
from r1lab.losses import entropy, token_logprobs
from r1lab.model import Transformer
from r1lab.prompts import CHAT, prompt_ids
from r1lab.rewards import RewardFn, RewardTerm, Rubric, lenient_format_reward, r1_format_reward, strict_format_reward
from r1lab.rewards.language import world_language_reward
from r1lab.tokenizer import Tokenizer


def format_rule(template: str, strict: bool = True) -> RewardFn:
    """The format reward that matches a prompt template: R1-Zero's tags (R1 Table 1) or, after
    the cold start, ``<think>`` reasoning then a summary (R1 §2.3.1)."""
    if template == CHAT:
        return r1_format_reward
    return strict_format_reward if strict else lenient_format_reward


def world_rubric(config: Any) -> Rubric:
    """accuracy + format (+ language consistency), the R1 rule rewards, for world problems."""
    from r1lab.world import check_completion

    def accuracy(completion: str, problem: Any) -> float:
        return 1.0 if check_completion(problem, completion) else 0.0

    fmt = format_rule(getattr(config, "template", "r1_zero"), config.strict_format)
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

    @classmethod
    def collect(cls, engine: Engine, tokenizer: Tokenizer, problems: Sequence[Any], rubric: Rubric,
                params: SamplingParams, template: str = "r1_zero") -> "Rollout":
        prompts = [prompt_ids(tokenizer, p.question, template) for p in problems]
        groups = engine.generate(prompts, params)
        completions = [c for g in groups for c in g]
        examples = [problems[c.prompt_index] for c in completions]
        rewards = rubric([c.text for c in completions], examples)
        return cls(prompts=prompts, completions=completions, examples=examples, rewards=rewards,
                   group_size=params.n)

    @property
    def n_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.completions)

    def show(self, k: int = 4) -> list[dict[str, Any]]:
        """A few completions with their rewards, for the samples log."""
        out = []
        for i in range(min(k, len(self.completions))):
            idx = i * self.group_size % len(self.completions)  # the first sample of successive groups
            example = self.examples[idx]
            out.append({"question": getattr(example, "question", str(example)),
                        "answer": str(getattr(example, "answer", "")), "completion": self.completions[idx].text,
                        **{name: v[idx] for name, v in self.rewards.per_term.items()},
                        "reward": self.rewards.total[idx]})
        return out


@dataclass
class TrainBatch:
    input_ids: torch.Tensor  # (N, P + T) prompt (left-padded) + completion (right-padded)
    attention_mask: torch.Tensor  # (N, P + T) bool, True on real tokens
    position_ids: torch.Tensor  # (N, P + T)
    prompt_len: int  # P: completion token j sits at column P + j
    tokens: torch.Tensor  # (N, T) completion ids
    mask: torch.Tensor  # (N, T) float, 1 where the loss is taken
    old_logp: torch.Tensor  # (N, T) log-probs at sampling time
    advantages: torch.Tensor  # (N,)

    def to(self, device: torch.device | str) -> "TrainBatch":
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        return TrainBatch(**moved)


def build_batch(rollout: Rollout, advantages: torch.Tensor, pad_id: int, drop_equal_groups: bool,
                mask_truncated: bool) -> TrainBatch:
    """Lays the rollout out as tensors; optionally drops zero-variance groups (DAPO's dynamic
    sampling) and masks completions cut by the length limit (DAPO's overlong filtering)."""
    G = rollout.group_size
    rewards = torch.tensor(rollout.rewards.total).view(-1, G)
    keep_group = rewards.std(-1) > 0 if drop_equal_groups else torch.ones(rewards.shape[0], dtype=torch.bool)
    rows = [i for i in range(len(rollout.completions)) if keep_group[i // G]]
    comps = [rollout.completions[i] for i in rows]
    prompts = [rollout.prompts[c.prompt_index] for c in comps]
    P = max((len(p) for p in prompts), default=1)
    T = max((len(c.token_ids) for c in comps), default=1)
    ids = torch.full((len(rows), P + T), pad_id, dtype=torch.long)
    attn = torch.zeros(len(rows), P + T, dtype=torch.bool)
    mask = torch.zeros(len(rows), T)
    old = torch.zeros(len(rows), T)
    for r, (p, c) in enumerate(zip(prompts, comps)):
        n = len(c.token_ids)
        ids[r, P - len(p):P], ids[r, P:P + n] = torch.tensor(p), torch.tensor(c.token_ids)
        attn[r, P - len(p):P + n] = True
        mask[r, :n] = 0.0 if (mask_truncated and c.finish_reason == "length") else 1.0
        old[r, :n] = torch.tensor(c.logprobs)
    pos = (attn.long().cumsum(-1) - 1).clamp(min=0)
    return TrainBatch(input_ids=ids, attention_mask=attn, position_ids=pos, prompt_len=P, tokens=ids[:, P:],
                      mask=mask, old_logp=old, advantages=advantages[rows].float())


def completion_logprobs(model: Transformer, batch: TrainBatch, rows: torch.Tensor, temperature: float,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(completion token) (n, T) for the given rows, and optionally the per-token entropy."""
    h, _ = model.hidden_states(batch.input_ids[rows], position_ids=batch.position_ids[rows],
                               attention_mask=batch.attention_mask[rows])
    P, T = batch.prompt_len, batch.tokens.shape[1]
    logits = model.lm_head(model.model.norm(h[:, P - 1:P - 1 + T]))  # (n, T, V): position P-1+j predicts token j
    logp = token_logprobs(logits, batch.tokens[rows], temperature)
    ent = entropy(logits.detach(), temperature) if with_entropy else None
    return logp, ent


def rollout_metrics(rollout: Rollout, rewards: torch.Tensor) -> dict[str, float]:
    """rewards (P, G). Accuracy, format rate, lengths, truncation, zero-variance share, reward means."""
    lengths = torch.tensor([len(c.token_ids) for c in rollout.completions], dtype=torch.float)
    texts = [c.text for c in rollout.completions]
    means = rollout.rewards.means()
    out = {**means, "accuracy": means.get("reward/accuracy", 0.0),
           "format_rate": means.get("reward/format", sum(strict_format_reward(t) for t in texts) / len(texts)),
           "length_mean": lengths.mean().item(), "length_max": lengths.max().item(),
           "truncation_rate": sum(c.finish_reason == "length" for c in rollout.completions) / len(texts),
           "zero_variance_groups": (rewards.std(-1) == 0).float().mean().item()}
    return out
