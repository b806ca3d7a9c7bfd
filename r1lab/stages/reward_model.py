"""`r1lab reward-model`: train a reward model for all-scenario RL (R1 §2.3.4).

R1 scores general (non-reasoning) prompts with two reward models of the policy's architecture plus
a scalar head (../shared/R1-FACTS.md, "All-scenario RL"):
- helpfulness, `--objective pairwise`: preference pairs, Bradley–Terry loss
  -log sigmoid(r_chosen - r_rejected); JSONL lines ``{"prompt", "chosen", "rejected"}``. Paper: 66,000
  pairs, batch 256, lr 6e-6, 1 epoch; it is given only the final summary, so a pair's texts should be
  summaries (the RL stage passes the summary the same way);
- safety, `--objective pointwise`: responses labelled safe (1) or unsafe (0), binary cross-entropy
  on the score as a logit; JSONL lines ``{"prompt", "response", "label"}``, the whole response.
Other fields of a line are allowed (provenance). Each (prompt, response) is rendered with the chat
template as SFT renders an example (`r1lab.model.reward.render`) and scored at its closing EOS; one
longer than the model's positions keeps its last tokens.

The run starts from the policy checkpoint `init` (trunk copied, head drawn with `seed`), holds out
`eval_share` of the file (a split drawn by `seed`), trains `epochs` passes over the rest in a fresh
order each (AdamW, warmup + cosine, gradient clipping, bf16 autocast, aux-loss-free MoE balancing
after every step), logs each step to `metrics.jsonl`, then writes the accuracy on both shares to
`eval.json` (pairwise: score(chosen) > score(rejected); pointwise: (score > 0) == label) and saves
the model to `out_dir/model` last, atomically, with its tokenizer and the resolved config
(`r1lab_config.json`). The stage is short and has no --resume: an interrupted run starts again from
scratch (a fresh run first removes an earlier run's `model/` and `eval.json`, so a crash never leaves
a model that looks like this run's).

The paper's lr 6e-6 is for 66,000 pairs; a tiny model given a few hundred items in one epoch needs
more. From base-tiny, 720 synthetic pairs whose chosen response names the prompt's topic (80 held
out) reached 82 / 91 / 96% held-out accuracy at lr 1e-4 / 3e-4 / 1e-3; the default is 3e-4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from r1lab import parallel, runtime, training
from r1lab.benchmarks import check_jsonl_file, jsonl_objects
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.data import check_output_dir, write_text_atomically
from r1lab.losses import bradley_terry_loss, pointwise_reward_loss
from r1lab.model import from_pretrained, max_mean_load_ratio
from r1lab.model.reward import RewardModel, render, right_pad, save_reward_model
from r1lab.tokenizer import Tokenizer

OBJECTIVES = ("pairwise", "pointwise")
EVAL_FILE = "eval.json"  # accuracy on the held-out and training shares, written before the model


@dataclass(kw_only=True)
class RewardModelConfig:
    data: str = ""  # JSONL: {"prompt", "chosen", "rejected"} (pairwise) or {"prompt", "response", "label"} (pointwise)
    objective: str = "pairwise"  # pairwise (helpfulness, Bradley–Terry) | pointwise (safety, labels 0/1)
    init: str = "runs/base/base"  # policy checkpoint (model + tokenizer) whose trunk the reward model starts from
    out_dir: str = "runs/rm"  # run directory: metrics.jsonl, eval.json, the reward model in model/
    seed: int = 0  # seeds the held-out split, the head's init and each epoch's order
    epochs: int = 1  # passes over the training share; paper: 1
    batch_size: int = 16  # items (pairs or labelled responses) per optimizer step; paper: 256
    lr: float = 3e-4  # peak learning rate; paper: 6e-6, too low in miniature (module docstring)
    warmup_steps: int = 5  # linear warmup steps
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    weight_decay: float = 0.1  # AdamW decoupled weight decay on matrices
    grad_clip: float = 1.0  # max global gradient norm
    eval_share: float = 0.1  # share of the file held out for accuracy (split by seed); 0 = none
    bf16: bool = field(default_factory=runtime.default_bf16)  # bf16 autocast (not the head); default: where the machine has bf16
    # under torchrun: each process keeps 1/N of every MoE layer's routed experts, whole, and tokens go to them
    # by all-to-all (expert parallelism, V3 §3.2; r1lab/expert_parallel.py); off: FSDP2 shards them as the rest
    expert_parallel: bool = False
    device: str = "cpu"  # cpu | cuda | cuda:N: where the model trains
    threads: int = 0  # torch threads; 0 = keep the process's count (torch's default unless set)

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("RewardModelConfig.data: give a JSONL file of pairs or labelled responses (--data)")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"RewardModelConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        runtime.check_int_fields(self)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"RewardModelConfig.{name} must be > 0, got {getattr(self, name)}")
        share = self.eval_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:  # NaN fails too
            raise ValueError(f"RewardModelConfig.eval_share must be a number in [0, 1), got {share!r}")
        training.check_optimizer_settings(self)
        runtime.check_device(self.device, "RewardModelConfig")
        runtime.check_seed(self.seed, "RewardModelConfig")
        runtime.check_threads(self.threads, "RewardModelConfig")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PairItem:
    """A helpfulness pair: the same prompt, a preferred and a dispreferred response."""

    prompt: str
    chosen: str
    rejected: str
    line: int  # 1-based line in the file


@dataclass(frozen=True)
class LabelItem:
    """A safety example: a response labelled 1 (safe / good) or 0 (unsafe / bad)."""

    prompt: str
    response: str
    label: int
    line: int  # 1-based line in the file


def _text(record: dict[str, Any], name: str, where: str, *, empty_ok: bool = False) -> str:
    """Field `name` as text, or a ValueError naming `where` (file:line) and the field."""
    if name not in record:
        raise ValueError(f"{where}: needs a text field {name!r}; fields are {sorted(record)}")
    value = record[name]
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {name!r} must be text, got {type(value).__name__} {value!r:.40}")
    if not empty_ok and not value.strip():
        raise ValueError(f"{where}: empty {name!r}")
    try:  # a lone surrogate (JSON "\ud83d", a cut emoji) parses but cannot be encoded
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where}: field {name!r} is not valid Unicode (a lone surrogate at character "
                         f"{err.start + 1})") from None
    return value


def _label(record: dict[str, Any], where: str) -> int:
    """Field 'label' as 0 or 1 (an int: true, 1.0 or "1" are refused), or a ValueError naming `where`."""
    if "label" not in record:
        raise ValueError(f"{where}: needs a field 'label' (0 or 1); fields are {sorted(record)}")
    label = record["label"]
    if not runtime.is_int(label) or label not in (0, 1):
        raise ValueError(f"{where}: field 'label' must be 0 (unsafe / bad) or 1 (safe / good), got {label!r:.40}")
    return label


def read_items(path: str | Path, objective: str) -> list[PairItem] | list[LabelItem]:
    """Every item of a reward-model JSONL file, in order; blank lines skipped. FileNotFoundError for a
    missing file, ValueError for a directory or naming the file and line of a malformed one. A
    written-out control token (``<|eos|>``) is allowed: it is encoded as text, in training as in scoring."""
    path = check_jsonl_file(path, "data file")
    items: list[Any] = []
    for line, record in jsonl_objects(path):
        where = f"{path}:{line}"
        prompt = _text(record, "prompt", where, empty_ok=True)
        if objective == "pairwise":
            # an empty reply is a reply (a model that says nothing): a pair or label may hold one
            chosen, rejected = _text(record, "chosen", where, empty_ok=True), _text(record, "rejected", where, empty_ok=True)
            if chosen == rejected:  # a preference between equal texts teaches nothing and scores as wrong
                raise ValueError(f"{where}: 'chosen' and 'rejected' are the same text")
            items.append(PairItem(prompt=prompt, chosen=chosen, rejected=rejected, line=line))
        else:
            items.append(LabelItem(prompt=prompt, response=_text(record, "response", where, empty_ok=True),
                                   label=_label(record, where), line=line))
    if not items:
        raise ValueError(f"{path}: no examples")
    return items


def split(n: int, eval_share: float, seed: int) -> tuple[list[int], list[int]]:
    """Item indices (training, held out): round(n * eval_share) of them, at least one when the share is
    > 0, held out by a shuffle seeded with `seed`; both lists in file order.

    >>> split(10, 0.2, seed=0) == split(10, 0.2, seed=0), len(split(10, 0.2, seed=0)[1]), split(3, 0.0, 0)
    (True, 2, ([0, 1, 2], []))
    """
    order = list(range(n))
    random.Random(f"reward-model-split:{seed}").shuffle(order)
    n_eval = max(1, round(n * eval_share)) if eval_share > 0 else 0
    if n - n_eval < 1:
        raise ValueError(f"{n} item(s) leave none to train on after holding out eval_share {eval_share}: give "
                         "more items or a lower --eval-share")
    return sorted(order[n_eval:]), sorted(order[:n_eval])


@dataclass(frozen=True)
class Example:
    """An item's token ids: pairwise (chosen, rejected); pointwise (response,) with its label."""

    sequences: tuple[list[int], ...]
    label: int  # pointwise: 1 safe / good, 0 unsafe / bad; pairwise: 1 (the first sequence is preferred)


def encode(tokenizer: Tokenizer, item: PairItem | LabelItem) -> Example:
    if isinstance(item, PairItem):
        return Example((render(tokenizer, item.prompt, item.chosen), render(tokenizer, item.prompt, item.rejected)), 1)
    return Example((render(tokenizer, item.prompt, item.response),), item.label)


# ----------------------------------------------------------------------------- training


def correct(scores: torch.Tensor, labels: torch.Tensor, objective: str) -> torch.Tensor:
    """scores (K, B): (chosen, rejected) rows or one row of responses; labels (B,) -> (B,) bool, the
    items the model gets right (pairwise: chosen above rejected, a tie wrong; pointwise: score > 0 iff label 1)."""
    if objective == "pairwise":
        return scores[0] > scores[1]
    return (scores[0] > 0) == labels.bool()


def item_scores(rm: RewardModel, examples: Sequence[Example], device: str) -> torch.Tensor:
    """(K, B) scores of a batch of items, all their sequences in one forward."""
    k = len(examples[0].sequences)
    batch = right_pad([e.sequences[j] for j in range(k) for e in examples], rm.config.pad_token_id,
                      rm.config.max_position_embeddings).to(device)
    return rm(batch.input_ids, batch.attention_mask).view(k, len(examples))  # (K, B)


def train_step(rm: RewardModel, optimizer: torch.optim.Optimizer, examples: Sequence[Example],
               config: RewardModelConfig, world: parallel.World = parallel.World(),
               items: int | None = None) -> dict[str, float]:
    """One optimizer step on a batch of items (this process's share of the step's in a distributed
    run); returns the whole step's statistics. `items`: how many of `examples` are this process's
    own (default all); a share left empty by a short last batch passes one stand-in item, forwarded
    (the forward is a collective) with weight 0: only its tokens' routing counts toward the MoE load."""
    items = len(examples) if items is None else items
    labels = torch.tensor([e.label for e in examples], device=world.device)  # (B,)
    with runtime.autocast(config.bf16, config.device):
        scores = item_scores(rm, examples, world.device)  # (K, B), float32
    if config.objective == "pairwise":
        loss = bradley_terry_loss(scores[0], scores[1])  # R1 §2.3.4 helpfulness
    else:
        loss = pointwise_reward_loss(scores[0], labels)  # R1 §2.3.4 safety
    own = scores.detach()[:, :items]
    right = correct(own, labels[:items], config.objective).float().sum().item()
    margin = (own[0] - own[1]).sum().item() if config.objective == "pairwise" else 0.0  # sum of r_chosen - r_rejected
    total, loss_sum, right, margin = parallel.all_sum([items, loss.item() * items, right, margin], world)
    (loss * parallel.loss_weight(items, world, total=total)).backward()  # the mean over every process's items
    grad_norm = torch.nn.utils.clip_grad_norm_(rm.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    parallel.sync_expert_load(rm, world)  # the global batch's load, the same biases everywhere
    balance = max_mean_load_ratio(rm.expert_load())
    rm.update_router_bias()  # aux-loss-free balancing, after every optimizer step (V3 §2.1.2)
    record = {"loss": loss_sum / total, "accuracy": right / total, "grad_norm": parallel.scalar(grad_norm),
              "expert_load_max_mean": balance}
    if config.objective == "pairwise":
        record["margin"] = margin / total  # mean r_chosen - r_rejected
    return record


def plan(n_train: int, config: RewardModelConfig) -> list[tuple[float, list[int]]]:
    """Every step's item indices (into the training share) with the epoch progress at its end: each
    epoch a fresh order seeded by (seed, epoch), cut into batches of batch_size (the last may be smaller)."""
    steps: list[tuple[float, list[int]]] = []
    for epoch in range(config.epochs):
        order = list(range(n_train))
        random.Random(f"reward-model:{config.seed}:{epoch}").shuffle(order)
        n = math.ceil(n_train / config.batch_size)
        steps += [(epoch + (b + 1) / n, order[b * config.batch_size:(b + 1) * config.batch_size]) for b in range(n)]
    return steps


def accuracy(rm: RewardModel, examples: Sequence[Example], config: RewardModelConfig) -> float | None:
    """The share of `examples` the model gets right (`correct`), scored in eval mode; None for none."""
    if not examples:
        return None
    k = len(examples[0].sequences)
    flat = rm.score_ids([e.sequences[j] for j in range(k) for e in examples], batch_size=2 * config.batch_size,
                        bf16=config.bf16)
    labels = torch.tensor([e.label for e in examples])  # (N,)
    return correct(torch.tensor(flat).view(k, len(examples)), labels, config.objective).float().mean().item()


def _load(config: RewardModelConfig, device: str | None = None) -> tuple[RewardModel, Tokenizer]:
    """The reward model started from `init` (trunk copied, head seeded), on `device` (default the
    config's), and `init`'s tokenizer."""
    policy = from_pretrained(config.init)
    try:
        rm = RewardModel.from_policy(policy, seed=config.seed)
    except ValueError as err:  # a policy without a pad token (or with pad = EOS)
        raise ValueError(f"--init {config.init}: {err}") from None
    del policy
    tokenizer = Tokenizer.load(config.init)
    if tokenizer.vocab_size > rm.config.vocab_size:
        raise ValueError(f"{config.init}: tokenizer has {tokenizer.vocab_size} tokens, the model "
                         f"{rm.config.vocab_size}")
    if rm.config.seq_aux_loss_alpha > 0:
        print(f"note: the checkpoint's seq_aux_loss_alpha {rm.config.seq_aux_loss_alpha} is not applied to the "
              "reward model (bias balancing still runs)")
    return rm.to(device or config.device).train(), tokenizer


def describe(examples: Sequence[Example], n_eval: int, n_steps: int, max_positions: int,
             config: RewardModelConfig) -> None:
    """Prints what will be trained: items, the split, sequences cut to the model's positions, steps."""
    kind = "preference pairs" if config.objective == "pairwise" else "labelled responses"
    cut = sum(len(s) > max_positions for e in examples for s in e.sequences)
    print(f"{len(examples):,} {kind} from {config.data}: {len(examples) - n_eval:,} to train on, {n_eval:,} held "
          f"out (eval_share {config.eval_share}); {cut} sequences longer than the model's {max_positions} "
          "positions keep their last tokens")
    if config.objective == "pointwise":
        print(f"{sum(e.label for e in examples) / len(examples):.0%} of the responses labelled 1 (safe / good)")
    print(f"{n_steps:,} steps of {config.batch_size} items ({config.epochs} epoch(s))")
    training.warn_if_all_warmup(config.warmup_steps, n_steps)


def run(config: RewardModelConfig) -> Path:
    """Trains a reward model from `init` on `data` and returns its directory (`out_dir/model`).
    Under torchrun, data parallel over the processes (`r1lab.parallel`)."""
    items = read_items(config.data, config.objective)  # first: bad data or a bad --init leaves no run directory
    train_ids, eval_ids = split(len(items), config.eval_share, config.seed)
    check_output_dir(config.out_dir)  # an --out-dir that is a file: before the model is loaded
    world = parallel.init(config.device)
    rm, tokenizer = _load(config, world.device)
    examples = [encode(tokenizer, item) for item in items]
    train, held_out = [examples[i] for i in train_ids], [examples[i] for i in eval_ids]
    steps = plan(len(train), config)
    # an earlier run's model goes
    out = training.start_run(config, "reward_model", fresh=True, own=("model",), world=world)
    if world.main:
        (out / EVAL_FILE).unlink(missing_ok=True)
    describe(examples, len(held_out), len(steps), rm.config.max_position_embeddings, config)
    # before the optimizer: it holds the shards
    rm = parallel.parallelize(rm, world, bf16=config.bf16, expert_parallel=config.expert_parallel)
    optimizer = training.make_optimizer(rm, config.lr, config.weight_decay)
    metrics = training.open_log(out / "metrics.jsonl", 0, world)
    bar = tqdm(steps, desc="reward-model", dynamic_ncols=True, disable=not world.main)
    for step, (epoch, rows) in enumerate(bar):
        lr = training.lr_at(step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=len(steps),
                            min_lr_ratio=config.min_lr_ratio)
        training.set_lr(optimizer, lr)
        mine = parallel.shard(rows, world)
        batch = [train[i] for i in mine] or [train[rows[0]]]  # a stand-in (weight 0) for an empty share
        record = {"step": step + 1, "epoch": round(epoch, 4), "lr": lr,
                  **train_step(rm, optimizer, batch, config, world, items=len(mine)), "items": len(rows)}
        metrics.write(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
    result = {"objective": config.objective, "steps": len(steps),
              "held_out": {"items": len(held_out), "accuracy": accuracy(rm, held_out, config)},
              "train": {"items": len(train), "accuracy": accuracy(rm, train, config)}}
    if world.main:
        write_text_atomically(out / EVAL_FILE, json.dumps(result, indent=2) + "\n")
    held = result["held_out"]["accuracy"]
    print(f"accuracy: held out {'-' if held is None else f'{held:.1%}'} ({len(held_out)} items), "
          f"training share {result['train']['accuracy']:.1%} ({len(train)} items)")
    # last, atomically: a crash before this line leaves no model/ (start_run removed an earlier one)
    resolved = json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n"
    whole = parallel.unsharded(rm, world)  # gathered on rank 0 (a collective), which alone writes
    final = out / "model"
    if world.main:
        final = save_reward_model(whole, final, tokenizer, extra_files={"r1lab_config.json": resolved})
    parallel.barrier(world)
    print(f"reward model saved to {final}")
    return final


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, RewardModelConfig)


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    config = config_from_args(RewardModelConfig, args)
    training.check_run_dir(config.out_dir, "reward_model")
    run(config)
    print(f"done in {math.ceil(time.perf_counter() - start)} s")
    return 0
