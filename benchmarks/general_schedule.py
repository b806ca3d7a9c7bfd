"""All-scenario RL with general prompts only in its last N steps (`general_last_steps`), the paper's
schedule (R1 §2.3.4: general data and preference rewards only in the last 400 of 1,700 steps, since
longer led to reward hacking), against the demo's general prompts at every step. No ratio: it
prints what each gives.

Each variant trains the demo's all-scenario RL (its settings and seed) from the demo's
rejection-sampled SFT model with the demo's two reward models, changing `general_last_steps` only,
then judges the policy as the demo does (`pipeline.evaluate` for reasoning; general prompts as
`pipeline.general_row`, on the held-out draws of `--eval-seeds`, the first being the demo's, and
their means; the SFT model alike, as the starting point). It also reads the run's curves: the
helpfulness model's mean score and the world's weight-0 verdict on the general prompts of the first
and last 10 steps that had any (reward hacking: the first rising while the second falls). N = 0 is
the demo's own stage: it gives the demo's rows again (same seed). One training run per variant.
Ends with one JSON line.

    .venv/bin/python benchmarks/general_schedule.py --demo runs/demo --out runs/general_schedule --last 0 14 30
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from r1lab.pipeline import PipelineConfig, evaluate
from r1lab.stages import all_scenario
from r1lab.stages.general_eval import evaluate_general


def judged(checkpoint: Path, seeds: list[int], demo: PipelineConfig) -> dict[str, object]:
    """Held-out general prompts of each seed's draw (the demo's k and count), and the means over them."""
    runs = [evaluate_general(checkpoint, n_prompts=demo.eval_problems, k=demo.eval_samples, seed=seed) for seed in seeds]
    columns = ("helpful", "harmless", "over_refusal")
    return {"seeds": seeds, **{c: [getattr(r, c) for r in runs] for c in columns},
            **{f"{c}_mean": round(sum(getattr(r, c) for r in runs) / len(runs), 1) for c in columns}}


def variant(last: int, demo_dir: Path, out: Path, demo: PipelineConfig, seeds: list[int]) -> dict[str, object]:
    """The demo's all-scenario RL with `general_last_steps` = last, in out/last_N, judged as the demo judges."""
    t0 = time.perf_counter()
    config = dataclasses.replace(demo, out_dir=str(out / f"last_{last}"))  # where the judged rows are cached
    rms = demo_dir / "all_scenario"
    settings = dataclasses.replace(demo.all_scenario, init=str(demo_dir / "rejection" / "model"),
                                   helpful_rm=str(rms / "helpful_rm" / "model"), safety_rm=str(rms / "safety_rm" / "model"),
                                   out_dir=str(out / f"last_{last}" / "all_scenario"), seed=demo.seed,
                                   general_last_steps=last)
    policy = all_scenario.run(settings)
    row = evaluate(f"all-scenario RL (last {last})", policy, config, 0.0)
    return {"general_last_steps": last, "general": judged(policy, seeds, demo), "pass_at_1": row.pass_at_1,
            "curves": _curves(Path(settings.out_dir) / "metrics.jsonl"), "seconds": round(time.perf_counter() - t0, 1)}


def _curves(metrics: Path) -> dict[str, object]:
    """Mean helpfulness score and world verdict over the first and the last 10 steps with general prompts."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    general = [r for r in rows if r.get("reward/helpful") is not None]

    def mean(key: str, part: list[dict]) -> float | None:
        values = [r[key] for r in part if r.get(key) is not None]
        return round(sum(values) / len(values), 3) if values else None

    return {"general_steps": len(general),
            **{f"{key}_{name}": mean(f"reward/{key}", part) for key in ("helpful", "verdict")
               for name, part in (("first10", general[:10]), ("last10", general[-10:]))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="a finished `r1lab demo` run directory")
    parser.add_argument("--out", type=Path, default=Path("runs/general_schedule"))
    parser.add_argument("--last", type=int, nargs="+", default=[0, 14, 30],
                        help="general_last_steps of each variant (0: every step, the demo's; 14 of 60: the paper's share)")
    parser.add_argument("--eval-seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                        help="held-out general draws judged (the demo's: 1)")
    args = parser.parse_args()
    for name in ("rejection/model", "all_scenario/helpful_rm/model", "all_scenario/safety_rm/model"):
        if not (args.demo / name).is_dir():
            parser.error(f"{args.demo / name} is missing: run `r1lab demo` first (or --demo its run directory)")
    demo = PipelineConfig()
    start = judged(args.demo / "rejection" / "model", args.eval_seeds, demo)  # the SFT model RL starts from
    variants = [variant(last, args.demo, args.out, demo, args.eval_seeds) for last in args.last]
    print(json.dumps({"benchmark": "general_schedule", "max_steps": demo.all_scenario.max_steps, "seed": demo.seed,
                      "sft": start, "variants": variants}))


if __name__ == "__main__":
    main()
