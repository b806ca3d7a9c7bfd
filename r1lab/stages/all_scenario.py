"""`r1lab all-scenario`: R1's last RL stage (R1 §2.3.4), reasoning and general prompts together.

The model SFT'd on the rejection-sampled set is trained by GRPO on a pool mixing the world's
reasoning prompts, scored by the rules (accuracy + format + language consistency), with general
prompts (`r1lab.world.general`: requests for facts, translations and copies, and harmful requests),
scored by two reward models: helpfulness on the final summary only, safety on the whole response
(../shared/R1-FACTS.md, "All-scenario RL": total reward = rule reward + RM reward + format +
language; temperature 0.7). The trainer is GRPO's (`grpo.train`); only the pool and the rubric
(`ScenarioRubric`, one rubric per kind of prompt) are this stage's.

The world's ground truth for general prompts (`general_verdict`) is logged as the weight-0 term
`verdict` (the reward never sees it), so a run shows whether the reward models' scores and the
truth move together: the reward hacking that made R1 keep general data to its last 400 steps.
`r1lab.stages.general_eval` judges a checkpoint on held-out general prompts, the paper's way (k
samples, T = 0.6, top-p 0.95).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1lab import parallel, runtime, training
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.prompts import CHAT
from r1lab.rewards import RewardTerm, Rubric, ScenarioRubric
from r1lab.rewards.model_reward import SUMMARY, WHOLE, ModelReward
from r1lab.stages import grpo
from r1lab.stages.rollout import world_rubric
from r1lab.tokenizer import Tokenizer
from r1lab.world.general import TRAIN, GeneralPrompt, general_prompts, general_verdict

REASONING, GENERAL = "reasoning", "general"


@dataclass(kw_only=True)
class AllScenarioConfig(grpo.GRPOConfig):
    init: str = "runs/rs_sft/model"  # the model SFT'd on the rejection-sampled set (R1 §2.3.3)
    out_dir: str = "runs/all_scenario"  # run directory, as GRPO's
    template: str = CHAT  # the chat template: the stage starts after the cold start
    temperature: float = 0.7  # rollout temperature; paper (this stage): 0.7
    language_weight: float = 1.0  # language consistency on reasoning prompts, as in reasoning RL (R1 §2.3.2)
    helpful_rm: str = ""  # helpfulness reward model (`r1lab reward-model --objective pairwise`); scores the summary
    safety_rm: str = ""  # safety reward model (`--objective pointwise`); scores the whole response
    helpful_weight: float = 1.0  # weight of the helpfulness score (a Bradley-Terry logit)
    safety_weight: float = 1.0  # weight of P(safe) from the safety model
    n_general: int = 512  # general prompts in the pool, beside n_prompts reasoning ones (train split)
    harmful_share: float = 0.3  # share of the general prompts that are harmful requests
    general_last_steps: int = 0  # general prompts (RM rewards) only in the last N of max_steps; 0 = all; paper: 400 of 1,700

    def __post_init__(self) -> None:
        super().__post_init__()
        runtime.check_int_fields(self)
        if self.template != CHAT:
            raise ValueError("AllScenarioConfig.template must be 'chat': the stage trains the SFT'd model (R1 §2.3.4)")
        if self.n_general < 1:
            raise ValueError(f"AllScenarioConfig.n_general must be >= 1, got {self.n_general}")
        if not 0 <= self.harmful_share <= 1:
            raise ValueError(f"AllScenarioConfig.harmful_share must be in [0, 1], got {self.harmful_share}")
        if not 0 <= self.general_last_steps <= self.max_steps:
            raise ValueError(f"AllScenarioConfig.general_last_steps must be in [0, max_steps = {self.max_steps}] "
                             f"(0 = general prompts at every step), got {self.general_last_steps}")
        for name in ("helpful", "safety"):
            weight, path = getattr(self, f"{name}_weight"), getattr(self, f"{name}_rm")
            if not 0 <= weight < math.inf:
                raise ValueError(f"AllScenarioConfig.{name}_weight must be >= 0 and finite, got {weight}")
            if weight > 0 and not path:
                raise ValueError(f"AllScenarioConfig: --{name}-rm is needed (a reward-model directory) while "
                                 f"--{name}-weight is {weight}")


SAME_RUN_FIELDS = grpo.SAME_RUN_FIELDS + ("n_general", "harmful_share", "general_last_steps")


def scenario(example: Any) -> str:
    return GENERAL if isinstance(example, GeneralPrompt) else REASONING


def general_rubric(config: AllScenarioConfig) -> Rubric:
    """The reward models' terms, and the world's verdict with weight 0 (logged, never rewarded)."""
    from r1lab.model.reward import load_reward_model

    terms = []
    for name, part, squash in (("helpful", SUMMARY, False), ("safety", WHOLE, True)):
        path, weight = getattr(config, f"{name}_rm"), getattr(config, f"{name}_weight")
        if weight > 0:
            rm = load_reward_model(path, device=config.device).eval()
            reward = ModelReward(rm, Tokenizer.load(path), part=part, squash=squash, bf16=config.bf16)
            terms.append(RewardTerm(name, reward, weight))
    terms.append(RewardTerm("verdict", lambda completion, prompt: float(general_verdict(prompt, completion)), 0.0))
    return Rubric(terms)


def prompt_pool(config: AllScenarioConfig) -> list[Any]:
    """The world's RL reasoning prompts, then `n_general` general ones of the train split."""
    from r1lab.world import rl_prompts

    general = general_prompts(config.n_general, TRAIN, seed=config.seed, harmful_share=config.harmful_share)
    return list(rl_prompts(config.n_prompts, seed=config.seed)) + general


def same_run_fields(config: AllScenarioConfig) -> tuple[str, ...]:
    """What a resumed run must share with the stopped one: GRPO's, the pool's, and the schedule of
    general prompts, with max_steps when there is one (its general steps are the last of max_steps:
    another max_steps would move them)."""
    return SAME_RUN_FIELDS + (("max_steps",) if config.general_last_steps else ())


def pool_schedule(config: AllScenarioConfig, pool: list[Any]) -> Callable[[int], list[Any]] | None:
    """What training step `step` draws from: with `general_last_steps` = N, the reasoning prompts
    alone until the last N steps, then the whole pool (R1 §2.3.4: general data and preference
    rewards only in the last 400 of 1,700 steps); None (the whole pool throughout) when N = 0."""
    if not config.general_last_steps:
        return None
    reasoning, first = [p for p in pool if scenario(p) == REASONING], config.max_steps - config.general_last_steps
    return lambda step: pool if step >= first else reasoning


def run(config: AllScenarioConfig) -> Path:
    """Trains and returns the final policy checkpoint directory (`out_dir/policy`)."""
    pool = prompt_pool(config)  # first: errors here leave no run directory
    parallel.init(config.device)  # under torchrun: "cuda" is this process's GPU before the reward models load
    rubric = ScenarioRubric({REASONING: world_rubric(config), GENERAL: general_rubric(config)}, scenario)
    return grpo.train(config, pool, rubric, same_run_fields(config), title="all-scenario RL",
                      pool_at=pool_schedule(config, pool))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, AllScenarioConfig)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(AllScenarioConfig, args)
    training.check_run_dir(config.out_dir, "grpo")  # GRPO's trainer: its run directory layout
    run(config)
    return 0
