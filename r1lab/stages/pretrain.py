"""`r1lab pretrain`: the base model R1 starts from, pretrained on the miniature world's corpus.

Next-token + multi-token-prediction loss (V3 §2.2) on packed documents, AdamW with warmup and
cosine decay, gradient clipping, bf16 autocast, aux-loss-free MoE balancing after every step.
Checkpoints are Hugging Face directories (weights + tokenizer + this config); `--resume`
continues from the newest one with the optimizer, RNG and data position restored.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from r1lab import parallel, runtime, training
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.model import Transformer, from_pretrained, max_mean_load_ratio, preset
from r1lab.tokenizer import RESERVED_TOKENS, Tokenizer, world_tokenizer


@dataclass(kw_only=True)
class PretrainConfig:
    out_dir: str = "runs/base"  # run directory: checkpoints/, metrics.jsonl, final checkpoint in base/
    model: str = "tiny"  # model preset (r1lab.model.PRESETS)
    seed: int = 0  # seeds the corpus, the init and the batch order
    n_docs: int = 150_000  # corpus documents (~47 tokens each)
    vocab_size: int = 1024  # tokenizer vocabulary
    seq_len: int = 256  # tokens per training row
    batch_size: int = 24  # rows per step
    max_steps: int = 900  # optimizer steps (the whole run: 8 min 50 s on 2 cores, assets/base-tiny/README.md)
    lr: float = 3e-3  # peak learning rate (tiny models tolerate a high one)
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 50  # linear warmup steps
    weight_decay: float = 0.1  # AdamW decoupled weight decay on matrices
    grad_clip: float = 1.0  # max global gradient norm
    bf16: bool = field(default_factory=runtime.default_bf16)  # bf16 autocast; default: where the machine has it in hardware
    # under torchrun: each process keeps 1/N of every MoE layer's routed experts, whole, and tokens go to them
    # by all-to-all (expert parallelism, V3 §3.2; r1lab/expert_parallel.py); off: FSDP2 shards them as the rest
    expert_parallel: bool = False
    device: str = "cpu"  # cpu | cuda | cuda:N: where the model trains (a launcher may wrap it beforehand)
    eval_every: int = 250  # steps between held-out loss evaluations
    save_every: int = 500  # steps between resumable checkpoints
    keep_checkpoints: int = 2  # resumable checkpoints kept on disk
    threads: int = 0  # torch threads; 0 = keep the process's count (torch's default unless set)
    resume: bool = False  # continue from the newest checkpoint in out_dir

    def __post_init__(self) -> None:
        runtime.check_int_fields(self)
        for name in ("n_docs", "seq_len", "batch_size", "max_steps", "eval_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PretrainConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.vocab_size < 256 + len(RESERVED_TOKENS):  # else refused only once run() trains the tokenizer
            raise ValueError(f"PretrainConfig.vocab_size must be >= {256 + len(RESERVED_TOKENS)} (256 bytes + "
                             f"{len(RESERVED_TOKENS)} reserved tokens), got {self.vocab_size}")
        training.check_optimizer_settings(self)
        # an unknown preset: refused before an earlier run's checkpoints are removed
        positions = preset(self.model).max_position_embeddings
        if self.seq_len > positions:  # it would train positions its checkpoint says it has not got
            raise ValueError(f"PretrainConfig.seq_len {self.seq_len} exceeds the {self.model!r} model's "
                             f"max_position_embeddings ({positions}); give --seq-len {positions} or less")
        runtime.check_device(self.device, "PretrainConfig")
        runtime.check_seed(self.seed, "PretrainConfig")
        runtime.check_threads(self.threads, "PretrainConfig")


def pack(tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    """One long stream: <bos> doc <eos> <bos> doc <eos> ... (the model learns where answers end)."""
    stream: list[int] = []
    for ids in tokenizer.encode_batch(texts):
        stream += [tokenizer.bos_id, *ids, tokenizer.eos_id]
    return torch.tensor(stream, dtype=torch.long)


def batch_at(stream: torch.Tensor, step: int, config: PretrainConfig,
             world: parallel.World = parallel.World()) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows, a pure function of (seed, step): a resumed run sees the same batches; on
    the world's device (the stream stays in host memory, the window draw on the CPU generator).
    In a distributed run, this process's share of them (every size-th row from its rank)."""
    g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    # Starts are drawn from [0, len - seq_len - 1): one short of the last window, so the stream's
    # final token (1 of ~7.3M) is never a label. Kept on purpose: the shipped base model
    # (r1lab/assets/base-tiny) was trained with these draws; allowing the last start changes every
    # draw, hence the base `r1lab pretrain --seed 0` gives (see the asset's README for figures)
    starts = torch.randint(0, len(stream) - config.seq_len - 1, (config.batch_size,), generator=g)
    starts = parallel.shard(starts.tolist(), world)
    rows = torch.stack([stream[s:s + config.seq_len + 1] for s in starts]).to(world.device)  # (B, T+1)
    return rows[:, :-1], rows[:, 1:]


def train_step(model: Transformer, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               config: PretrainConfig, world: parallel.World = parallel.World()) -> dict[str, float]:
    """One optimizer step on windows x, y (B, T) (this process's rows of the step's in a distributed
    run); returns the whole step's loss and MTP loss (means over every process's tokens), gradient
    norm, expert balance and `tokens`, the number of tokens trained."""
    with runtime.autocast(config.bf16, config.device):
        out = model.loss(x, y)
    (out.loss * parallel.loss_weight(x.numel(), world)).backward()  # the global batch's mean
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    parallel.sync_expert_load(model, world)  # the global batch's load, the same biases everywhere
    balance = max_mean_load_ratio(model.expert_load())
    model.update_router_bias()  # aux-loss-free balancing, after every optimizer step (V3 §2.1.2)
    mtp = 0.0 if out.mtp is None else out.mtp.item()
    ce, mtp, n = parallel.all_sum([out.ce.item() * x.numel(), mtp * x.numel(), x.numel()], world)
    record = {"loss": ce / n, "grad_norm": parallel.scalar(grad_norm), "expert_load_max_mean": balance,
              "tokens": int(n)}
    if out.mtp is not None:
        record["mtp_loss"] = mtp / n
    return record


@torch.no_grad()
def heldout_loss(model: Transformer, stream: torch.Tensor, config: PretrainConfig, n_batches: int = 4,
                 world: parallel.World = parallel.World()) -> float:
    """Mean loss on `n_batches` fixed held-out batches (every process forwards them all: a sharded
    model's forward is a collective)."""
    model.eval()
    losses = []
    for i in range(n_batches):
        x, y = batch_at(stream, -1 - i, config, parallel.World(device=world.device))
        with runtime.autocast(config.bf16, config.device):
            losses.append(model.loss(x, y).ce.item())
    model.train()
    return sum(losses) / len(losses)


def corpus_documents(config: PretrainConfig) -> tuple[list[str], list[str]]:
    """Training and held-out documents. The world's documents are short and repeat, so a second
    draw holds some training documents word for word (262 of 1,500 with the default 150,000):
    those are left out of the held-out set, whose loss would otherwise be partly on seen text."""
    from r1lab.world import pretraining_corpus

    train = pretraining_corpus(config.seed, config.n_docs)
    seen = set(train)
    held_out = [d for d in pretraining_corpus(config.seed + 10_007, max(500, config.n_docs // 100)) if d not in seen]
    return train, held_out


def corpora(config: PretrainConfig) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    """The world's tokenizer and the packed training and held-out token streams; a stream shorter
    than one window is an error (before the caller makes its run directory)."""
    tokenizer = world_tokenizer(seed=config.seed, vocab_size=config.vocab_size)
    print(f"building corpus: {config.n_docs:,} documents (seed {config.seed})")
    train_docs, val_docs = corpus_documents(config)
    stream, val_stream = pack(tokenizer, train_docs), pack(tokenizer, val_docs)
    for name, tokens in (("training", stream), ("held-out", val_stream)):
        if len(tokens) < config.seq_len + 2:  # a window is seq_len + 1 tokens, drawn from a random start
            raise ValueError(f"the {name} corpus has {len(tokens):,} tokens, fewer than seq_len + 2 "
                             f"({config.seq_len + 2}): raise --n-docs or lower --seq-len")
    return tokenizer, stream, val_stream


def run(config: PretrainConfig) -> Path:
    """Pretrains and returns the final checkpoint directory (`out_dir/base`); under torchrun, data
    parallel over the processes (`r1lab.parallel`), each drawing its rows of every step's windows."""
    world = parallel.init(config.device)
    if config.batch_size < world.size:
        raise ValueError(f"--batch-size {config.batch_size} is fewer rows than the {world.size} processes")
    # the corpus and the batches must be the stopped run's (more steps may follow)
    ck = training.resume_checkpoint(config, ("model", "seed", "n_docs", "vocab_size", "seq_len", "batch_size"),
                                    config.max_steps)
    tokenizer, stream, val_stream = corpora(config)
    out = training.start_run(config, "pretrain", fresh=ck is None, world=world)  # a fresh run drops an earlier run's checkpoints/
    print(f"corpus: {len(stream):,} tokens; {config.max_steps * config.batch_size * config.seq_len:,} will be trained")
    training.warn_if_all_warmup(config.warmup_steps, config.max_steps)

    model_config = preset(config.model).replace(vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.bos_id,
                                               eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    # initialised on the CPU (the same weights anywhere, in every process), or the checkpoint's
    model = Transformer(model_config) if ck is None else from_pretrained(ck)
    model = parallel.parallelize(model.to(world.device).train(), world, bf16=config.bf16,
                                 expert_parallel=config.expert_parallel)
    optimizer = training.make_optimizer(model, config.lr, config.weight_decay)
    start_step = 0
    if ck is not None:
        start_step = training.load_training_state(ck, optimizer, model=model)["step"]
        print(f"resumed from {ck} at step {start_step}")
    metrics = training.open_log(out / "metrics.jsonl", start_step, world)

    speed = training.Throughput()
    bar = tqdm(range(start_step, config.max_steps), initial=start_step, total=config.max_steps,
               desc="pretrain", dynamic_ncols=True, disable=not world.main)
    for step in bar:
        lr = training.lr_at(step, lr=config.lr, warmup_steps=config.warmup_steps, total_steps=config.max_steps,
                            min_lr_ratio=config.min_lr_ratio)
        training.set_lr(optimizer, lr)
        stats = train_step(model, optimizer, *batch_at(stream, step, config, world), config, world)
        speed.add(stats.pop("tokens"))
        record = {"step": step + 1, "lr": lr, **stats}
        if (step + 1) % 10 == 0 or step + 1 == config.max_steps:  # a run under 10 steps logs one too, as SFT's
            record["tokens_per_s"] = speed.rate()
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if (step + 1) % config.eval_every == 0 or step + 1 == config.max_steps:
            with speed.paused():
                record["heldout_loss"] = heldout_loss(model, val_stream, config, world=world)
            bar.write(f"step {step + 1}: loss {record['loss']:.3f}, held-out loss {record['heldout_loss']:.3f}")
        metrics.write(record)
        if (step + 1) % config.save_every == 0 and step + 1 < config.max_steps:
            with speed.paused():
                training.save_checkpoint(model, out / "checkpoints" / f"step_{step + 1:06d}", step=step + 1,
                                         config=config, optimizer=optimizer, tokenizer=tokenizer, world=world)
                if world.main:
                    training.prune_checkpoints(out / "checkpoints", config.keep_checkpoints)
    final = training.save_checkpoint(model, out / "base", step=config.max_steps, config=config, tokenizer=tokenizer,
                                     world=world)
    print(f"base model saved to {final}")
    return final


# ----------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, PretrainConfig)


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    config = config_from_args(PretrainConfig, args)
    training.check_run_dir(config.out_dir, "pretrain")
    run(config)
    print(f"done in {math.ceil(time.perf_counter() - start)} s")
    return 0
