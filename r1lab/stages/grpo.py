"""GRPO with rule-based rewards: R1-Zero (R1 §2.2) and reasoning RL (R1 §2.3.2), one code path.

Every step: draw `prompts_per_step` questions, sample a group of `group_size` completions for
each from the current policy (one shared prefill per question), score them with the rubric
(accuracy + format [+ language consistency]), turn rewards into group-relative advantages, and
take `ppo_epochs` passes of clipped-ratio updates in minibatches, with a k3 KL penalty to a frozen
reference that is reset to the policy every `ref_reset_every` steps (R1-Zero: every 400 updates,
which are 25 of its rollouts of 16 minibatches). Each resumable checkpoint holds the reference of
its step (`checkpoints/step_N/reference/`).
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from r1lab import parallel, runtime, training
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.engine import MIN_TEMPERATURE, Engine, SamplingParams
from r1lab.losses import LOSS_AGGREGATIONS, PolicyLoss, aggregation_count, group_advantages, grpo_loss
from r1lab.model import Transformer, from_pretrained, max_mean_load_ratio
from r1lab.prompts import CHAT, R1_ZERO, check_prompt_room, check_template
from r1lab.rewards import Rubric
from r1lab.stages.rollout import (SHAPE_MULTIPLE, Rollout, StepPart, TrainBatch, build_batch, completion_logprobs,
                                  step_record, world_rubric)
from r1lab.tokenizer import Tokenizer


@dataclass(kw_only=True)
class GRPOConfig:
    init: str = "runs/base/base"  # checkpoint to start from (the base model for R1-Zero)
    out_dir: str = "runs/zero"  # run directory: checkpoints/, metrics.jsonl, samples.jsonl, final policy/
    seed: int = 0  # seeds prompt order, sampling and init of everything random
    n_prompts: int = 1024  # RL prompt pool drawn from the world's rl split
    prompts_per_step: int = 16  # questions per step (one rollout); paper: 512 a rollout (8,192 outputs), 32 a minibatch
    group_size: int = 8  # G, completions per question; paper: 16
    max_steps: int = 200  # steps, one rollout each (minibatches x ppo_epochs updates); paper: 650 rollouts (10,400 updates)
    max_new_tokens: int = 96  # completion length cap; paper: 32,768 (65,536 late)
    temperature: float = 1.0  # rollout sampling temperature; paper: 1.0
    lr: float = 2e-5  # peak learning rate; paper: 3e-6
    warmup_steps: int = 5  # linear LR warmup
    min_lr_ratio: float = 1.0  # cosine floor as a share of lr; 1.0 = constant LR
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm
    clip_eps_low: float = 0.2  # ratio clip below, 1 - eps; >= 1 clips nothing below (R1's first RL stage: eps 10)
    clip_eps_high: float = 0.2  # ratio clip above, 1 + eps; DAPO's clip-higher: 0.28; R1's first RL stage: 10
    kl_coef: float = 0.001  # beta of the k3 KL to the reference; paper: 0.001; 0 loads no reference
    ref_reset_every: int = 400  # reset the reference to the policy every N steps; paper: 400 updates (25 rollouts); 0 = never
    ppo_epochs: int = 1  # mu, passes over each rollout batch; paper: 1
    minibatches: int = 1  # optimizer steps per pass: rows split evenly (sizes differ by <= 1); paper: 16
    scale_by_std: bool = True  # divide advantages by the group std (GRPO); False = Dr. GRPO
    loss_aggregation: str = "seq_mean"  # seq_mean (GRPO) | token_mean (DAPO) | constant (Dr. GRPO)
    dynamic_sampling: bool = False  # drop groups whose rewards are all equal (DAPO)
    mask_truncated: bool = False  # no loss on completions cut by max_new_tokens (DAPO overlong filtering)
    accuracy_weight: float = 1.0  # weight of the accuracy reward; paper: 1
    format_weight: float = 1.0  # weight of the format reward; paper: 1
    strict_format: bool = True  # R1-Zero's strict (exact) or lenient format rule; the chat template has only one
    language_weight: float = 0.0  # weight of the language-consistency reward (R1 §2.3.2); 0 = off
    language: str = "en"  # target language of the chain of thought: a language of the world (en | vl)
    template: str = "r1_zero"  # prompt: r1_zero (R1 Table 1, from a base model) | chat (after the cold start)
    device: str = "cpu"  # cpu | cuda (rollouts and updates; a launcher may wrap the model beforehand)
    # bf16 autocast in rollouts and updates; tiny's updates 1.3-1.8x as fast (EPYC), 0.9-1.3x (Xeon): benchmarks/results
    bf16: bool = False
    # under torchrun: each process keeps 1/N of every MoE layer's routed experts, whole, and tokens go to them
    # by all-to-all (expert parallelism, V3 §3.2; r1lab/expert_parallel.py); off: FSDP2 shards them as the rest
    expert_parallel: bool = False
    log_samples_every: int = 10  # write a few sampled completions every N steps
    save_every: int = 50  # steps between resumable checkpoints
    threads: int = 0  # torch threads; 0 = keep the process's count (torch's default unless set)
    resume: bool = False  # continue from the newest checkpoint in out_dir

    def __post_init__(self) -> None:
        runtime.check_int_fields(self)  # max_steps = 2.5 failed in range() after the run directory was made
        for name in ("n_prompts", "prompts_per_step", "max_steps", "max_new_tokens", "ppo_epochs", "minibatches",
                     "save_every", "log_samples_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"GRPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.prompts_per_step > self.n_prompts:  # each step draws distinct prompts from the pool
            raise ValueError(f"GRPOConfig: --prompts-per-step ({self.prompts_per_step}) must be <= --n-prompts "
                             f"({self.n_prompts})")
        if self.group_size < 2:
            raise ValueError(f"GRPOConfig.group_size must be >= 2 (advantages are relative within a group), got "
                             f"{self.group_size}")
        if self.loss_aggregation not in LOSS_AGGREGATIONS:
            raise ValueError(f"GRPOConfig.loss_aggregation must be one of {LOSS_AGGREGATIONS}, got "
                             f"{self.loss_aggregation!r}")
        if not (0 <= self.kl_coef < math.inf and MIN_TEMPERATURE <= self.temperature < math.inf):  # NaN fails
            raise ValueError(f"GRPOConfig: kl_coef must be >= 0 and temperature >= {MIN_TEMPERATURE} (both finite), "
                             f"got {self.kl_coef} and {self.temperature}")
        for name in ("accuracy_weight", "format_weight", "language_weight"):  # inf or NaN: a NaN policy, exit 0
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"GRPOConfig.{name} must be >= 0 and finite, got {getattr(self, name)}")
        training.check_optimizer_settings(self)
        if self.ref_reset_every < 0:
            raise ValueError(f"GRPOConfig.ref_reset_every must be >= 0 (0 = never), got {self.ref_reset_every}")
        # eps_low >= 1 is no clip below (a ratio is > 0): R1's eps = 10 (R1-FACTS) must be expressible
        if not (self.clip_eps_low >= 0 and self.clip_eps_high >= 0):  # NaN fails too
            raise ValueError(f"GRPOConfig: clip_eps_low and clip_eps_high must be >= 0, got "
                             f"{self.clip_eps_low} and {self.clip_eps_high}")
        check_template(self.template)
        if self.template == CHAT and not self.strict_format:  # else found only after loading (world_rubric)
            raise ValueError("GRPOConfig: strict_format=False (R1-Zero's lenient format) does not apply to template "
                             "'chat', whose format reward is <think> reasoning then a summary")
        check_language(self.language)
        runtime.check_device(self.device, "GRPOConfig")
        runtime.check_seed(self.seed, "GRPOConfig")
        runtime.check_threads(self.threads, "GRPOConfig")


def check_language(language: str) -> None:
    """The language reward scores by the world's vocabulary, which knows only its own languages."""
    from r1lab.world import LANGUAGES

    if language not in LANGUAGES:
        raise ValueError(f"GRPOConfig.language must be one of the world's languages {LANGUAGES}, got {language!r}")


def minibatch_rows(n: int, minibatches: int, generator: torch.Generator,
                   keep_empty: bool = False) -> Iterator[torch.Tensor]:
    """A shuffled split of rows 0..n-1 into `minibatches` pieces whose sizes differ by at most one
    (n=6, 4 -> 2, 2, 1, 1: four steps; `chunk` would give 3, 3). Fewer when n < minibatches
    (dynamic sampling drops groups): an empty piece is no step, unless `keep_empty` (a
    data-parallel process takes every minibatch step that the others may take)."""
    return (rows for rows in torch.randperm(n, generator=generator).tensor_split(minibatches) if keep_empty or len(rows))


def shuffle_generator(config: GRPOConfig, step: int) -> torch.Generator:
    """The minibatch shuffle of training step `step`: another split every step (one seed for every
    step gave each rollout the same split), redrawn alike on resume. With one minibatch the order
    changes nothing but float rounding: seeded as before, so default runs keep their numbers."""
    return torch.Generator().manual_seed(config.seed if config.minibatches == 1 else config.seed * 1_000_003 + step)


def policy_update(model: Transformer, ref: Transformer | None, optimizer: torch.optim.Optimizer,
                  batch: TrainBatch, config: GRPOConfig, step: int = 0,
                  world: parallel.World = parallel.World()) -> dict[str, float]:
    """`ppo_epochs` passes over the batch in `minibatches` steps (shuffled by `step`, the training
    step); returns mean statistics and `train_tokens`, the completion tokens forwarded and
    backpropagated in all. A minibatch without a loss token takes no step; a batch without
    one (no row left, or all masked) returns `expert_load_max_mean` 1 and no token. The router
    biases move after each optimizer step, as in pretraining (`expert_load_max_mean`: the mean over
    those steps of the load each saw). In a distributed run `batch` is this process's groups, its
    minibatches its share of the global ones: the skip decisions are global, the losses weighed
    so that the averaged gradients are those of one process holding every row, and a process
    without rows where others have some forwards a filler (`TrainBatch.filler`) of weight 0."""
    if not parallel.all_sum([batch.mask.sum()], world)[0]:
        # every group dropped (dynamic sampling: no row, which the reference's forward cannot take)
        # or every row masked (overlong filtering): no update, no load to balance, no token trained
        return {"expert_load_max_mean": 1.0, "train_tokens": 0}
    n, device = batch.tokens.shape[0], batch.tokens.device
    filler = TrainBatch.filler(device) if world.distributed else None  # one process never lacks rows here
    ref_logp = None
    if ref is not None:  # a process without rows forwards the filler: the sharded reference's collectives
        with torch.no_grad(), runtime.autocast(config.bf16, config.device):
            ref_logp = completion_logprobs(ref, batch if n else filler, torch.arange(max(n, 1), device=device),
                                           config.temperature)
    stats: dict[str, list[float]] = {}
    tokens = 0
    g = shuffle_generator(config, step)
    for _ in range(config.ppo_epochs):
        for rows in minibatch_rows(n, config.minibatches, g, keep_empty=world.distributed):
            rows = rows.to(device)
            local = batch.mask[rows].sum()  # this process's loss tokens in the minibatch
            if not parallel.all_sum([local], world)[0]:
                # no loss token (overlong filtering masked every row): AdamW's momentum would still
                # move the weights, and ratio / clip stats of 0 would enter the step's means
                continue
            tokens += int(batch.token_valid[rows].sum())  # masked truncated rows of the minibatch too
            if len(rows):
                out = _minibatch_step(model, optimizer, batch, rows, ref_logp, config, world)
            else:  # others have rows in this minibatch: the filler's forward and backward, no loss statistics
                out = _minibatch_step(model, optimizer, filler, torch.zeros(1, dtype=torch.long, device=device), None,
                                      config, world, is_filler=True)
            stats.setdefault("expert_load_max_mean", []).append(max_mean_load_ratio(model.expert_load()))
            model.update_router_bias()  # aux-loss-free balancing after every optimizer step (V3 §2.1.2)
            # read on every process (a sharded model's gradient norm is a DTensor: reading it is a
            # collective), kept where this process had loss tokens (not the filler's, nor the zeros
            # of rows that overlong filtering masked while other processes had some)
            values = {k: parallel.scalar(v.detach()) for k, v in (
                ("loss", out.loss), ("kl", out.kl), ("clip_fraction", out.clip_fraction), ("ratio", out.ratio_mean),
                ("grad_norm", out.grad_norm))}
            for k, v in values.items() if local > 0 else ():
                stats.setdefault(k, []).append(v)
    means = {k: sum(v) / len(v) for k, v in stats.items()}  # some minibatch had a loss token
    return {**means, "train_tokens": tokens}


@dataclass
class MinibatchLoss(PolicyLoss):
    grad_norm: torch.Tensor  # the gradient's norm before clipping (global under torchrun)


def _minibatch_step(model: Transformer, optimizer: torch.optim.Optimizer, batch: TrainBatch, rows: torch.Tensor,
                    ref_logp: torch.Tensor | None, config: GRPOConfig, world: parallel.World,
                    is_filler: bool = False) -> MinibatchLoss:
    """One optimizer step on `rows` of the batch (`is_filler`: the filler's, weighed 0); the MoE
    loads are summed over the processes, ready for the bias update."""
    with runtime.autocast(config.bf16, config.device):
        logp = completion_logprobs(model, batch, rows, config.temperature)
    mask = batch.mask[rows]
    # old_logp are the engine's, the distribution that sampled the tokens: equal to this
    # forward's up to rounding in float32; under bf16 the two differ (up to ~0.05 nats on
    # tiny), so a first update's ratio is near, not exactly, 1: the importance weight of
    # the sampler's tokens, not a recomputed pi_old (which would cost one more forward)
    out = grpo_loss(logp, batch.old_logp[rows], batch.advantages[rows], mask,
                    clip_eps_low=config.clip_eps_low, clip_eps_high=config.clip_eps_high,
                    kl_coef=config.kl_coef, ref_logp=None if ref_logp is None else ref_logp[rows],
                    aggregation=config.loss_aggregation, max_len=config.max_new_tokens)
    # the filler counts no item (a constant aggregation counts rows, masked or not: its row would
    # lower the others' weights)
    count = torch.zeros(()) if is_filler else aggregation_count(mask, config.loss_aggregation)
    (out.loss * parallel.loss_weight(count, world)).backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    parallel.sync_expert_load(model, world)  # the global minibatch's load, the same biases everywhere
    return MinibatchLoss(**vars(out), grad_norm=grad_norm)


# a process's sampling seed is the step's plus rank times this: rank 0 draws what one process would
RANK_SEED_STRIDE = 1_000_000_007


def check_world(config: GRPOConfig, world: parallel.World) -> None:
    """Under torchrun every process samples an equal share of a step's groups (dynamic sampling may
    then keep unequal numbers: `policy_update` gives a process without rows a filler)."""
    if not world.distributed:
        return
    if config.prompts_per_step % world.size:
        raise ValueError(f"GRPOConfig.prompts_per_step ({config.prompts_per_step}) must be a multiple of the "
                         f"{world.size} processes: each samples an equal share of the groups")


# the prompts and their order must be the stopped run's (more steps may follow)
SAME_RUN_FIELDS = ("init", "seed", "n_prompts", "prompts_per_step", "group_size", "template")


def _load(config: GRPOConfig, same_run: tuple[str, ...], world: parallel.World = parallel.World()) -> tuple[
        Transformer, Transformer | None, Tokenizer, torch.optim.Optimizer, dict[str, Any]]:
    """Policy, KL reference, tokenizer, optimizer and the trainer state ({} on a fresh start): from
    the newest checkpoint with --resume (made with the same `same_run` settings), else from `init`.
    The RNG states are not restored here. Policy and reference are sharded in a distributed world."""
    ck = training.resume_checkpoint(config, same_run, config.max_steps)
    model = from_pretrained(ck or config.init, device=world.device).train()
    if model.config.seq_aux_loss_alpha > 0:  # see completion_logprobs
        print(f"note: the checkpoint's seq_aux_loss_alpha {model.config.seq_aux_loss_alpha} is not applied in RL "
              "(bias balancing still runs)")
    tokenizer = Tokenizer.load(ck or config.init)
    ref = _reference(model, config, ck, world.device)
    sharding = dict(bf16=config.bf16, expert_parallel=config.expert_parallel)
    model = parallel.parallelize(model, world, **sharding)  # alike, so that a reset loads the policy's shards as they are
    ref = parallel.parallelize(ref, world, **sharding) if ref is not None else None
    optimizer = training.make_optimizer(model, config.lr, config.weight_decay)
    state = training.load_training_state(ck, optimizer, rng=False, model=model) if ck else {}
    if ck:
        print(f"resumed from {ck} at step {state['step']}")
    return model, ref, tokenizer, optimizer, state


def _reference(model: Transformer, config: GRPOConfig, ck: Path | None, device: str) -> Transformer | None:
    """The frozen KL reference: the policy at the start, or the one saved with the resumed
    checkpoint (it was last reset to the policy at some step before it, `ref_reset_every`)."""
    if config.kl_coef == 0:
        return None  # no KL term: no reference model in memory at all
    if ck is not None and not (ck / "reference" / "config.json").exists():
        raise ValueError(f"{ck} has no reference/ (the KL reference of its step), which kl_coef "
                         f"{config.kl_coef} > 0 needs to resume; start afresh without --resume")
    ref = (from_pretrained(ck / "reference", device=device) if ck else copy.deepcopy(model)).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def run(config: GRPOConfig) -> Path:
    """Trains on the world's RL prompts with its rule rewards; returns the final policy directory
    (`out_dir/policy`)."""
    from r1lab.world import rl_prompts  # the default task; other tasks plug in here

    # first: a bad --init or more prompts than the split holds leave no run directory
    return train(config, rl_prompts(config.n_prompts, seed=config.seed), world_rubric(config))


def train(config: GRPOConfig, pool: Sequence[Any], rubric: Rubric,
          same_run: tuple[str, ...] = SAME_RUN_FIELDS, title: str | None = None,
          pool_at: Callable[[int], Sequence[Any]] | None = None) -> Path:
    """GRPO over a prompt `pool` (records with a `.question`) scored by `rubric`: R1-Zero and
    reasoning RL (`run`), and all-scenario RL (`all_scenario.py`: reasoning and general prompts).
    `pool_at(step)`, if given, is the part of `pool` that training step `step` (0-based) draws from.
    Under torchrun each process samples and trains on its share of every step's groups (`r1lab.parallel`)."""
    world = parallel.init(config.device)
    check_world(config, world)
    model, ref, tokenizer, optimizer, state = _load(config, same_run, world)
    check_prompt_room([p.question for p in pool], tokenizer, config.template, config.max_new_tokens,
                      model.config.max_position_embeddings, "GRPOConfig.max_new_tokens")
    start = state.get("step", 0)
    out = training.start_run(config, "grpo", fresh=not start, own=("checkpoints", "reference"), world=world)
    training.warn_if_all_warmup(config.warmup_steps, config.max_steps)  # as pretrain and sft say it
    if state:
        training.restore_rng(state)  # after start_run, which seeds the RNGs afresh
    metrics, samples = (training.open_log(out / name, start, world) for name in ("metrics.jsonl", "samples.jsonl"))
    sampler = parallel.sampling_copy(model, world)  # the policy itself in one process
    engine = Engine(sampler, tokenizer, autocast_dtype=torch.bfloat16 if config.bf16 else None)
    bar = tqdm(range(start, config.max_steps), initial=start, total=config.max_steps, desc="grpo", dynamic_ncols=True,
               disable=not world.main)
    for step in bar:
        t_step = time.perf_counter()
        lr = training.lr_at(step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.max_steps,
                            min_lr_ratio=config.min_lr_ratio)
        training.set_lr(optimizer, lr)
        drawn = random.Random(config.seed * 7919 + step).sample(pool_at(step) if pool_at else pool, config.prompts_per_step)
        problems = parallel.shard(drawn, world)
        t0 = time.perf_counter()
        parallel.sync_weights(sampler, model)  # the engine samples from the policy as it is now
        rollout = Rollout.collect(engine, tokenizer, problems, rubric, SamplingParams(
            n=config.group_size, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
            stop_token_ids=(tokenizer.eos_id,), seed=config.seed * 100_003 + step + world.rank * RANK_SEED_STRIDE),
            config.template)
        t_rollout = time.perf_counter() - t0
        rewards = torch.tensor(rollout.rewards.total).view(len(problems), config.group_size)  # (P, G)
        advantages = group_advantages(rewards, scale_by_std=config.scale_by_std)
        batch = build_batch(rollout, advantages.flatten(), tokenizer.pad_id, config.dynamic_sampling,
                            config.mask_truncated, SHAPE_MULTIPLE if config.bf16 else 1,
                            min_width=2 if world.distributed else 1).to(world.device)
        t1 = time.perf_counter()
        stats = policy_update(model, ref, optimizer, batch, config, step, world)  # no update without a loss token
        t_train = time.perf_counter() - t1
        if ref is not None and config.ref_reset_every and (step + 1) % config.ref_reset_every == 0:
            ref.load_state_dict(model.state_dict())  # R1-Zero: every 400 updates (25 rollouts)
        parts = parallel.gather(StepPart(rollout, stats, t_rollout, t_train), world)  # every process's, on rank 0
        if world.main:
            whole = Rollout.merge([p.rollout for p in parts])  # the step's groups, every process's
            record = step_record(step, lr, whole, parts, time.perf_counter() - t_step)
            metrics.write(record)
            bar.set_postfix(acc=f"{record['accuracy']:.2f}", fmt=f"{record['format_rate']:.2f}",
                            len=f"{record['length_mean']:.0f}")
            if (step + 1) % config.log_samples_every == 0 or step == 0:  # and a fresh run's first step
                for item in whole.show(k=4):
                    samples.write({"step": step + 1, **item})
        if (step + 1) % config.save_every == 0 and step + 1 < config.max_steps:
            _save(model, ref, optimizer, tokenizer, config, step + 1, world)
    if world.main:
        _plot_curves(out, config, rubric, title)  # first: a saved policy then means a finished run (the demo's reuse)
    final = training.save_checkpoint(model, out / "policy", step=config.max_steps, config=config, tokenizer=tokenizer,
                                     world=world)
    print(f"policy saved to {final}")
    return final


def _plot_curves(out: Path, config: GRPOConfig, rubric: Rubric, title: str | None = None) -> None:
    """accuracy / format, reward and length against step, next to metrics.jsonl (R1 Figures 2-3)."""
    from r1lab.plots import plot_rl_curves

    stage = title or ("R1-Zero" if config.template == R1_ZERO else "GRPO after the cold start")
    rewards = " + ".join(term.name for term in rubric.terms)
    try:
        print(f"curves saved to {plot_rl_curves(out / 'metrics.jsonl', out / 'curves.png', f'{stage} ({rewards})')}")
    except Exception as err:  # the curves are a view of metrics.jsonl: their failure must not lose the policy
        print(f"warning: curves not saved ({type(err).__name__}: {err}); metrics.jsonl holds the run's metrics")


def _save(model: Transformer, ref: Transformer | None, optimizer: torch.optim.Optimizer, tokenizer: Tokenizer,
          config: GRPOConfig, step: int, world: parallel.World = parallel.World()) -> None:
    """A resumable checkpoint with the reference of this step inside it (`step_N/reference/`),
    written before trainer_state.pt: a checkpoint that counts as complete has it."""
    out = Path(config.out_dir)
    training.save_checkpoint(model, out / "checkpoints" / f"step_{step:06d}", step=step, config=config,
                             optimizer=optimizer, tokenizer=tokenizer,
                             extra_models={"reference": ref} if ref is not None else None, world=world)
    if world.main:
        training.prune_checkpoints(out / "checkpoints", 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, GRPOConfig)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(GRPOConfig, args)
    training.check_run_dir(config.out_dir, "grpo")
    run(config)
    return 0
