"""A learned reward model as a rubric term (R1 §2.3.4, all-scenario RL).

R1 scores general prompts with two reward models: helpfulness reads **only the final summary**
(so the reasoning is left free), safety reads **the whole response**, reasoning included, to catch
harm anywhere in it (../shared/R1-FACTS.md, "All-scenario RL"). `ModelReward` is that term:
``reward(completion, example) -> float`` with a batch form, where ``example.question`` is the
user's message the model answered. The reward model renders (question, response) with the chat
template and returns a scalar (`r1lab.model.reward.RewardModel.score_texts`).

A pairwise (Bradley–Terry) model's score is used as it is; a pointwise one's logit can be squashed
to the probability of the label (`squash=True`: P(safe) in [0, 1]). GRPO's advantages are relative
within a group, so a score's offset does not matter, only its spread against the other terms'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from r1lab.rewards.format import reply_body, summary_text

SUMMARY, WHOLE = "summary", "whole"


class ModelReward:
    """Scores completions with a reward model: the summary (`part="summary"`) or the whole reply.

    The reply is cut where the turn ends (`reply_body`: an EOS the engine kept, a made-up new turn),
    so the model never scores text past the answer. Scoring is batched; it never raises on model
    text (any string renders), and an empty summary is scored as such.
    """

    def __init__(self, model: Any, tokenizer: Any, *, part: str = SUMMARY, squash: bool = False,
                 bf16: bool = False, batch_size: int = 64) -> None:
        if part not in (SUMMARY, WHOLE):
            raise ValueError(f"ModelReward.part must be {SUMMARY!r} or {WHOLE!r}, got {part!r}")
        self.model, self.tokenizer, self.part, self.squash = model, tokenizer, part, squash
        self.bf16, self.batch_size = bf16, batch_size

    def response(self, completion: str) -> str:
        """The text the reward model reads."""
        return summary_text(completion) if self.part == SUMMARY else reply_body(completion).strip()

    def __call__(self, completion: str, example: Any) -> float:
        return self.batch([completion], [example])[0]

    def batch(self, completions: Sequence[str], examples: Sequence[Any]) -> list[float]:
        prompts = [str(getattr(e, "question", e)) for e in examples]
        scores = self.model.score_texts(self.tokenizer, prompts, [self.response(c) for c in completions],
                                        batch_size=self.batch_size, bf16=self.bf16)
        return [0.5 * (1 + math.tanh(s / 2)) if self.squash else float(s) for s in scores]  # sigmoid, no overflow
