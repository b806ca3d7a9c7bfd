"""`r1lab sft`: supervised fine-tuning on chat data (R1 §2.3.1 cold start, §2.3.3 the later SFT).

Each line of a chat JSONL file (`prompt`, `response`, optional `system`; see r1lab.data) is
rendered with the chat template, ``<|bos|>[system]<|user|>prompt<|assistant|>response<|eos|>``,
and trained with next-token (+ MTP) cross-entropy on the response tokens and the closing EOS
only. In R1 the responses are in its output format, ``<think>reasoning</think>`` then a summary;
the stage trains on whatever the file holds and reports the share that is in that format.
Short examples are packed several to a row of `seq_len` tokens, each attending only to itself
(document mask, positions from 0). Epochs over a fresh shuffle each; AdamW with warmup and cosine
decay (paper: 2-3 epochs, 5e-5 -> 5e-6; ../shared/R1-FACTS.md, "Cold start and SFT"), gradient
clipping, bf16 autocast, aux-loss-free MoE balancing after every step. Checkpoints as in
pretraining; `--resume` continues with the optimizer, RNG and data position restored.

An example longer than `seq_len` keeps its prompt and the start of its response (counted and
reported); one whose prompt alone leaves no room for a response token is an error.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from r1lab import parallel, runtime, training
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.data import SFTExample, read_sft_jsonl_lines
from r1lab.model import Transformer, document_mask, from_pretrained, max_mean_load_ratio
from r1lab.rewards.format import r1_format_reward
from r1lab.tokenizer import Tokenizer

IGNORE = -100  # label of a position that takes no loss


@dataclass(kw_only=True)
class SFTConfig:
    data: str = ""  # chat JSONL: one {"prompt", "response", optional "system"} object per line
    init: str = "runs/base/base"  # checkpoint (model + tokenizer) to fine-tune
    out_dir: str = "runs/sft"  # run directory: checkpoints/, metrics.jsonl, final checkpoint in model/
    seed: int = 0  # seeds the example order of every epoch
    epochs: int = 2  # passes over the data; paper: 2-3
    max_steps: int = 0  # optimizer steps; 0 = as many as `epochs` take (else epochs repeat or stop early)
    seq_len: int = 512  # tokens per row; longer examples lose the end of their response; paper: 32,768
    batch_size: int = 8  # rows per optimizer step; paper: 128 sequences
    packing: bool = True  # several short examples per row (each sees only itself); False = one per row
    lr: float = 5e-5  # peak learning rate; paper: 5e-5 (tiny models take a higher one)
    min_lr_ratio: float = 0.1  # cosine decays to lr * this; paper: 5e-6 / 5e-5 = 0.1
    warmup_steps: int = 10  # linear warmup steps
    weight_decay: float = 0.1  # AdamW decoupled weight decay on matrices
    grad_clip: float = 1.0  # max global gradient norm
    bf16: bool = field(default_factory=runtime.default_bf16)  # bf16 autocast; default: where the machine has it in hardware
    # under torchrun: each process keeps 1/N of every MoE layer's routed experts, whole, and tokens go to them
    # by all-to-all (expert parallelism, V3 §3.2; r1lab/expert_parallel.py); off: FSDP2 shards them as the rest
    expert_parallel: bool = False
    device: str = "cpu"  # cpu | cuda | cuda:N: where the model trains (a launcher may wrap it beforehand)
    log_every: int = 10  # steps between tokens/s readings (progress bar and metrics.jsonl)
    save_every: int = 100  # steps between resumable checkpoints
    keep_checkpoints: int = 2  # resumable checkpoints kept on disk
    threads: int = 0  # torch threads; 0 = keep the process's count (torch's default unless set)
    resume: bool = False  # continue from the newest checkpoint in out_dir

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("SFTConfig.data: give a chat JSONL file (--data)")
        runtime.check_int_fields(self)  # epochs = 2.5 ran 3 epochs; seq_len 256.0 failed deep in the run
        for name in ("epochs", "seq_len", "batch_size", "log_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SFTConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_steps < 0:
            raise ValueError("SFTConfig.max_steps must be >= 0 (0 = as many as the epochs take)")
        training.check_optimizer_settings(self)
        runtime.check_device(self.device, "SFTConfig")
        runtime.check_seed(self.seed, "SFTConfig")
        runtime.check_threads(self.threads, "SFTConfig")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Sample:
    """One tokenized example: prompt ids then response ids (the last one EOS unless truncated)."""

    ids: list[int]  # the conversation, at most seq_len tokens
    n_prompt: int  # the first n_prompt ids take no loss
    truncated: bool  # the response was cut to fit seq_len


def tokenize(tokenizer: Tokenizer, example: SFTExample, seq_len: int, where: str) -> Sample:
    """The chat-template ids of `example`; ValueError naming `where` if the template's prompt is
    not a prefix of the conversation or the prompt leaves no room in `seq_len`."""
    messages = example.messages()
    full = tokenizer.apply_chat_template(messages)
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True)
    if full[:len(prompt)] != prompt or len(full) == len(prompt):
        raise ValueError(f"{where}: the chat template's prompt is not a strict prefix of the conversation")
    if len(prompt) >= seq_len:
        raise ValueError(f"{where}: the prompt alone is {len(prompt)} tokens; seq_len {seq_len} leaves no room "
                         "for the response (raise --seq-len)")
    return Sample(ids=full[:seq_len], n_prompt=len(prompt), truncated=len(full) > seq_len)


def shifted_labels(ids: Sequence[int], n_prompt: int) -> list[int]:
    """Next-token targets of one example: position i predicts ids[i + 1] when that is a response
    token, else IGNORE.

    >>> shifted_labels([1, 7, 8, 4, 9, 2], n_prompt=4)  # prompt 1 7 8 4 | response 9 2 (EOS)
    [-100, -100, -100, 9, 2, -100]
    """
    return [IGNORE] * (n_prompt - 1) + list(ids[n_prompt:]) + [IGNORE]


def pack_rows(lengths: Sequence[int], order: Sequence[int], seq_len: int, packing: bool = True) -> list[list[int]]:
    """Example indices per row, taken in `order`: each joins the current row while it fits, else
    opens a new one (greedy next-fit); an example is never split. packing=False: one per row.

    >>> pack_rows([5, 3, 4, 2, 6], order=[0, 1, 2, 3, 4], seq_len=8)
    [[0, 1], [2, 3], [4]]
    """
    rows: list[list[int]] = []
    used = seq_len
    for i in order:
        if not packing or used + lengths[i] > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += lengths[i]
    return rows


def epoch_rows(lengths: Sequence[int], config: SFTConfig, epoch: int) -> list[list[int]]:
    """The rows of epoch `epoch`: the examples packed in a fresh order seeded by (seed, epoch)."""
    order = list(range(len(lengths)))
    random.Random(f"sft:{config.seed}:{epoch}").shuffle(order)
    return pack_rows(lengths, order, config.seq_len, config.packing)


def plan(lengths: Sequence[int], config: SFTConfig) -> list[tuple[float, list[list[int]]]]:
    """Every optimizer step's rows, with the epoch progress at its end (1.0 = one epoch done).

    A pure function of the example lengths and the config, so a resumed run sees the same
    batches. `max_steps` > 0 repeats epochs or stops inside one; else `epochs` whole epochs."""
    steps: list[tuple[float, list[list[int]]]] = []
    epoch, bs = 0, config.batch_size
    while (len(steps) < config.max_steps) if config.max_steps else (epoch < config.epochs):
        rows = epoch_rows(lengths, config, epoch)
        n = math.ceil(len(rows) / bs)
        steps += [(epoch + (b + 1) / n, rows[b * bs:(b + 1) * bs]) for b in range(n)]
        epoch += 1
    return steps[:config.max_steps] if config.max_steps else steps


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) examples back to back, pad id after the last one of a row
    labels: torch.Tensor  # (B, T) next-token targets on response tokens, IGNORE elsewhere
    document_ids: torch.Tensor  # (B, T) index of each position's example in its row; padding: its own
    position_ids: torch.Tensor  # (B, T) position within its example, from 0
    token_valid: torch.Tensor  # (B, T) bool, False on the padding after a row's last example
    tokens: int  # real (non-padding) tokens

    def attention_mask(self) -> torch.Tensor:
        return document_mask(self.document_ids)  # (B, 1, T, T): each example sees only itself

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.input_ids.to(device), self.labels.to(device), self.document_ids.to(device),
                     self.position_ids.to(device), self.token_valid.to(device), self.tokens)


def collate(samples: Sequence[Sample], rows: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """Rows of example indices -> tensors; T = the longest row (more padding would be wasted work)."""
    T = max(sum(len(samples[i].ids) for i in row) for row in rows)
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(rows), T), IGNORE, dtype=torch.long)  # (B, T)
    document_ids = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
    position_ids = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
    token_valid = torch.zeros((len(rows), T), dtype=torch.bool)  # (B, T)
    for b, row in enumerate(rows):
        at = 0
        for doc, i in enumerate(row):
            s, n = samples[i], len(samples[i].ids)
            input_ids[b, at:at + n] = torch.tensor(s.ids)
            labels[b, at:at + n] = torch.tensor(shifted_labels(s.ids, s.n_prompt))
            document_ids[b, at:at + n] = doc
            position_ids[b, at:at + n] = torch.arange(n)
            at += n
        token_valid[b, :at] = True
        document_ids[b, at:] = len(row)  # the padding is a document of its own
        position_ids[b, at:] = torch.arange(T - at)
    tokens = sum(len(samples[i].ids) for row in rows for i in row)
    return Batch(input_ids, labels, document_ids, position_ids, token_valid, tokens)


# ----------------------------------------------------------------------------- training


def train_step(model: Transformer, optimizer: torch.optim.Optimizer, batch: Batch, config: SFTConfig,
               world: parallel.World = parallel.World()) -> dict[str, float]:
    """One optimizer step on the response tokens of `batch` (this process's share of the step's
    rows in a distributed run); returns the whole step's statistics, its token counts included."""
    with runtime.autocast(config.bf16, config.device):
        out = model.loss(batch.input_ids, batch.labels, attention_mask=batch.attention_mask(),
                         position_ids=batch.position_ids, token_valid=batch.token_valid)  # pads leave MoE balancing out
    targets = int((batch.labels != IGNORE).sum())
    mtp = out.mtp.item() if out.mtp is not None else 0.0
    # one collective for every count and sum of the step
    total, ce_sum, mtp_sum, tokens = parallel.all_sum([targets, out.ce.item() * targets, mtp * targets, batch.tokens],
                                                      world)
    # the mean over every process's response tokens: exact for the cross-entropy; the MTP depths and
    # the balance loss, whose counts differ a little, are weighted alike
    (out.loss * parallel.loss_weight(targets, world, total=total)).backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    parallel.sync_expert_load(model, world)  # the global batch's load, the same biases everywhere
    balance = max_mean_load_ratio(model.expert_load())
    model.update_router_bias()  # aux-loss-free balancing, after every optimizer step (V3 §2.1.2)
    record = {"loss": ce_sum / max(total, 1), "grad_norm": parallel.scalar(grad_norm), "expert_load_max_mean": balance}
    if out.mtp is not None:
        record["mtp_loss"] = mtp_sum / max(total, 1)
    return {**record, "response_tokens": int(total), "tokens": int(tokens)}


def empty_batch(pad_id: int) -> Batch:
    """Two padding tokens that take no loss: the share of a process left without a row by a short
    last batch (it must still run the forward and backward, whose collectives every process joins;
    two tokens, so that the MTP depth runs too)."""
    ids = torch.full((1, 2), pad_id, dtype=torch.long)
    return Batch(ids, torch.full_like(ids, IGNORE), torch.zeros_like(ids), torch.arange(2).view(1, 2),
                 torch.zeros_like(ids, dtype=torch.bool), 0)


# what a resumed SFT run must share with the one that stopped: what decides its plan of batches
# (a longer --max-steps, other --epochs or another learning rate may continue a run: each epoch's
# batches depend on the seed and the epoch's number only, so the plan's prefix is the same)
SAME_RUN_FIELDS = ("data", "init", "seed", "seq_len", "batch_size", "packing")


# the data file's SHA-256, saved with each checkpoint: a resumed run refuses a file changed in place
DATA_DIGEST = "data.sha256"


def _load(config: SFTConfig, data_digest: str, device: str | None = None) -> tuple[Transformer, Tokenizer, Path | None]:
    """The model (on `device`, default config.device), its tokenizer and the checkpoint resumed from."""
    ck = training.resume_checkpoint(config, SAME_RUN_FIELDS)
    if ck is not None and (ck / DATA_DIGEST).is_file() and (ck / DATA_DIGEST).read_text().strip() != data_digest:
        raise ValueError(f"--resume from {ck}: {config.data} has changed since it was saved; resume with "
                         "the run's data, or start afresh without --resume")
    model = from_pretrained(ck or config.init, device=device or config.device).train()
    tokenizer = Tokenizer.load(ck or config.init)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"{ck or config.init}: tokenizer has {tokenizer.vocab_size} tokens, the model "
                         f"{model.config.vocab_size}")
    return model, tokenizer, ck


def check_positions(samples: Sequence[Sample], max_positions: int, config: SFTConfig,
                    lines: Sequence[int] | None = None) -> None:
    """Positions restart at 0 in every example, so only an example (cut to seq_len) longer than the
    model's positions is refused: it would train positions the engine never samples at, silently.
    ``lines``: each example's line in the file, named in the error (blank lines make it differ from
    the example's number)."""
    for i, s in enumerate(samples):
        if len(s.ids) > max_positions:
            where = f"{config.data}:{lines[i]}: the example" if lines else f"{config.data}: example {i + 1}"
            raise ValueError(f"{where} is {len(s.ids)} tokens (cut to seq_len "
                             f"{config.seq_len}), past the model's max_position_embeddings ({max_positions}); "
                             f"give --seq-len {max_positions} or less")


def describe(examples: Sequence[SFTExample], samples: Sequence[Sample], n_steps: int, config: SFTConfig) -> None:
    """Prints what will be trained: tokens, truncations, R1-format share, packing fill."""
    tokens = sum(len(s.ids) for s in samples)
    trained = sum(len(s.ids) - s.n_prompt for s in samples)
    truncated = sum(s.truncated for s in samples)
    r1_format = sum(r1_format_reward(e.response) for e in examples) / len(examples)
    lengths = [len(s.ids) for s in samples]
    rows = epoch_rows(lengths, config, 0)
    # `collate` pads each batch to its longest row, not to seq_len: that is the compute spent
    padded = 0
    for start in range(0, len(rows), config.batch_size):
        batch = rows[start:start + config.batch_size]
        padded += len(batch) * max(sum(lengths[i] for i in row) for row in batch)
    print(f"{len(examples):,} examples from {config.data}: {tokens:,} tokens, {trained:,} of them response "
          f"tokens; {truncated} truncated to seq_len {config.seq_len}; {r1_format:.0%} in R1's format "
          "(<think>...</think> then a summary)")
    print(f"{n_steps:,} steps of {config.batch_size} rows; an epoch is {len(rows):,} rows, "
          f"{tokens / padded:.0%} of their tokens real (the rest padding)")
    training.warn_if_all_warmup(config.warmup_steps, n_steps)  # a small data set's steps can all be warmup


def run(config: SFTConfig) -> Path:
    """Fine-tunes `init` on `data` and returns the final checkpoint directory (`out_dir/model`).
    Under torchrun, data parallel over the processes (`r1lab.parallel`): each trains on its share
    of every step's rows, with the numbers of one process training on them all."""
    numbered = read_sft_jsonl_lines(config.data)  # first: bad data or a bad --init leaves no run directory
    lines, examples = [line for line, _ in numbered], [example for _, example in numbered]
    digest = training.file_digest(config.data)
    world = parallel.init(config.device)
    model, tokenizer, ck = _load(config, digest, world.device)
    # errors name the file and line, as the reader's do: with blank lines, "example 3" is not line 3
    samples = [tokenize(tokenizer, example, config.seq_len, f"{config.data}:{line}")
               for line, example in numbered]
    check_positions(samples, model.config.max_position_embeddings, config, lines)
    steps = plan([len(s.ids) for s in samples], config)
    training.check_resume_step(ck, len(steps))
    # a fresh run drops an earlier run's checkpoints/
    out = training.start_run(config, "sft", fresh=ck is None, world=world)
    describe(examples, samples, len(steps), config)
    # before the optimizer: it holds the shards
    model = parallel.parallelize(model, world, bf16=config.bf16, expert_parallel=config.expert_parallel)
    optimizer = training.make_optimizer(model, config.lr, config.weight_decay)
    start = training.load_training_state(ck, optimizer, model=model)["step"] if ck else 0
    if ck:
        print(f"resumed from {ck} at step {start}")
    metrics = training.open_log(out / "metrics.jsonl", start, world)

    total, speed = len(steps), training.Throughput()
    bar = tqdm(range(start, total), initial=start, total=total, desc="sft", dynamic_ncols=True, disable=not world.main)
    for step in bar:
        lr = training.lr_at(step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=total,
                            min_lr_ratio=config.min_lr_ratio)
        training.set_lr(optimizer, lr)
        epoch, rows = steps[step]
        mine = parallel.shard(rows, world)
        batch = (collate(samples, mine, tokenizer.pad_id) if mine else empty_batch(tokenizer.pad_id)).to(world.device)
        record = {"step": step + 1, "epoch": round(epoch, 4), "lr": lr, **train_step(model, optimizer, batch, config, world)}
        speed.add(record["tokens"])
        if (step + 1) % config.log_every == 0 or step + 1 == total:
            record["tokens_per_s"] = speed.rate()
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        metrics.write(record)
        if (step + 1) % config.save_every == 0 and step + 1 < total:
            with speed.paused():
                training.save_checkpoint(model, out / "checkpoints" / f"step_{step + 1:06d}", step=step + 1,
                                         config=config, optimizer=optimizer, tokenizer=tokenizer,
                                         extra_files={DATA_DIGEST: digest + "\n"}, world=world)
                if world.main:
                    training.prune_checkpoints(out / "checkpoints", config.keep_checkpoints)
    final = training.save_checkpoint(model, out / "model", step=total, config=config, tokenizer=tokenizer,
                                     world=world)
    print(f"fine-tuned model saved to {final}")
    return final


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, SFTConfig)


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    config = config_from_args(SFTConfig, args)
    training.check_run_dir(config.out_dir, "sft")
    run(config)
    print(f"done in {math.ceil(time.perf_counter() - start)} s")
    return 0
