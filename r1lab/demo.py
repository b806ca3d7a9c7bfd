"""`r1lab demo`: the main job on the embedded default, end to end on a laptop CPU.

For now: build the `tiny` DeepSeek-V3 model, train it a few steps on random-token data with the
next-token + MTP loss (aux-loss-free balancing on), save it as a Hugging Face checkpoint, load it
back with r1lab and with transformers, and check that both give the same logits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from r1lab.model import Transformer, from_pretrained, max_mean_load_ratio, preset, save_pretrained
from r1lab.model.info import count_parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def main(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    config = preset("tiny")
    counts = count_parameters(config)
    print(f"tiny DeepSeek-V3: {counts['total']:,} parameters ({counts['active']:,} active per token, "
          f"+{counts['mtp']:,} MTP)")
    model = Transformer(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.randint(0, config.vocab_size, (8, 65))
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = data[:, :-1], data[:, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model.loss(x, y)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        ratio = max_mean_load_ratio(model.expert_load())
        model.update_router_bias()
        if step % 5 == 0 or step == 1:
            print(f"step {step:3d}  loss {out.ce.item():.3f}  mtp {out.mtp.item():.3f}  max/mean expert load {ratio:.2f}")
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f}s")
    path = save_pretrained(model, Path(args.out) / "checkpoint")
    size = sum(f.stat().st_size for f in path.iterdir())
    again = from_pretrained(path)
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        ours, theirs = again(data[:2]), hf(data[:2]).logits
    print(f"saved {path} ({size / 1e6:.1f} MB); reloaded by r1lab and transformers, "
          f"max |logit difference| = {(ours - theirs).abs().max().item():.2e}")
    return 0
