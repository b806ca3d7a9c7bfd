"""How a question becomes the model's prompt, in the two ways the R1 recipe uses.

- ``r1_zero``: R1 Table 1's template as plain text after BOS; the base model continues after
  ``Assistant:`` with ``<think>…</think> <answer>…</answer>`` (R1-Zero, R1 §2.2.3);
- ``chat``: the chat format (`Tokenizer.apply_chat_template`): BOS, the user turn, then the
  assistant turn, which every model fine-tuned on chat data (cold start onwards, R1 §2.3)
  fills with ``<think>reasoning</think>`` and a summary, ended by EOS.

Every stage that samples (RL rollouts, evaluation, cold-start and rejection sampling) builds its
prompts with these templates, so a model is always asked the way it was trained; chat benchmark
prompts add R1's forced opening ``<think>`` after the chat prompt (`sample_eval`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence

from r1lab.rewards import RewardFn, lenient_format_reward, r1_format_reward, strict_format_reward

R1_ZERO = "r1_zero"
CHAT = "chat"
AUTO = "auto"  # where a checkpoint is given: the template it was trained with (`infer_template`)
TEMPLATES: tuple[str, ...] = (R1_ZERO, CHAT)


class _Tokenizer(Protocol):
    bos_id: int

    def encode(self, text: str, *, split_special_tokens: bool = False) -> list[int]: ...

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> list[int]: ...


def check_template(template: str) -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; expected one of {TEMPLATES}")
    return template


def prompt_ids(tokenizer: _Tokenizer, question: str, template: str, system: str | None = None) -> list[int]:
    """Token ids of the prompt for ``question``; the completion follows directly. A control token
    written out in ``question`` or ``system`` (``<|eos|>``, ``<|assistant|>``) is encoded as text:
    only the template places the real ones."""
    if check_template(template) == R1_ZERO:
        if system:  # Table 1's template has no place for one: dropping it would change the prompt unseen
            raise ValueError("the r1_zero template takes no system text (R1 Table 1); use the chat template")
        from r1lab.world.render import format_r1_zero

        return [tokenizer.bos_id, *tokenizer.encode(format_r1_zero(question), split_special_tokens=True)]
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def check_prompt_room(questions: Sequence[str], tokenizer: _Tokenizer, template: str, max_new_tokens: int,
                      max_positions: int, flag: str) -> None:
    """ValueError naming `flag` when the longest prompt plus `max_new_tokens` exceeds the model's
    positions: a stage checks it before it writes anything (the engine's own check comes only at the
    first batch, after a run directory was reset or written)."""
    longest = max((len(prompt_ids(tokenizer, q, template)) for q in questions), default=0)
    if longest >= max_positions:  # no flag value helps: "at most 0" (or a negative) would mislead
        raise ValueError(f"the longest prompt ({longest} tokens) alone fills the model's max_position_embeddings, "
                         f"{max_positions} positions: no {flag} fits; shorten the questions or use a longer-context model")
    if longest + max_new_tokens > max_positions:
        raise ValueError(f"{flag} {max_new_tokens} leaves no room for the longest prompt ({longest} tokens) in the "
                         f"model's max_position_embeddings, {max_positions} positions; at most {max_positions - longest}")


def infer_template(checkpoint: str | Path) -> str:
    """The template a checkpoint was trained with, from its saved stage config
    (`r1lab_config.json`): an RL run records its `template`, an SFT run (a `data` file and
    `packing`) trained on chat; anything else (a base model) gets R1-Zero's. ValueError naming the
    file when it is no JSON object (cut short, edited): guessing a template would score silently wrong."""
    path = Path(checkpoint) / "r1lab_config.json"
    hint = f"pass --template ({' or '.join(TEMPLATES)}) to choose one"
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError as err:  # bad JSON, or bytes that are not UTF-8
        raise ValueError(f"{path}: cannot infer the prompt template, not readable JSON ({err}); {hint}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: cannot infer the prompt template from a JSON {type(config).__name__}, "
                         f"expected an object; {hint}")
    if "template" in config:  # a run that recorded its template: another value must not fall through to a guess
        if config["template"] not in TEMPLATES:
            raise ValueError(f"{path}: records the prompt template {config['template']!r}, not one of {TEMPLATES}; {hint}")
        return config["template"]
    return CHAT if {"data", "packing"} <= config.keys() else R1_ZERO


def format_rule(template: str, strict: bool = True) -> RewardFn:
    """The format reward that matches a prompt template: R1-Zero's tags (R1 Table 1) or, after
    the cold start, ``<think>`` reasoning then a summary (R1 §2.3.1)."""
    if check_template(template) == CHAT:
        return r1_format_reward
    return strict_format_reward if strict else lenient_format_reward
