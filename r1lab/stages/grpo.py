"""GRPO with rule-based rewards: R1-Zero (R1 §2.2) and reasoning RL (R1 §2.3.2), one code path.

Every step: draw `prompts_per_step` questions, sample a group of `group_size` completions for
each from the current policy (one shared prefill per question), score them with the rubric
(accuracy + format [+ language consistency]), turn rewards into group-relative advantages, and
take `ppo_epochs` passes of clipped-ratio updates in minibatches, with a k3 KL penalty to a frozen
reference that is reset to the policy every `ref_reset_every` steps (R1-Zero: 400).
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from r1lab import training
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.engine import Engine, SamplingParams
from r1lab.losses import LOSS_AGGREGATIONS, group_advantages, grpo_loss
from r1lab.model import Transformer, from_pretrained, max_mean_load_ratio
from r1lab.prompts import check_template
from r1lab.stages.rollout import (SHAPE_MULTIPLE, Rollout, TrainBatch, build_batch, completion_logprobs,
                                  rollout_metrics, world_rubric)
from r1lab.tokenizer import Tokenizer


@dataclass(kw_only=True)
class GRPOConfig:
    init: str = "runs/base/base"  # checkpoint to start from (the base model for R1-Zero)
    out_dir: str = "runs/zero"  # run directory: checkpoints/, metrics.jsonl, samples.jsonl, final policy/
    seed: int = 0  # seeds prompt order, sampling and init of everything random
    n_prompts: int = 1024  # RL prompt pool drawn from the world's rl split
    prompts_per_step: int = 16  # questions per step; paper: 32
    group_size: int = 8  # G, completions per question; paper: 16
    max_steps: int = 200  # optimizer steps (rollout batches); paper: 10,400
    max_new_tokens: int = 96  # completion length cap; paper: 32,768 (65,536 late)
    temperature: float = 1.0  # rollout sampling temperature; paper: 1.0
    lr: float = 2e-5  # peak learning rate; paper: 3e-6
    warmup_steps: int = 5  # linear LR warmup
    min_lr_ratio: float = 1.0  # cosine floor as a share of lr; 1.0 = constant LR
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm
    clip_eps_low: float = 0.2  # ratio clip below, 1 - eps
    clip_eps_high: float = 0.2  # ratio clip above, 1 + eps; DAPO's clip-higher: 0.28
    kl_coef: float = 0.001  # beta of the k3 KL to the reference; paper: 0.001; 0 loads no reference
    ref_reset_every: int = 400  # reset the reference to the policy every N steps; paper: 400; 0 = never
    ppo_epochs: int = 1  # mu, passes over each rollout batch; paper: 1
    minibatches: int = 1  # optimizer steps per pass (rollout split evenly); paper: 16
    scale_by_std: bool = True  # divide advantages by the group std (GRPO); False = Dr. GRPO
    loss_aggregation: str = "seq_mean"  # seq_mean (GRPO) | token_mean (DAPO) | constant (Dr. GRPO)
    dynamic_sampling: bool = False  # drop groups whose rewards are all equal (DAPO)
    mask_truncated: bool = False  # no loss on completions cut by max_new_tokens (DAPO overlong filtering)
    accuracy_weight: float = 1.0  # weight of the accuracy reward; paper: 1
    format_weight: float = 1.0  # weight of the format reward; paper: 1
    strict_format: bool = True  # strict (exact) or lenient format rule
    language_weight: float = 0.0  # weight of the language-consistency reward (R1 §2.3.2); 0 = off
    language: str = "en"  # target language of the chain of thought
    template: str = "r1_zero"  # prompt: r1_zero (R1 Table 1, from a base model) | chat (after the cold start)
    device: str = "cpu"  # cpu | cuda (rollouts and updates; a launcher may wrap the model beforehand)
    bf16: bool = False  # bf16 autocast in rollouts and updates; updates of tiny 1.8x faster on 2 AVX-512-BF16 cores
    log_samples_every: int = 10  # write a few sampled completions every N steps
    save_every: int = 50  # steps between resumable checkpoints
    threads: int = 0  # torch threads; 0 = torch's default
    resume: bool = False  # continue from the newest checkpoint in out_dir

    def __post_init__(self) -> None:
        for name in ("n_prompts", "prompts_per_step", "max_steps", "max_new_tokens", "ppo_epochs", "minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"GRPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError("GRPOConfig.group_size must be >= 2: advantages are relative within a group")
        if self.loss_aggregation not in LOSS_AGGREGATIONS:
            raise ValueError(f"GRPOConfig.loss_aggregation must be one of {LOSS_AGGREGATIONS}")
        if self.kl_coef < 0 or self.temperature <= 0:
            raise ValueError("GRPOConfig: kl_coef must be >= 0 and temperature > 0")
        check_template(self.template)


def policy_update(model: Transformer, ref: Transformer | None, optimizer: torch.optim.Optimizer,
                  batch: TrainBatch, config: GRPOConfig) -> dict[str, float]:
    """`ppo_epochs` passes over the batch in `minibatches` steps; returns mean statistics."""
    n = batch.tokens.shape[0]
    ref_logp = None
    if ref is not None:
        with torch.no_grad(), training.autocast(config.bf16, config.device):
            ref_logp = completion_logprobs(ref, batch, torch.arange(n, device=batch.tokens.device), config.temperature)
    stats: dict[str, list[float]] = {}
    g = torch.Generator().manual_seed(config.seed)
    for _ in range(config.ppo_epochs):
        for rows in torch.randperm(n, generator=g).to(batch.tokens.device).chunk(config.minibatches):
            with training.autocast(config.bf16, config.device):
                logp = completion_logprobs(model, batch, rows, config.temperature)
            mask = batch.mask[rows]
            out = grpo_loss(logp, batch.old_logp[rows], batch.advantages[rows], mask,
                            clip_eps_low=config.clip_eps_low, clip_eps_high=config.clip_eps_high,
                            kl_coef=config.kl_coef, ref_logp=None if ref_logp is None else ref_logp[rows],
                            aggregation=config.loss_aggregation, max_len=config.max_new_tokens)
            out.loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for k, v in (("loss", out.loss), ("kl", out.kl), ("clip_fraction", out.clip_fraction),
                         ("ratio", out.ratio_mean), ("grad_norm", grad_norm)):
                stats.setdefault(k, []).append(float(v.detach()))
    return {k: sum(v) / len(v) for k, v in stats.items()}


def _load(config: GRPOConfig) -> tuple[Transformer, Tokenizer, int, torch.optim.Optimizer]:
    out = Path(config.out_dir)
    ck = training.latest_checkpoint(out / "checkpoints") if config.resume else None
    model = from_pretrained(ck or config.init, device=config.device).train()
    tokenizer = Tokenizer.load(ck or config.init)
    optimizer = training.make_optimizer(model, config.lr, config.weight_decay)
    start = training.load_training_state(ck, optimizer)["step"] if ck else 0
    if ck:
        print(f"resumed from {ck} at step {start}")
    return model, tokenizer, start, optimizer


def _reference(model: Transformer, config: GRPOConfig, step: int) -> Transformer | None:
    if config.kl_coef == 0:
        return None  # no KL term: no reference model in memory at all
    ref_dir = Path(config.out_dir) / "reference"
    resuming = config.resume and step and ref_dir.exists()
    ref = (from_pretrained(ref_dir, device=config.device) if resuming else copy.deepcopy(model)).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def run(config: GRPOConfig) -> Path:
    """Trains and returns the final policy checkpoint directory (`out_dir/policy`)."""
    from r1lab.world import rl_prompts  # the default task; other tasks plug in here

    model, tokenizer, start, optimizer = _load(config)  # first: a bad --init leaves no run directory
    out = training.start_run(config, "grpo")
    ref = _reference(model, config, start)
    metrics, samples = training.open_log(out / "metrics.jsonl", start), training.open_log(out / "samples.jsonl", start)
    pool = rl_prompts(config.n_prompts, seed=config.seed)
    rubric = world_rubric(config)
    engine = Engine(model, tokenizer, autocast_dtype=torch.bfloat16 if config.bf16 else None)
    bar = tqdm(range(start, config.max_steps), initial=start, total=config.max_steps, desc="grpo", dynamic_ncols=True)
    for step in bar:
        t_step = time.perf_counter()
        lr = training.lr_at(step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.max_steps,
                            min_lr_ratio=config.min_lr_ratio)
        training.set_lr(optimizer, lr)
        problems = random.Random(config.seed * 7919 + step).sample(pool, config.prompts_per_step)
        t0 = time.perf_counter()
        rollout = Rollout.collect(engine, tokenizer, problems, rubric, SamplingParams(
            n=config.group_size, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
            stop_token_ids=(tokenizer.eos_id,), seed=config.seed * 100_003 + step), config.template)
        t_rollout = time.perf_counter() - t0
        rewards = torch.tensor(rollout.rewards.total).view(len(problems), config.group_size)  # (P, G)
        advantages = group_advantages(rewards, scale_by_std=config.scale_by_std)
        batch = build_batch(rollout, advantages.flatten(), tokenizer.pad_id, config.dynamic_sampling,
                            config.mask_truncated, SHAPE_MULTIPLE if config.bf16 else 1).to(config.device)
        t1 = time.perf_counter()
        stats = policy_update(model, ref, optimizer, batch, config) if batch.tokens.shape[0] else {}
        t_train = time.perf_counter() - t1
        balance = max_mean_load_ratio(model.expert_load())
        model.update_router_bias()
        if ref is not None and config.ref_reset_every and (step + 1) % config.ref_reset_every == 0:
            ref.load_state_dict(model.state_dict())  # R1-Zero: reference replaced every 400 steps
        record = {"step": step + 1, "lr": lr, **rollout_metrics(rollout, rewards), **stats,
                  "expert_load_max_mean": balance, "rollout_s": t_rollout, "train_s": t_train,
                  "step_s": time.perf_counter() - t_step,  # the whole step: rollout, batch, update, bookkeeping
                  "rollout_tokens_per_s": rollout.n_tokens / t_rollout,
                  "train_tokens_per_s": int(batch.mask.sum()) * config.ppo_epochs / max(t_train, 1e-9)}
        metrics.write(record)
        bar.set_postfix(acc=f"{record['accuracy']:.2f}", fmt=f"{record['format_rate']:.2f}",
                        len=f"{record['length_mean']:.0f}")
        if (step + 1) % config.log_samples_every == 0 or step == start:
            for item in rollout.show(k=4):
                samples.write({"step": step + 1, **item})
        if (step + 1) % config.save_every == 0 and step + 1 < config.max_steps:
            _save(model, ref, optimizer, tokenizer, config, step + 1)
    final = training.save_checkpoint(model, out / "policy", step=config.max_steps, config=config, tokenizer=tokenizer)
    print(f"policy saved to {final}")
    return final


def _save(model: Transformer, ref: Transformer | None, optimizer: torch.optim.Optimizer, tokenizer: Tokenizer,
          config: GRPOConfig, step: int) -> None:
    out = Path(config.out_dir)
    training.save_checkpoint(model, out / "checkpoints" / f"step_{step:06d}", step=step, config=config,
                             optimizer=optimizer, tokenizer=tokenizer)
    if ref is not None:
        training.save_checkpoint(ref, out / "reference", step=step, config=config)
    training.prune_checkpoints(out / "checkpoints", 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, GRPOConfig)


def main(args: argparse.Namespace) -> int:
    run(config_from_args(GRPOConfig, args))
    return 0
