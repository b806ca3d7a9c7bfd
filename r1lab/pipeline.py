"""The R1 recipe chained end to end on the embedded miniature world (what `make demo` runs).

base model (shipped, or pretrained here) -> evaluation -> R1-Zero (GRPO from the base, R1 §2.2)
-> evaluation -> one table. Every stage leaves its checkpoint, metrics and plots in one run
directory; a stage whose output already exists is reused, so an interrupted demo resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from r1lab.stages import grpo, pretrain
from r1lab.stages.sample_eval import SampleEvalConfig, evaluate_checkpoint

SHIPPED_BASE = Path(__file__).resolve().parent / "assets" / "base-tiny"


@dataclass(kw_only=True)
class PipelineConfig:
    out_dir: str = "runs/demo"  # run directory holding every stage
    seed: int = 0  # seed of every stage
    pretrain: bool = False  # pretrain the base model here even if a shipped one exists
    eval_problems: int = 200  # held-out problems per evaluation
    eval_samples: int = 8  # k samples per problem (pass@1 averaged over k, cons@k)
    zero: grpo.GRPOConfig = field(default_factory=grpo.GRPOConfig)  # R1-Zero settings (init/out_dir are set here)


@dataclass
class StageRow:
    stage: str
    checkpoint: str
    pass_at_1: float
    pass_at_k: float
    cons_at_k: float
    format_rate: float
    length_mean: float
    reasoning_share: float
    accuracy_reasoning: float
    accuracy_bare: float
    language_consistency: float
    seconds: float


def base_checkpoint(config: PipelineConfig) -> Path:
    out = Path(config.out_dir) / "base"
    if (out / "base" / "config.json").exists():
        return out / "base"
    if SHIPPED_BASE.exists() and not config.pretrain:
        print(f"using the shipped base model {SHIPPED_BASE} (pass --pretrain to train it here)")
        return SHIPPED_BASE
    return pretrain.run(pretrain.PretrainConfig(out_dir=str(out), seed=config.seed))


def evaluate(stage: str, checkpoint: Path, config: PipelineConfig, seconds: float) -> StageRow:
    # the cache is keyed by the settings too: a rerun with other settings evaluates again
    cache = Path(config.out_dir) / "eval" / f"{stage}-n{config.eval_problems}-k{config.eval_samples}-s{config.seed}.json"
    if cache.exists():
        return StageRow(**json.loads(cache.read_text()))
    result = evaluate_checkpoint(SampleEvalConfig(checkpoint=str(checkpoint), n_problems=config.eval_problems,
                                                  k=config.eval_samples, seed=config.seed + 1))
    s = result.summary()
    row = StageRow(stage=stage, checkpoint=str(checkpoint), pass_at_1=s["pass@1"], pass_at_k=s["pass@k"],
                   cons_at_k=s["cons@k"], format_rate=s["format_rate"], length_mean=s["length_mean"],
                   reasoning_share=s["reasoning_share"], accuracy_reasoning=s["accuracy_reasoning"],
                   accuracy_bare=s["accuracy_bare"], language_consistency=s["language_consistency"],
                   seconds=seconds)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(asdict(row), indent=1) + "\n")
    return row


def markdown_table(rows: list[StageRow], k: int) -> str:
    head = (f"| stage | pass@1 | cons@{k} | pass@{k} | format | length | reasons | acc. reasoning | acc. bare "
            f"| language | time |")
    lines = [head, "|---|" + "---:|" * 10]
    for r in rows:
        lines.append(f"| {r.stage} | {100 * r.pass_at_1:.1f} | {100 * r.cons_at_k:.1f} | {100 * r.pass_at_k:.1f} "
                     f"| {100 * r.format_rate:.1f} | {r.length_mean:.1f} | {100 * r.reasoning_share:.0f}% "
                     f"| {100 * r.accuracy_reasoning:.1f} | {100 * r.accuracy_bare:.1f} "
                     f"| {100 * r.language_consistency:.1f} | {r.seconds:.0f} s |")
    return "\n".join(lines) + (f"\n\npass@1 = mean correctness of {k} samples per held-out problem at T=0.6, "
                               "top-p 0.95; format = strict R1-Zero tags; length in tokens; reasons = share of "
                               "samples that work step by step; language = English share of the reasoning's words.\n")


def run(config: PipelineConfig) -> list[StageRow]:
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = base_checkpoint(config)
    rows = [evaluate("base", base, config, time.perf_counter() - t0)]
    t0 = time.perf_counter()
    zero_cfg = grpo.GRPOConfig(**{**asdict(config.zero), "init": str(base), "out_dir": str(out / "zero"),
                                  "seed": config.seed})
    zero = out / "zero" / "policy"
    if not (zero / "config.json").exists():
        zero = grpo.run(zero_cfg)
        from r1lab.plots import plot_rl_curves

        plot_rl_curves(out / "zero" / "metrics.jsonl", out / "zero" / "curves.png", title="R1-Zero in miniature")
    rows.append(evaluate("R1-Zero", zero, config, time.perf_counter() - t0))
    table = markdown_table(rows, config.eval_samples)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    print("\n" + table)
    print(f"run directory: {out}  (results.md, zero/metrics.jsonl, zero/curves.png, zero/samples.jsonl)")
    return rows
