"""Distillation against RL alone, by student size (R1 §4.1, Table 6, in miniature).

For each dense student size, as the demo does for its `student` preset: pretrain the student's base
on the world corpus, then (a) R1-Zero's GRPO on it alone and (b) SFT of it on the teacher's
rejection-sampled set (a finished demo's `rejection/data.jsonl`), and evaluate the three models as
the demo does (200 held-out problems x 8 samples, T = 0.6, top-p 0.95, sampling seed 1). Every
stage runs with the demo's settings (`PipelineConfig`'s `student`, `student_zero`, `distill_sft`),
so `--sizes 64x3` repeats the demo's distillation rows. A size is WIDTHxLAYERS: the `student`
preset with that width and depth, the FFN 8/3 of the width rounded up to a multiple of 64 (64 -> 192,
96 -> 256). About 5 minutes per size on 2 cores. Ends with one JSON line.

    .venv/bin/python benchmarks/student_sizes.py --data runs/demo/rejection/data.jsonl [--sizes 64x2,64x3,96x2,96x3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from r1lab.model import config as model_config
from r1lab.model.info import count_parameters
from r1lab.pipeline import PipelineConfig, evaluate
from r1lab.stages import grpo, pretrain, sft


def register(size: str) -> str:
    """A preset named after `size` (WIDTHxLAYERS), the `student` preset at that width and depth."""
    width, layers = (int(x) for x in size.split("x"))
    ffn = -(-8 * width // (3 * 64)) * 64
    name = f"student-{size}"
    model_config.PRESETS[name] = lambda: model_config.student().replace(
        hidden_size=width, intermediate_size=ffn, num_hidden_layers=layers, first_k_dense_replace=layers)
    return name


def scores(name: str, checkpoint: Path, demo: PipelineConfig) -> dict[str, float | None]:
    """The demo's evaluation of `checkpoint` (`pipeline.evaluate`, cached in the size's directory)."""
    row = evaluate(name, checkpoint, demo, 0.0)
    rates = {"pass@1": row.pass_at_1, "cons@k": row.cons_at_k, "format_rate": row.format_rate,
             "reasoning_share": row.reasoning_share, "accuracy_reasoning": row.accuracy_reasoning,
             "accuracy_bare": row.accuracy_bare, "language_consistency": row.language_consistency}
    return {k: None if v is None else round(100 * v, 1) for k, v in rates.items()} | {
        "length_mean": round(row.length_mean, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the teacher's rejection-sampled set (a demo's rejection/data.jsonl)")
    parser.add_argument("--sizes", default="64x2,64x3,96x2,96x3", help="comma-separated WIDTHxLAYERS")
    parser.add_argument("--out", default="runs/student_sizes", help="run directory, one subdirectory per size")
    args = parser.parse_args()
    if not Path(args.data).is_file():
        parser.error(f"--data {args.data}: no such file (run `make demo` first)")
    sizes = args.sizes.split(",")
    if not all(len(p := s.split("x")) == 2 and all(x.isdigit() and int(x) > 0 for x in p) for s in sizes):
        parser.error(f"--sizes {args.sizes!r}: each size must be WIDTHxLAYERS, e.g. 64x3")
    result: dict = {"benchmark": "student_sizes", "data": args.data, "sizes": {}}
    for size in sizes:
        name, out = register(size), Path(args.out) / size
        demo = PipelineConfig(out_dir=str(out))  # the demo's stage and evaluation settings
        base = pretrain.run(dataclasses.replace(demo.student, model=name, out_dir=str(out / "student")))
        rl = grpo.run(dataclasses.replace(demo.student_zero, init=str(base), out_dir=str(out / "student_zero")))
        distilled = sft.run(dataclasses.replace(demo.distill_sft, data=args.data, init=str(base),
                                                out_dir=str(out / "distill")))
        row = {"params": count_parameters(model_config.preset(name))["total"],
               **{key: scores(key, checkpoint, demo) for key, checkpoint in
                  (("base", base), ("rl_only", rl), ("distilled", distilled))}}
        result["sizes"][size] = row
        print(f"{size}: {row}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
