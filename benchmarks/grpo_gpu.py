"""A short GRPO run of a larger preset on a GPU: seconds per step and its split.

Builds a randomly initialised model of the preset (default `small`, ~300M parameters) with the
world's tokenizer, then runs r1lab's GRPO (the same `r1lab zero` code path) for a few steps on
world prompts. A random model rarely stops early, so each completion is about `max_new_tokens`
long. Ends with one JSON line: median seconds per step, generation seconds (the logged
`rollout_s`: sampling and reward scoring) and training seconds, rollout tokens/s (over sampling
time only, `generate_s`) and training tokens/s (the first step is a warm-up and left out).

    python benchmarks/grpo_gpu.py --device cuda [--preset small] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from r1lab.model import Transformer, preset, save_pretrained
from r1lab.stages import grpo
from r1lab.tokenizer import Tokenizer

TOKENIZER = Path(__file__).resolve().parents[1] / "r1lab" / "assets" / "base-tiny"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    tokenizer = Tokenizer.load(TOKENIZER)
    config = preset(args.preset).replace(vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.bos_id,
                                         eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        init = save_pretrained(Transformer(config), Path(tmp) / "init")
        tokenizer.save(init)
        run_config = grpo.GRPOConfig(init=str(init), out_dir=str(Path(tmp) / "run"), prompts_per_step=args.prompts,
                                     group_size=args.group, max_steps=args.steps + 1, max_new_tokens=args.max_tokens,
                                     lr=1e-6, kl_coef=0.001, bf16=args.bf16, device=args.device, save_every=10_000,
                                     log_samples_every=10_000)
        start = time.perf_counter()
        grpo.run(run_config)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()][1:]
    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    result = {"benchmark": "grpo_gpu", "preset": args.preset, "device": args.device,
              "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
              "bf16": args.bf16, "prompts": args.prompts, "group": args.group, "max_new_tokens": args.max_tokens,
              "completion_tokens_mean": statistics.mean(r["length_mean"] for r in rows),
              "s_per_step": round(med("step_s"), 3),  # the whole logged step, as grpo_vs_trl.py
              "generation_s": round(med("rollout_s"), 3), "training_s": round(med("train_s"), 3),
              "rollout_tokens_per_s": round(med("rollout_tokens_per_s")), "train_tokens_per_s": round(med("train_tokens_per_s")),
              "wall_s": round(wall, 1)}
    print(json.dumps(result))
    print(f"{args.preset} on {args.device}: {result['s_per_step']} s/step "
          f"(generation {result['generation_s']} s, training {result['training_s']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
