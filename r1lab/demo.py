"""`r1lab demo`: the R1 recipe on the embedded miniature world, on a laptop CPU, no download.

Runs `r1lab.pipeline`: base model -> R1-Zero -> cold start -> reasoning RL with the language
reward -> rejection sampling + SFT, evaluating every model on the held-out split, and prints one
table (R1 §2.2-2.3.3 in miniature, about 11 minutes on 2 cores).
"""

from __future__ import annotations

import argparse

from r1lab.cli import check_output_path
from r1lab.pipeline import PipelineConfig, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every stage (default: 0)")
    parser.add_argument("--pretrain", action="store_true", help="pretrain the base model even if one is shipped")
    parser.add_argument("--eval-problems", type=int, default=200, help="held-out problems per evaluation")
    parser.add_argument("--eval-samples", type=int, default=8, help="samples per problem (k)")
    parser.add_argument("--stop-after", default="", choices=("zero", "cold_start", "reasoning_rl", "rejection"),
                        help="last stage to run (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N, for every stage (default: cpu)")


def main(args: argparse.Namespace) -> int:
    check_output_path("out", args.out)  # --out is not a config field here: config_from_args never sees it
    run(PipelineConfig(out_dir=args.out, seed=args.seed, pretrain=args.pretrain, eval_problems=args.eval_problems,
                       eval_samples=args.eval_samples, stop_after=args.stop_after, device=args.device))
    return 0
