"""`r1lab preference-data`: the two reward models' training data for all-scenario RL (R1 §2.3.4).

R1's helpfulness model learns from preference pairs of the model's own responses judged by a
strong model (Arena-Hard style, A/B swapped, kept when the margin is clear); its safety model from
responses labelled safe or unsafe (../shared/R1-FACTS.md, "All-scenario RL"). In miniature the
world's ground truth (`general_verdict`) plays the judge, and the data has two parts:

* written by the world (`helpfulness_pairs`, `safety_examples`): the right reply against a wrong
  fact or word, a changed copy, a refusal of a benign request, compliance with a harmful one;
* sampled: `samples_per_prompt` replies of the checkpoint (the model the RL stage will train) to
  each of `n_sampled` general prompts. For helpfulness, each wrong reply's summary is paired below a
  right one's (the reference where none is right); for safety, every reply is labelled.

The sampled part shows the reward models the policy's own mistakes: trained on the written part
alone, the helpfulness model ranked 79 % of its held-out pairs right, against 95 % with both parts
(`benchmarks/reward_model_data.py`; README, "All-scenario RL"). Prompts are of the `train` split;
evaluation uses `heldout` ones. Output: `helpful.jsonl` (pairwise), `safety.jsonl` (pointwise),
`stats.json` (counts).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from r1lab import runtime
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.data import check_output_dir, write_text_atomically
from r1lab.engine import MIN_TEMPERATURE, Engine, SamplingParams
from r1lab.model import from_pretrained
from r1lab.prompts import CHAT, prompt_ids
from r1lab.rewards.format import reply_body, summary_text
from r1lab.tokenizer import Tokenizer
from r1lab.world.general import (TRAIN, GeneralPrompt, PreferencePair, SafetyExample, declines, general_prompts,
                                 general_verdict, helpfulness_pairs, safety_examples)

HELPFUL_FILE, SAFETY_FILE, STATS_FILE = "helpful.jsonl", "safety.jsonl", "stats.json"


@dataclass(kw_only=True)
class PreferenceDataConfig:
    checkpoint: str = "runs/rs_sft/model"  # the model whose replies are judged (the one all-scenario RL trains)
    out_dir: str = "runs/preference_data"  # where helpful.jsonl, safety.jsonl and stats.json go
    n_written: int = 1024  # world-written pairs, and as many labelled responses; paper: 66k pairs, 106k prompts
    n_sampled: int = 1024  # general prompts whose sampled replies are judged (train split)
    samples_per_prompt: int = 4  # replies sampled per prompt
    harmful_share: float = 0.3  # share of harmful requests among the prompts
    temperature: float = 1.0  # sampling temperature (RL's: the replies RL will start from, and more varied)
    max_new_tokens: int = 96  # per reply
    seed: int = 0  # prompt draw and sampling
    bf16: bool = field(default_factory=runtime.default_bf16)  # bf16 autocast while sampling; default: where the machine has bf16
    device: str = "cpu"  # cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        runtime.check_int_fields(self)
        for name in ("n_written", "n_sampled"):
            if getattr(self, name) < 0:
                raise ValueError(f"PreferenceDataConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.n_written + self.n_sampled == 0:
            raise ValueError("PreferenceDataConfig: n_written and n_sampled are both 0: no data")
        for name in ("samples_per_prompt", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"PreferenceDataConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.harmful_share <= 1:
            raise ValueError(f"PreferenceDataConfig.harmful_share must be in [0, 1], got {self.harmful_share}")
        if not MIN_TEMPERATURE <= self.temperature < float("inf"):
            raise ValueError(f"PreferenceDataConfig.temperature must be >= {MIN_TEMPERATURE}, got {self.temperature}")
        runtime.check_device(self.device, "PreferenceDataConfig")
        runtime.check_seed(self.seed, "PreferenceDataConfig")


def sample_replies(config: PreferenceDataConfig) -> list[tuple[GeneralPrompt, list[str]]]:
    """`samples_per_prompt` replies (cut at their turn's end) to each of `n_sampled` train prompts."""
    if config.n_sampled == 0:
        return []
    model = from_pretrained(config.checkpoint, device=config.device).eval()
    tokenizer = Tokenizer.load(config.checkpoint)
    prompts = general_prompts(config.n_sampled, TRAIN, seed=config.seed + 1, harmful_share=config.harmful_share)
    engine = Engine(model, tokenizer, autocast_dtype=torch.bfloat16 if config.bf16 else None)
    groups = engine.generate([prompt_ids(tokenizer, p.question, CHAT) for p in prompts], SamplingParams(
        n=config.samples_per_prompt, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
        stop_token_ids=(tokenizer.eos_id,), seed=config.seed))
    return [(p, [reply_body(c.text).strip() for c in g]) for p, g in zip(prompts, groups)]


def judged_pairs(replies: list[tuple[GeneralPrompt, list[str]]], seed: int) -> list[PreferencePair]:
    """Each wrong reply's summary below a right reply's (drawn), or below the reference if none is right."""
    rng = random.Random(f"judged:{seed}")
    pairs = []
    for prompt, texts in replies:
        right = [summary_text(t) for t in texts if general_verdict(prompt, t)]
        for wrong in (summary_text(t) for t in texts if not general_verdict(prompt, t)):
            chosen = rng.choice(right) if right else prompt.reference
            if chosen != wrong:
                pairs.append(PreferencePair(prompt=prompt.question, chosen=chosen, rejected=wrong))
    return pairs


def judged_labels(replies: list[tuple[GeneralPrompt, list[str]]]) -> list[SafetyExample]:
    """Every reply, whole, labelled unsafe exactly when it answers a harmful request without declining."""
    return [SafetyExample(prompt=p.question, response=t, label=int(not p.harmful or declines(t)))
            for p, texts in replies for t in texts]


def run(config: PreferenceDataConfig) -> Path:
    """Writes the two files and their stats; returns `out_dir`."""
    out = check_output_dir(config.out_dir)
    replies = sample_replies(config)  # first: a bad checkpoint leaves no directory
    written_pairs = helpfulness_pairs(config.n_written, seed=config.seed, harmful_share=config.harmful_share)
    written_labels = safety_examples(config.n_written, seed=config.seed)
    pairs, labels = judged_pairs(replies, config.seed), judged_labels(replies)
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / HELPFUL_FILE, written_pairs + pairs)
    _write_jsonl(out / SAFETY_FILE, written_labels + labels)
    right = sum(general_verdict(p, t) for p, texts in replies for t in texts)
    stats = {"config": dataclasses.asdict(config), "helpful_pairs": {"written": len(written_pairs), "sampled": len(pairs)},
             "safety_labels": {"written": len(written_labels), "sampled": len(labels),
                               "sampled_unsafe": sum(1 - x.label for x in labels)},
             "sampled_replies": {"total": sum(len(t) for _, t in replies), "right": right}}
    write_text_atomically(out / STATS_FILE, json.dumps(stats, indent=1) + "\n")  # last: the stage's "done" mark
    print(f"preference data: {len(written_pairs) + len(pairs)} pairs, {len(written_labels) + len(labels)} "
          f"labelled responses ({right} of {stats['sampled_replies']['total']} sampled replies right) -> {out}")
    return out


def _write_jsonl(path: Path, items: Iterable[object]) -> None:
    write_text_atomically(path, "".join(json.dumps(dataclasses.asdict(x)) + "\n" for x in items))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, PreferenceDataConfig)


def main(args: argparse.Namespace) -> int:
    run(config_from_args(PreferenceDataConfig, args))
    return 0
