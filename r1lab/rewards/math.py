"""Math answer checking, shared by the RL accuracy reward and the evaluation stage.

The R1 recipe grades reasoning with rules, not a learned reward model (R1 §2.2.2; see
shared/R1-FACTS.md, "R1-Zero training settings"): the final answer is read from the
completion and compared with the gold answer. Conventions (shared/data/CONVENTIONS.md):

* grade only this reply: the text before the first end-of-turn marker (``<|eos|>``,
  ``<|user|>``, ``<|bos|>``) or made-up new turn or question (``User:``, ``Assistant:``,
  ``\\n\\nQ:``), as the format rewards read it (`reply_body`), and in it only what follows
  the last ``</think>`` (the reasoning may contain drafts);
* the final answer is the last ``\\boxed{...}`` / ``\\fbox{...}`` (brace matching, not a
  regex), else the last ``<answer>...</answer>`` (the R1-Zero template, R1 Table 1), else
  the GSM8K ``#### N`` line;
* equivalence: plain numbers compare exactly in-process (the fast path RL relies on: world
  and GSM8K/AIME answers are integers); anything else goes to ``math-verify`` with the gold
  wrapped as ``$...$``. math-verify times itself out with ``signal.alarm``, which only works
  in a process's main thread, so it runs in a pool of worker *processes*, each keeping its
  own alarm; the parent adds a second, outer timeout for hangs the alarm cannot interrupt.

Nothing here raises on model text: an unreadable completion simply scores 0.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from r1lab.rewards.answer_forms import canonical_answer as canonical_answer  # re-exported
from r1lab.rewards.answer_forms import fast_verdict, for_math_verify
from r1lab.rewards.format import reply_body
from r1lab.rewards.rubric import RewardConfigError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds math-verify may spend on one parse or one comparison
_STARTUP_GRACE = 60.0  # extra seconds a fresh pool may take to start its workers

# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])\s*(\{)?")
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)  # `\{`, `\}` and `\\` are not braces
_BARE_BOXED = re.compile(r"\s*([^\s${}]+)")  # `\boxed 5`, as in a few MATH solutions


def extract_answer(completion: str) -> str | None:
    r"""The final answer of a completion, or None when it states none.

    Reads this reply only (`reply_body`: up to the first ``<|eos|>``/``<|user|>``/``<|bos|>``, or a
    made-up ``User:``/``Assistant:`` turn or new question: a later turn's answer is not this one's),
    after its last ``</think>`` (or all of it when there is none) and
    before any ``<think>`` reopened there and never closed (a draft), then takes the last
    ``\boxed{}``/``\fbox{}``, else the last ``<answer>...</answer>``, else the last ``#### N`` line.
    Linear in the text length, whatever the text.

    >>> extract_answer(r"<think>maybe \boxed{3}</think> so \boxed{\frac{1}{2}}.")
    '\\frac{1}{2}'
    >>> extract_answer("<think>x</think><answer> 42 </answer>")
    '42'
    >>> extract_answer("She pays 5 + 3 = 8.\n#### 8"), extract_answer("no answer")
    ('8', None)
    """
    if not isinstance(completion, str):
        return None
    body = reply_body(completion)
    if "</think>" in body:
        text = body[body.rfind("</think>") + len("</think>"):]
        # a <think> after it opens a block that never closed: a draft, read like unfinished thinking
        text = text.split("<think>", 1)[0]
    elif "<think>" in body:
        return None  # never finished thinking: everything is reasoning, drafts included
    else:
        text = body
    for find in (_last_boxed, _last_answer_tag, _last_hashes):
        answer = find(text)
        if answer:
            return answer
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the last non-empty ``\\boxed{...}``, found by brace matching; None when that box
    never closes (cut off, as at the length limit): its answer is unstated, and an earlier box is
    an answer the model went on to revise."""
    starts = list(_BOXED.finditer(text))
    if not starts:
        return None
    closing = _matching_braces(text, starts[0].start())
    for match in reversed(starts):
        if match.group(1) is None:  # `\boxed 5`
            bare = _BARE_BOXED.match(text, match.end())
            content = bare.group(1) if bare else ""
        else:
            open_at = match.end() - 1
            close_at = closing.get(open_at)
            if close_at is None:
                return None
            content = text[open_at + 1:close_at]
        if content.strip():
            return content.strip()
    return None


def _matching_braces(text: str, start: int) -> dict[int, int]:
    """Map each ``{`` at or after `start` to its matching ``}`` (one pass, escapes skipped)."""
    stack: list[int] = []
    closing: dict[int, int] = {}
    for token in _BRACE_TOKEN.finditer(text, start):
        if token.group() == "{":
            stack.append(token.start())
        elif token.group() == "}" and stack:
            closing[stack.pop()] = token.start()
    return closing


def _last_answer_tag(text: str) -> str | None:
    """Content of the last complete ``<answer>...</answer>`` pair (R1-Zero template)."""
    end = text.rfind("</answer>")
    begin = text.rfind("<answer>", 0, end) if end >= 0 else -1
    if begin < 0:
        return None
    return text[begin + len("<answer>"):end].strip() or None


def _last_hashes(text: str) -> str | None:
    """The rest of the line after the last GSM8K-style ``####``."""
    at = text.rfind("####")
    if at < 0:
        return None
    return text[at + 4:].split("\n", 1)[0].strip() or None


# ---------------------------------------------------------------------------------------
# math-verify in worker processes
# ---------------------------------------------------------------------------------------

_pool: Any = None
_pool_lock = threading.Lock()


def _worker_count() -> int:
    """Up to 4 workers, never more than the CPUs this process may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, usable))


def _init_worker() -> None:
    """Worker start: ignore Ctrl-C (the parent handles it), keep math-verify's per-timeout
    warnings out of the logs (a timeout already scores False), load its grammar."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    _mv_parse("$1$", 5)


def _get_pool() -> Any:
    """The shared worker pool, created on first use.

    On Linux the workers are forked: they start in milliseconds, and unlike 'spawn' they do
    not re-run the caller's script (its torch import, or all of it when it lacks an
    ``if __name__ == "__main__"`` guard). They only run sympy, never torch or CUDA.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
            _pool = context.Pool(_worker_count(), initializer=_init_worker)
        return _pool


def _discard_pool(pool: Any = None) -> None:
    """Kill the workers of `pool` (default: the current one); a hung worker cannot be
    interrupted otherwise. The next call starts a fresh pool."""
    global _pool
    with _pool_lock:
        if _pool is not None and (pool is None or pool is _pool):
            _pool.terminate()
            _pool = None


atexit.register(_discard_pool)


@lru_cache(maxsize=4096)
def _mv_parse(text: str, timeout: int) -> Any:
    from math_verify import parse

    return parse(text, parsing_timeout=timeout)


def _strip_dollars(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    return text


def _verify_in_worker(pred: str, gold: str, timeout: int) -> bool:
    """Runs in a worker: math-verify with its own signal.alarm timeouts (main thread there)."""
    from math_verify import verify

    pred, gold = for_math_verify(pred), for_math_verify(gold)
    try:
        gold_parsed = _mv_parse(f"${_strip_dollars(gold)}$", timeout)
        pred_parsed = _mv_parse(f"${_strip_dollars(pred)}$", timeout) or _mv_parse(pred, timeout)
        if not (gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=timeout)):
            return False
        return _all_sides_equal(gold_parsed, pred_parsed[0], timeout)
    except Exception as err:  # noqa: BLE001 - model text must never crash the checker
        log.debug("math-verify failed on %r vs %r: %s", pred, gold, err)
        return False


def _all_sides_equal(gold_parsed: list, pred: Any, timeout: int) -> bool:
    """Against a gold that is no equation, math-verify reads an equation as its last right side,
    which is right for an assignment ("x=5", "a+b=7": a left side of symbols only) but made "4=5"
    and "2x=10" equal 5 and 10. An equation whose left side is a constant ("4=5", "2+3=5") is a
    statement: every side of it must equal the gold. One with any other left side ("2x=10",
    "x^2=4") is not solved for its unknown: it states no value, so it is not the answer. A left
    side that is a function's value ("f(2)=5", "P(3)=10") names the value asked for, as "x=5" does."""
    from math_verify import verify
    from math_verify.grader import is_equation, take_first_relation
    from sympy import And, Number
    from sympy.core.function import AppliedUndef

    if not is_equation(pred) or any(is_equation(g) for g in gold_parsed):
        return True
    lhs = take_first_relation(pred).lhs
    if isinstance(lhs, AppliedUndef):  # f(2) has no free symbol: it was taken for a constant, "4=5"'s kind
        return True
    if lhs.free_symbols:
        # not math-verify's is_assignment_relation: it takes "x/2" for symbols only
        return not lhs.atoms(Number)
    relations = pred.args if isinstance(pred, And) else (pred,)
    sides = [side for relation in relations for side in (relation.lhs, relation.rhs)]
    return all(verify(gold_parsed, side, timeout_seconds=timeout) for side in sides)


def _math_verify_many(pairs: Sequence[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT,
                      stall_after: float | None = None) -> list[bool]:
    """math-verify on (pred, gold) pairs in the worker pool, in parallel.

    Results are collected in submission order. When the earliest unfinished pair makes no
    progress for `stall_after` seconds (default: three parses + one comparison + slack), its
    worker is hung beyond the alarm's reach: that pair scores False, the pool is killed,
    and the unfinished rest is resubmitted to a fresh pool. The first result of a round
    also allows for the workers' start-up.
    """
    alarm = max(1, math.ceil(timeout))
    stall_after = 4 * alarm + 5 if stall_after is None else stall_after
    results: list[bool | None] = [None] * len(pairs)
    todo = list(range(len(pairs)))
    while todo:
        pool = _get_pool()
        pending = [(i, pool.apply_async(_verify_in_worker, (*pairs[i], alarm))) for i in todo]
        todo = []
        for position, (i, job) in enumerate(pending):
            try:
                results[i] = bool(job.get(timeout=stall_after + (_STARTUP_GRACE if position == 0 else 0.0)))
            except multiprocessing.TimeoutError:
                log.warning("math-verify hung on %r vs %r; scored as wrong", *pairs[i])
                results[i] = False
                _discard_pool(pool)
                todo = [j for j, _ in pending[position + 1:]]
                break
            except Exception as err:  # noqa: BLE001 - a worker crash scores the pair as wrong
                log.debug("math-verify worker failed on %r: %s", pairs[i], err)
                results[i] = False
    return [bool(r) for r in results]


# ---------------------------------------------------------------------------------------
# Public checking API
# ---------------------------------------------------------------------------------------


def check_answers(preds: Sequence[str | None], golds: Sequence[str], *,
                  timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
    """Whether each predicted answer equals its gold answer.

    The exact fast path decides plain numbers and identical normal forms in-process; only
    the rest goes to math-verify, fanned out over one shared process pool.
    """
    if len(preds) != len(golds):
        raise ValueError(f"check_answers: {len(preds)} predictions but {len(golds)} gold answers")
    golds = [str(g) for g in golds]
    verdicts = [fast_verdict(p, g) for p, g in zip(preds, golds)]
    slow = [i for i, v in enumerate(verdicts) if v is None]
    if slow:
        for i, ok in zip(slow, _math_verify_many([(preds[i], golds[i]) for i in slow], timeout)):
            verdicts[i] = ok
    return [bool(v) for v in verdicts]


def answers_equal(pred: str | None, gold: str, *, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether one predicted answer equals the gold answer (see `check_answers`).

    >>> answers_equal("1,000", "1000"), answers_equal("025", "25"), answers_equal("7", "8")
    (True, True, False)
    """
    return check_answers([pred], [gold], timeout=timeout)[0]


def gold_answer(example: Any) -> str:
    """The gold answer of an example: a `Problem` (``.answer``), a mapping with ``"answer"``,
    or the answer string itself. An example without one is a `RewardConfigError`: the data's
    mistake, not the model's, which `Rubric` would otherwise score 0 for every completion."""
    if isinstance(example, str):
        return example
    answer = example.get("answer") if isinstance(example, Mapping) else getattr(example, "answer", None)
    if answer is None:
        raise RewardConfigError(f"accuracy reward: the example has no gold answer (a {type(example).__name__} "
                                "without 'answer')")
    return str(answer)


def accuracy_reward(completion: str, example: Any) -> float:
    r"""The R1 accuracy reward: 1.0 when the completion's final answer equals the gold, else 0.0.

    Never raises on model text; a completion without a readable answer scores 0 and the
    reason is logged at debug level.

    >>> accuracy_reward("<think>\n2 + 2 = 4\n</think>\n\nThe answer is $\\boxed{4}$.", {"answer": "4"})
    1.0
    >>> accuracy_reward("<think>\nSo it is \\boxed{4}\n</think>\n\n\\boxed{5}", {"answer": "4"})
    0.0
    >>> accuracy_reward(r"\boxed{unclosed", {"answer": "4"})
    0.0
    """
    gold = gold_answer(example)
    pred = extract_answer(completion)
    if pred is None:
        log.debug("accuracy_reward: no final answer in completion (%d chars)",
                  len(completion) if isinstance(completion, str) else -1)
        return 0.0
    return 1.0 if answers_equal(pred, gold) else 0.0


def accuracy_rewards(completions: Sequence[str], examples: Sequence[Any]) -> list[float]:
    """`accuracy_reward` for a batch (e.g. a GRPO group): one parallel math-verify round
    instead of one per completion."""
    if len(completions) != len(examples):
        raise ValueError(f"accuracy_rewards: {len(completions)} completions but {len(examples)} examples")
    preds = [extract_answer(c) for c in completions]
    if None in preds:
        log.debug("accuracy_rewards: %d of %d completions state no final answer", preds.count(None), len(preds))
    verdicts = check_answers(preds, [gold_answer(e) for e in examples])
    return [1.0 if ok else 0.0 for ok in verdicts]
