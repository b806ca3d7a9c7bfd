"""Reading answers out of completions, and the rule that says whether they are right.

R1 uses rule-based rewards (R1 §2.2.2): an accuracy reward from a deterministic check of the final
answer, and a format reward for putting the reasoning between ``<think>`` and ``</think>``. The
answer is read from what follows the last ``</think>`` (the whole completion without one): from its
``<answer>...</answer>`` when present, else from all of it, so a base model that answers in plain
text ("So the answer is 151.") is scored on its merits before RL has taught it the tags. Nothing here
raises on malformed text: a completion with no answer simply scores as wrong.

The world reads at most `READ_CHARS` characters of a completion, for every rule here (the accuracy
rule, its R1-Zero format check, `completion_body`). A reply that has not ended within them was not
read to its end: it states no final answer and is not in the format, rather than being judged on a
prefix (a "151" cut at the limit read as 15). The rewards of `r1lab.rewards` (format, math, code)
read the whole reply, with no limit: on a longer reply they can pay where the world's rules do not.
"""

from __future__ import annotations

import re

from r1lab.rewards.format import last_answer_block, reply_body
from r1lab.world.countdown import is_solution
from r1lab.world.problems import ARITHMETIC, WorldProblem

# A minus right after a digit or ")" is an operator. A number with a decimal point, a fraction bar
# or a power is read whole, so that "4.5" is not 5 nor "92/2" 2; of those only "46.0" is an integer.
_NUMBER = re.compile(r"(?<![\d)./^])-?\d+(?:[./^]\d+)*")
_INTEGRAL = re.compile(r"(-?\d+)(?:\.0+)?")
_MAX_DIGITS = 1000  # int() refuses over 4,300 digits (CPython's limit); no world answer is near this
# "/", "^" and a decimal point are no operators of the task, but they stay in the run so that the
# expression is judged (and refused) as written: "(12*4-2)/1" was judged as 12*4-2, "12*4-2.5" too.
_EXPRESSION_CHARS = re.compile(r"(?:[\d+\-*/^() ]|(?<=\d)\.(?=\d))+")
_OPERATORS = "+-*/^"
_R1_ZERO_FORMAT = re.compile(  # no tag inside the other's block (as the strict format reward)
    r"\s*<think>(?:(?!</?think>|</?answer>).)*</think>\s*<answer>(?:(?!</?answer>|</?think>).)*</answer>\s*", re.DOTALL)
READ_CHARS = 20_000  # what the world reads of a completion; a reply not ended within it is not judged
# more than the longest end marker of `reply_body` ("\n\nProblem:", "Assistant:", "<|user|>"): a marker
# that starts within READ_CHARS ends the reply there, though it runs past the limit
_MARKER_SLACK = 32


def completion_body(completion: str) -> str:
    """The completion up to its end: the first EOS, new turn (``User:``, ``Assistant:``), or new question
    (the format rewards' `reply_body`, so that accuracy and format judge the same reply), within its
    first `READ_CHARS` characters (an end marker that starts within them ends it)."""
    if not isinstance(completion, str):
        return ""
    # cut at READ_CHARS first, an "<|eos|>" starting at READ_CHARS - 3 was cut to "<|e": the reply
    # that ended there was judged as not read to its end
    return reply_body(completion[:READ_CHARS + _MARKER_SLACK])[:READ_CHARS]


def read_to_end(completion: str) -> bool:
    """Whether the reply ends within the `READ_CHARS` characters the world reads (else its end,
    where the answer is, was not read)."""
    return _judged_body(completion) is not None


def _judged_body(completion: str) -> str | None:
    """`completion_body`, or None when the reply is not `read_to_end`: the rules judge it neither
    right nor in format. One pass finds the body for both the end test and the rules that read it."""
    body = completion_body(completion)
    ended = not isinstance(completion, str) or len(completion) <= READ_CHARS or len(body) < READ_CHARS
    return body if ended else None


def final_answer_span(completion: str) -> str:
    """The text that holds the final answer, read after the last ``</think>`` (all of the reply
    without one): its last ``<answer>`` body, else all of it. The reasoning may hold drafts, an
    ``<answer>`` block among them, which a reply that ends its thinking without an answer does not
    make final (as benchmark samples, `rewards.math`). Nothing when the last ``<think>`` is never
    closed: a completion cut off while thinking has no final answer yet, only the last number of a
    draft. A last ``<answer>`` never closed (cut off, or the turn ended) is read to the end: what it
    says is the final answer (a missing tag costs the format reward), not an earlier block's.
    Nothing either when the reply runs past `READ_CHARS` (the world did not read its end)."""
    body = _judged_body(completion)
    if body is None:
        return ""
    if body.rfind("<think>") > body.rfind("</think>"):
        return ""
    if "</think>" in body:
        body = body.rsplit("</think>", 1)[1]
    opened = body.rfind("<answer>")
    if opened > body.rfind("</answer>"):  # "<answer>1</answer> <answer>2": the answer was revised to 2
        return body[opened + len("<answer>"):]
    answer = last_answer_block(body)
    return body if answer is None else answer


def extract_final_answer(completion: str) -> int | None:
    """The final integer of a completion, or None (also when it is too long to be an answer); never raises."""
    numbers = _NUMBER.findall(final_answer_span(completion))
    integral = _INTEGRAL.fullmatch(numbers[-1]) if numbers else None
    return int(integral[1]) if integral and len(integral[1]) <= _MAX_DIGITS else None


def _expressions(text: str) -> list[str]:
    """Each maximal run of expression characters, from its first digit or ``(`` to its last digit
    or ``)``, when those are two different characters (``re.findall(r"[\\d(][\\d+\\-*/^() ]*[\\d)]")``,
    a decimal point between digits included, in linear time: that regex rescans the run from
    every ``(`` without a closing digit or ``)``).

    An operator written onto either end stays with the expression, so that it is judged as
    written: ``-3+10`` (a unary minus), ``3+10*`` (unfinished) and ``1/(3+10)`` are no solution,
    where a prose dash set off by a space (``x - 3+10``) is not part of it."""
    found = []
    for run in _EXPRESSION_CHARS.findall(text):
        head = len(run) - len(run.lstrip(_OPERATORS + ") "))  # where the first digit or "(" is
        core = run[head:].rstrip(_OPERATORS + "( ")
        if len(core) < 2:
            continue
        tail = head + len(core)
        if head and run[head - 1] == "-" and (head == 1 or run[head - 2] in " ("):
            core = "-" + core
        elif head and run[head - 1] in "/^":  # "1/(12*4-2)": a divisor, not the answer
            core = run[head - 1] + core
        if tail < len(run) and run[tail] in _OPERATORS:
            core += run[tail]
        found.append(core)
    return found


def extract_final_expression(completion: str) -> str | None:
    """The last arithmetic expression (with at least one operator) in the answer span, or None."""
    candidates = [m.strip() for m in _expressions(final_answer_span(completion))]
    candidates = [c for c in candidates if re.search(r"[\d)]\s*[-+*/^]", c)]  # "(13)*5" too; "48/2" is one
    return candidates[-1] if candidates else None


def follows_r1_zero_format(completion: str) -> bool:
    """Whether the completion is exactly ``<think> ... </think> <answer> ... </answer>`` (R1 §2.2.2),
    its reply read to its end within `READ_CHARS` characters."""
    body = _judged_body(completion)
    return body is not None and _R1_ZERO_FORMAT.fullmatch(body) is not None


def check_completion(problem: WorldProblem, completion: str) -> bool:
    """The accuracy rule: the right integer, or (countdown) an expression that reaches the target."""
    if problem.kind == ARITHMETIC:
        return extract_final_answer(completion) == problem.answer
    expression = extract_final_expression(completion)
    return expression is not None and is_solution(expression, problem.numbers, problem.answer)
