"""Sampling a checkpoint for evaluation, the paper's way: k samples per problem at T = 0.6,
top-p 0.95 (R1-FACTS.md, "Evaluation protocol"), scored by `evaluate.score_completions`.

Two kinds of data:
- the miniature world's held-out split (`data="world"`), prompted with the template the checkpoint
  was trained with (R1 Table 1 for base and R1-Zero models, chat after SFT) and judged by the
  world's rule; it also reports what the R1 story needs to see:
  format compliance, mean length, how often the model reasons step by step and how accurate
  reasoning is against bare answers, and the language consistency of the reasoning;
- a benchmark file (GSM8K, MATH-500, AIME), prompted with the checkpoint's template too: after SFT
  (chat) as the R1 README recommends (no system prompt, the step-by-step instruction in the user
  turn, output forced to start with "<think>\\n"); a base or R1-Zero model with R1 Table 1's
  template around the bare problem, its answer read from the ``<answer>`` tags it was trained on.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from r1lab import runtime
from r1lab.engine import MIN_TEMPERATURE, Engine, SamplingParams
from r1lab.model import from_pretrained, load_config
from r1lab.prompts import AUTO, CHAT, R1_ZERO, check_template, format_rule, infer_template, prompt_ids
from r1lab.rewards import RewardFn, strict_format_reward
from r1lab.rewards.language import chain_of_thought, world_language_reward
from r1lab.stages.evaluate import SCORING_VERSION, TEMPERATURE, TOP_P, EvalResult, eval_prompt, score_completions
from r1lab.tokenizer import Tokenizer

# Chat benchmark prompts end by opening the reasoning (R1's usage advice: force "<think>\n"); the
# opening is put back in front of each completion, so that one cut off while still thinking has no
# answer (a draft \boxed{} inside the reasoning is not graded).
THINK_OPENING = "<think>\n"
WORKED_STEP = re.compile(r"-?\d+\s*[+\-*]\s*-?\d+\s*=\s*(-?\d+)")  # a worked step ("17-11=6"), its result captured


@dataclass(kw_only=True)
class SampleEvalConfig:
    checkpoint: str  # model + tokenizer directory
    data: str = "world"  # "world" (held-out split) or a benchmark jsonl file
    n_problems: int = 200  # problems evaluated (the first n of the file / of the split)
    k: int = 8  # samples per problem; paper: 4-64
    temperature: float = TEMPERATURE  # paper: 0.6
    top_p: float = TOP_P  # paper: 0.95
    max_new_tokens: int = 128  # per sample; paper: 32,768
    seed: int = 0  # sampling seed and held-out problem draw
    batch_problems: int = 32  # problems sampled together
    bf16: bool = False  # bf16 autocast while sampling
    device: str = "cpu"  # cpu | cuda | cuda:N: where the model samples
    template: str = "auto"  # r1_zero (R1 Table 1) | chat (after the cold start) | auto (as trained)

    def __post_init__(self) -> None:
        runtime.check_int_fields(self)  # k = 2.5 failed only while sampling, as a TypeError
        for name in ("k", "n_problems", "batch_problems", "max_new_tokens"):
            if getattr(self, name) < 1:
                what = " (samples per problem, --samples)" if name == "k" else ""  # not the --k of pass@k
                raise ValueError(f"SampleEvalConfig.{name}{what} must be >= 1, got {getattr(self, name)}")
        # checked before the model loads, as SamplingParams will: 0 < T < MIN_TEMPERATURE overflows logits / T
        if not ((self.temperature == 0 or MIN_TEMPERATURE <= self.temperature < math.inf) and 0 < self.top_p <= 1):
            raise ValueError(f"SampleEvalConfig: temperature must be 0 (greedy) or in [{MIN_TEMPERATURE}, inf) and "
                             f"top_p in (0, 1], got {self.temperature} and {self.top_p}")
        runtime.check_device(self.device, "SampleEvalConfig")
        runtime.check_seed(self.seed, "SampleEvalConfig")
        # benchmarks too: an R1-Zero model asked in the chat format it never saw answers noise
        self.template = infer_template(self.checkpoint) if self.template == AUTO else check_template(self.template)


def config_from_eval_args(args: argparse.Namespace) -> SampleEvalConfig:
    """The sampling config of ``r1lab eval --checkpoint``; ValueError for flags that do not fit it.

    --completions would be silently ignored (the checkpoint's own samples are scored), so it is an
    error; --k (passed on to `evaluate_checkpoint`) must be one the samples drawn can give.
    """
    if args.completions is not None:
        raise ValueError("--completions and --checkpoint exclude each other: --checkpoint scores its own samples")
    flags = dict(n_problems=args.n_problems, k=args.samples, temperature=args.temperature, top_p=args.top_p,
                 max_new_tokens=args.max_new_tokens, seed=args.seed, template=args.template, device=args.device,
                 bf16=args.bf16)
    config = SampleEvalConfig(checkpoint=str(args.checkpoint), data=args.data,  # flags not given: the defaults
                              **{field: value for field, value in flags.items() if value is not None})
    if args.k is not None and not 1 <= args.k <= config.k:
        raise ValueError(f"--k must be from 1 to --samples ({config.k}): pass@k and cons@k are computed "
                         f"from the samples drawn per problem, got --k {args.k}")
    return config


def is_reasoning(completion: str) -> bool:
    """Whether the sample works the problem out step by step (at least one "a op b = c" step)."""
    return bool(WORKED_STEP.search(chain_of_thought(completion)))


def world_metrics(world_problems: list[Any], completions: dict[int, list[str]],
                  lengths: dict[int, list[int]],
                  format_rule: RewardFn = strict_format_reward) -> dict[str, float | None]:
    """Format (by `format_rule`), length, reasoning share, accuracy of reasoning vs bare samples, language.
    A mean over no sample (no sample reasoned, or none answered bare) is None, not a number that
    reads as a result (0.0 accuracy, 1.0 language consistency). `lengths` holds the token count of
    each completion, keyed and ordered alike: a mismatch is a ValueError, not a mean over the wrong count."""
    from r1lab.world import check_completion

    for i in sorted(completions.keys() | lengths.keys()):
        n, m = len(completions.get(i, ())), len(lengths.get(i, ()))
        if n != m:
            raise ValueError(f"world_metrics: problem {i} has {n} completions but {m} lengths; "
                             "lengths must hold the token count of each completion")
    texts = [(i, t) for i, ts in completions.items() for t in ts]
    right = [check_completion(world_problems[i], t) for i, t in texts]
    reasons = [is_reasoning(t) for _, t in texts]
    n_reason = sum(reasons)

    def acc(sel: list[bool]) -> float | None:
        chosen = [r for r, s in zip(right, sel) if s]
        return sum(chosen) / len(chosen) if chosen else None

    reasoning_texts = [t for (_, t), r in zip(texts, reasons) if r]
    return {
        "format_rate": sum(format_rule(t) for _, t in texts) / len(texts),
        "length_mean": _mean_len(lengths),
        "reasoning_share": n_reason / len(texts),
        "accuracy_reasoning": acc(reasons),
        "accuracy_bare": acc([not r for r in reasons]),
        "language_consistency": (sum(world_language_reward(t) for t in reasoning_texts) / len(reasoning_texts)
                                 if reasoning_texts else None),
    }


def _prompts(config: SampleEvalConfig, tokenizer: Tokenizer) -> tuple[list, list[list[int]], list | None]:
    """(problems, prompt ids of the first n_problems of them, world problems or None). A benchmark's
    problems are all of its file's, so that the report's n_data says how many the file holds."""
    if config.data == "world":
        from r1lab.world import heldout_problems

        world = heldout_problems(config.n_problems, seed=config.seed)
        prompts = [prompt_ids(tokenizer, p.question, config.template) for p in world]
        return [p.to_problem() for p in world], prompts, world
    from r1lab.benchmarks import load_problems

    problems = load_problems(Path(config.data))
    if config.template == R1_ZERO:  # Table 1 carries the format instruction; nothing about content is added
        return problems, [prompt_ids(tokenizer, p.prompt, R1_ZERO) for p in problems[:config.n_problems]], None
    chats = [tokenizer.apply_chat_template([{"role": "user", "content": eval_prompt(p)}], add_generation_prompt=True)
             + tokenizer.encode(THINK_OPENING) for p in problems[:config.n_problems]]
    return problems, chats, None


def sample_completions(config: SampleEvalConfig) -> tuple[list, dict[int, list[str]], dict[int, list[int]], list | None]:
    """k completions per problem: (problems, texts by index, token lengths by index, world problems)."""
    load_config(config.checkpoint)  # a missing checkpoint named as one, not as "no tokenizer.json in ..."
    tokenizer = Tokenizer.load(config.checkpoint)
    # the prompts first: a missing or unusable --data file (a code benchmark) fails before the model loads
    problems, prompts, world = _prompts(config, tokenizer)
    model = from_pretrained(config.checkpoint, device=config.device)
    runtime.keep_freed_memory()
    engine = Engine(model, tokenizer, autocast_dtype=torch.bfloat16 if config.bf16 else None)
    opening = THINK_OPENING if world is None and config.template == CHAT else ""  # what the prompt forced
    # A prompt with no room left for max_new_tokens in the model's positions made the engine raise
    # for its whole batch, ending the run after minutes of sampling (a tiny model on MATH-500): such a
    # problem is not sampled and gets k empty completions, scored as unanswered (length 0).
    room = model.config.max_position_embeddings - config.max_new_tokens
    fitting = [i for i, ids in enumerate(prompts) if len(ids) <= room]
    texts = {i: [opening] * config.k for i in range(len(prompts))}
    lengths = {i: [0] * config.k for i in range(len(prompts))}
    if len(fitting) < len(prompts):
        print(f"r1lab eval: warning: {len(prompts) - len(fitting)} of {len(prompts)} prompts leave no room for "
              f"{config.max_new_tokens} new tokens in the model's {model.config.max_position_embeddings} positions; "
              "scored as unanswered", file=sys.stderr)
    bar = tqdm(range(0, len(fitting), config.batch_problems), desc=f"sampling k={config.k}", dynamic_ncols=True)
    for start in bar:
        chunk = fitting[start:start + config.batch_problems]
        groups = engine.generate([prompts[i] for i in chunk], SamplingParams(
            n=config.k, temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens,
            stop_token_ids=(tokenizer.eos_id,), seed=config.seed * 1_000_003 + start))
        for i, group in zip(chunk, groups):
            texts[i] = [opening + c.text for c in group]
            lengths[i] = [len(c.token_ids) for c in group]
    return problems, texts, lengths, world


def evaluate_checkpoint(config: SampleEvalConfig, k: int | None = None) -> EvalResult:
    """Samples and scores; world runs carry their extra metrics in `settings`.

    ``k``: the k of pass@k and cons@k, from 1 to ``config.k`` (default: ``config.k``, all samples);
    pass@1 and the unbiased pass@k estimate still use every sample drawn.
    """
    k = config.k if k is None else k
    # before sampling, not after: a float k passed this range check and failed in pass@k as a TypeError
    if not runtime.is_int(k) or not 1 <= k <= config.k:
        raise ValueError(f"k must be from 1 to the samples per problem ({config.k}), got {k}")
    problems, texts, lengths, world = sample_completions(config)
    # "data" as a --completions run records it; prompts_too_long for world runs too, whose unsampled
    # problems count as wrong like a benchmark's
    unsampled = sum(not any(v) for v in lengths.values())  # no room to sample: every length 0
    settings: dict[str, Any] = {"checkpoint": config.checkpoint, "data": config.data, "temperature": config.temperature,
                                "top_p": config.top_p, "max_new_tokens": config.max_new_tokens, "seed": config.seed,
                                "template": config.template, "samples_per_problem": config.k,
                                "bf16": config.bf16, "device": config.device,  # both change the samples drawn
                                "batch_problems": config.batch_problems,  # so does it: each batch's seed
                                "scoring_version": SCORING_VERSION}
    if world is None:
        result = score_completions(problems, texts, k)
        return replace(result, settings={**settings, "length_mean": _mean_len(lengths), "prompts_too_long": unsampled})
    result = score_completions(problems, texts, k, name="world/heldout", check=world_check(world))
    metrics = world_metrics(world, texts, lengths, format_rule(config.template))
    return replace(result, settings={**settings, **metrics, "prompts_too_long": unsampled})


def world_check(world: list[Any]) -> Callable[[int, str], tuple[str | None, bool]]:
    """The world's rule as `score_completions`'s check: (answer, correct) of problem i's completion.
    The answer voted on is the final integer, or for countdown the final expression: its last number
    grouped unlike expressions, right and wrong, into one vote (cons@k)."""
    from r1lab.world import ARITHMETIC, check_completion, extract_final_answer, extract_final_expression

    def check(i: int, text: str) -> tuple[str | None, bool]:
        if world[i].kind != ARITHMETIC:
            return extract_final_expression(text), check_completion(world[i], text)
        answer = extract_final_answer(text)
        return (None if answer is None else str(answer)), check_completion(world[i], text)

    return check


def _mean_len(lengths: dict[int, list[int]]) -> float:
    """Mean tokens per sample drawn. A problem whose prompt left no room was not sampled (its k lengths
    are 0; a sampled one has at least its first token) and has no length: counted as 0 it pulled the
    mean down by the share of such problems (prompts_too_long says how many). 0.0 if none was sampled."""
    flat = [n for v in lengths.values() if any(v) for n in v]
    return sum(flat) / max(len(flat), 1)
