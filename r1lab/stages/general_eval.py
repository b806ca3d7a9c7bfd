"""Judging a checkpoint on the world's held-out general prompts (R1 §2.3.4's helpfulness and
harmlessness), the paper's way: k samples per prompt at T = 0.6, top-p 0.95 (R1-FACTS.md,
"Evaluation protocol"), in the chat template.

The judge is the world's ground truth (`r1lab.world.general`), never shown to the reward models or
to RL: helpful = a benign request whose summary is the right reply; harmless = a harmful request
declined; over-refusal = a benign request declined. `r1lab eval --data general --checkpoint DIR`
runs it from the command line; the pipeline's general table is made of its rows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from r1lab import runtime
from r1lab.data import write_text_atomically
from r1lab.engine import Engine, SamplingParams
from r1lab.fields import check_int_arg
from r1lab.model import from_pretrained
from r1lab.prompts import CHAT, prompt_ids
from r1lab.results import GeneralRow, general_table
from r1lab.stages.evaluate import TEMPERATURE, TOP_P
from r1lab.tokenizer import Tokenizer
from r1lab.world.general import HELDOUT, declines, general_prompts, general_verdict


@dataclass(kw_only=True)
class GeneralEval:
    """A checkpoint on held-out general prompts (percentages over all samples)."""

    helpful: float  # benign requests answered with the right reply as the summary
    harmless: float  # harmful requests declined
    over_refusal: float  # benign requests declined
    n_prompts: int  # prompts evaluated
    k: int  # samples per prompt


# evaluate_general's defaults, reported with every command-line result
DEFAULTS = {"n_prompts": 200, "k": 4, "max_new_tokens": 96, "seed": 0, "bf16": False, "device": "cpu"}


def evaluate_general(checkpoint: str | Path, *, n_prompts: int = 200, k: int = 4, seed: int = 0,
                     harmful_share: float = 0.3, max_new_tokens: int = 96, bf16: bool = False,
                     device: str = "cpu") -> GeneralEval:
    """Samples k replies per held-out general prompt (T = 0.6, top-p 0.95, as R1 evaluates) and
    judges them by the world's ground truth. A column over no sample (no harmful prompt drawn) is NaN."""
    for name, value in (("n_prompts", n_prompts), ("k", k), ("max_new_tokens", max_new_tokens)):
        check_int_arg("evaluate_general", name, value)
        if value < 1:
            raise ValueError(f"evaluate_general: {name} must be >= 1, got {value}")
    runtime.check_device(device, "evaluate_general")
    prompts = general_prompts(n_prompts, HELDOUT, seed=seed, harmful_share=harmful_share)  # checks share
    # built before the model loads, so that a bad seed fails at once (SamplingParams checks it)
    sampling = SamplingParams(n=k, temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=max_new_tokens, seed=seed)
    model, tokenizer = from_pretrained(checkpoint, device=device).eval(), Tokenizer.load(checkpoint)
    engine = Engine(model, tokenizer, autocast_dtype=torch.bfloat16 if bf16 else None)
    groups = engine.generate([prompt_ids(tokenizer, p.question, CHAT) for p in prompts],
                             replace(sampling, stop_token_ids=(tokenizer.eos_id,)))
    benign = [(p, c.text) for p, g in zip(prompts, groups) if not p.harmful for c in g]
    harmful = [(p, c.text) for p, g in zip(prompts, groups) if p.harmful for c in g]

    def pct(values: list[bool]) -> float:
        return round(100 * sum(values) / len(values), 1) if values else float("nan")

    return GeneralEval(helpful=pct([general_verdict(p, t) for p, t in benign]),
                       harmless=pct([general_verdict(p, t) for p, t in harmful]),
                       over_refusal=pct([declines(t) for _, t in benign]), n_prompts=n_prompts, k=k)


# `r1lab eval` flags that do not apply to general prompts: what they would set is fixed here
NOT_FOR_GENERAL = {"completions": "the world judges a checkpoint's own samples", "k": "there is no pass@k here",
                   "temperature": f"samples are drawn the paper's way (T = {TEMPERATURE})",
                   "top_p": f"samples are drawn the paper's way (top-p {TOP_P})",
                   "template": "general prompts are chat requests (the chat template)"}


def main(args: argparse.Namespace) -> int:
    """`r1lab eval --data general --checkpoint DIR`: prints the table (or --json) and writes --out."""
    if args.checkpoint is None:
        raise ValueError("--data general needs --checkpoint: the world judges a model's own replies")
    for name, why in NOT_FOR_GENERAL.items():
        if getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --data general: {why}")
    given = {"n_prompts": args.n_problems, "k": args.samples, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
             "bf16": args.bf16, "device": args.device}  # None = not given: evaluate_general's default
    settings = {**DEFAULTS, **{name: value for name, value in given.items() if value is not None}}
    result = evaluate_general(args.checkpoint, **settings)
    table = general_table([GeneralRow(stage=str(args.checkpoint), **asdict(result))], result.k).lstrip("\n")
    # JSON has no NaN: a column over no sample (no harmful prompt drawn) is null
    scores = {name: None if isinstance(v, float) and math.isnan(v) else v for name, v in asdict(result).items()}
    summary = {**scores, "checkpoint": str(args.checkpoint), **settings,
               "temperature": TEMPERATURE, "top_p": TOP_P}
    if args.out is not None:
        out = Path(args.out)
        write_text_atomically(out / "eval.json", json.dumps(summary, indent=1) + "\n")
        write_text_atomically(out / "eval.md", table)
        print(f"r1lab eval: wrote {out / 'eval.json'} and {out / 'eval.md'}", file=sys.stderr)
    print(json.dumps(summary) if args.json else table, end="\n" if args.json else "")
    return 0
