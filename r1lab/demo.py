"""`r1lab demo`: the R1 recipe on the embedded miniature world, on a laptop CPU, no download.

Runs `r1lab.pipeline`: base model -> R1-Zero -> cold start -> reasoning RL with the language
reward -> rejection sampling + SFT -> all-scenario RL with helpfulness and safety reward models ->
distillation into a small dense student (against RL alone on it), evaluating every model on the
held-out split, and prints one table, then the chat models on held-out general prompts (R1 §2.2-2.4
in miniature; timings in the README).
"""

from __future__ import annotations

import argparse
import dataclasses

from r1lab.cli import check_output_path
from r1lab.pipeline import STOP_POINTS, PipelineConfig, run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # defaults from PipelineConfig, so that --help shows the values a run uses
    d = {f.name: f.default for f in dataclasses.fields(PipelineConfig)}
    parser.add_argument("--out", default=d["out_dir"], help=f"run directory (default: {d['out_dir']})")
    parser.add_argument("--seed", type=int, default=d["seed"], help=f"seed of every stage (default: {d['seed']})")
    parser.add_argument("--pretrain", action="store_true", help="pretrain the base models (teacher and student) even if shipped")
    parser.add_argument("--eval-problems", type=int, default=d["eval_problems"],
                        help=f"held-out problems per evaluation (default: {d['eval_problems']})")
    parser.add_argument("--eval-samples", type=int, default=d["eval_samples"],
                        help=f"samples per problem, k (default: {d['eval_samples']})")
    parser.add_argument("--stop-after", default=d["stop_after"], choices=STOP_POINTS[1:],
                        help="last stage to run (default: all)")
    parser.add_argument("--device", default=d["device"],
                        help=f"cpu | cuda | cuda:N, for every stage (default: {d['device']})")


def main(args: argparse.Namespace) -> int:
    check_output_path("out", args.out)  # --out is not a config field here: config_from_args never sees it
    run(PipelineConfig(out_dir=args.out, seed=args.seed, pretrain=args.pretrain, eval_problems=args.eval_problems,
                       eval_samples=args.eval_samples, stop_after=args.stop_after, device=args.device))
    return 0
