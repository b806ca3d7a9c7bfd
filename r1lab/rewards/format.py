"""Format rewards for the R1-Zero template (R1 §2.2.2, Table 1): reasoning inside
`<think>...</think>`, then the answer inside `<answer>...</answer>`.

strict:  the whole completion (up to its end, `reply_body`) is exactly <think>…</think> <answer>…</answer>,
         each tag once, nothing around them but whitespace;
lenient: a <think>…</think> block is followed somewhere later by an <answer>…</answer> block.

After the cold start, R1's output format is readable reasoning then a summary (R1 §2.3.1):
r1:      <think>…</think> then a non-empty summary, each think tag once, no <answer> tags.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

_END = re.compile(r"<\|eos\|>|<\|user\|>|<\|bos\|>")
# R1 Table 1's template writes the turns as plain text ("User: {prompt}. Assistant:"), so a
# completion that goes on with "User:" or "Assistant:" has made up a new turn; not one inside a link
# (".../index.php/User:Name", as AIME 2024's reference solutions cite)
NEW_TURN = re.compile(r"(?<![\w/])(?:User|Assistant):")
# a new question as the world's corpus frames one ("Q: ...", "Problem: ..."; also how few-shot math
# prompts separate questions)
NEW_QUESTION = re.compile(r"\n\n(?:Problem|Q):")
# where the reply ends in a turn: a made-up new turn or a new question
_REPLY_END = re.compile(rf"{NEW_TURN.pattern}|{NEW_QUESTION.pattern}")
_STRICT = re.compile(r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>\s*<answer>(?:(?!</?answer>|</?think>).)*</answer>\s*",
                     re.DOTALL)
_R1 = re.compile(r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>(.*)", re.DOTALL)
_TAG = re.compile(r"</?think>|</?answer>")
# a control token written out (a sampled <|assistant|> or <|pad|>) is a special id, not summary text
_CONTROL = re.compile(r"<\|[a-z]+\|>")
_LENIENT = ("<think>", "</think>", "<answer>", "</answer>")


def turn_body(completion: Any) -> str:
    """The completion up to its first end-of-turn marker (``<|eos|>``, ``<|user|>``, ``<|bos|>``);
    non-text is empty. What follows a marker is another turn (or text generated past the end),
    not this answer, so no rule reads it.

    >>> turn_body("<think>2+3=5</think> 5<|user|>Now add one.<|assistant|>6")
    '<think>2+3=5</think> 5'
    """
    return _END.split(completion, maxsplit=1)[0] if isinstance(completion, str) else ""


def reply_body(completion: Any) -> str:
    """`turn_body` also ended by a new plain-text turn (``User:``, ``Assistant:``) or a new question
    after a blank line (``Q:``, ``Problem:``): the one end of the reply that the format and language
    rewards and the world's accuracy rule (`r1lab.world.completion_body`) share, so that they judge the
    reply whose answer is graded, not the turns or questions the model made up after it.

    >>> reply_body("<think>2+3=5</think> <answer>5</answer> User: and 1+1? Assistant: 2")
    '<think>2+3=5</think> <answer>5</answer> '
    """
    return _REPLY_END.split(turn_body(completion), maxsplit=1)[0]


def summary_text(completion: Any) -> str:
    """The reply's final summary, stripped: the text after its last ``</think>`` (all of the reply
    without one). R1's helpfulness reward model reads only this (R1 §2.3.4).

    >>> summary_text("<think>\\nI remember: 7.\\n</think>\\nIt is 7.<|eos|>")
    'It is 7.'
    """
    return reply_body(completion).rsplit("</think>", 1)[-1].strip()


def last_answer_block(text: str) -> str | None:
    """The last of the ``<answer>...</answer>`` bodies, each ``<answer>`` closed by the first
    ``</answer>`` after it: ``re.findall(r"<answer>(.*?)</answer>")[-1]`` in linear time (the
    regex rescans to the end from every unclosed ``<answer>``: 40,000 of them took 43 s).

    >>> last_answer_block("<answer>1</answer> then <answer>2</answer> <answer>3"), last_answer_block("3")
    ('2', None)
    """
    last, at = None, 0
    while (start := text.find("<answer>", at)) >= 0:
        end = text.find("</answer>", start + len("<answer>"))
        if end < 0:
            break
        last, at = text[start + len("<answer>"):end], end + len("</answer>")
    return last


def _in_order(text: str, tags: Sequence[str]) -> bool:
    """Whether `tags` occur in `text` one after another, without overlapping.

    The linear form of the regex ``<think>.*?</think>.*?<answer>.*?</answer>`` (same verdicts):
    taking each tag's first occurrence after the previous one is enough, while the regex's
    backtracking is cubic on degenerate text (``"<think>step</think>" * 1000`` took ~19 s).
    """
    at = 0
    for tag in tags:
        at = text.find(tag, at)
        if at < 0:
            return False
        at += len(tag)
    return True


def strict_format_reward(completion: str, example: Any = None) -> float:
    """1.0 when the completion is exactly the R1-Zero format, else 0.0.

    >>> strict_format_reward("<think> 3+4=7 </think> <answer> 7 </answer>")
    1.0
    >>> strict_format_reward("<think> 3+4=7 </think> 7")
    0.0
    """
    body = reply_body(completion)
    return _verdict(bool(_STRICT.fullmatch(body)), "strict_format_reward", "is not exactly <think>…</think> "
                    "<answer>…</answer>", body)


def lenient_format_reward(completion: str, example: Any = None) -> float:
    """1.0 when a think block is followed by an answer block, whatever surrounds them.

    >>> lenient_format_reward("Sure. <think> 3+4=7 </think> So: <answer> 7 </answer> done")
    1.0
    """
    body = reply_body(completion)
    return _verdict(_in_order(body, _LENIENT), "lenient_format_reward", "has no <think>…</think> then "
                    "<answer>…</answer>", body)


def r1_format_reward(completion: str, example: Any = None) -> float:
    """1.0 for ``<think>`` reasoning ``</think>`` followed by a non-empty summary (R1 §2.3.1); control
    tokens (``<|pad|>``, ``<|assistant|>``) are no summary text.

    >>> r1_format_reward("<think>\\n3+4=7\\n</think>\\nThe value of 3+4 is 7.")
    1.0
    >>> r1_format_reward("<think> 3+4=7 </think>"), r1_format_reward("<think> 3+4=7 </think> <answer> 7 </answer>")
    (0.0, 0.0)
    """
    body = reply_body(completion)
    m = _R1.fullmatch(body)
    ok = bool(m and _CONTROL.sub("", m.group(1)).strip() and not _TAG.search(m.group(1)))
    return _verdict(ok, "r1_format_reward", "is not one <think>…</think> then a summary without tags", body)


def _verdict(ok: bool, reward: str, why: str, body: str) -> float:
    """1.0 or 0.0; a 0 says why in the debug log, as the rewards' contract promises (r1lab.rewards)."""
    if not ok:
        log.debug("%s: 0, the reply (%d chars) %s", reward, len(body), why)
    return 1.0 if ok else 0.0


format_reward = strict_format_reward
