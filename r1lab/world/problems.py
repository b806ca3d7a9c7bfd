"""The problem record every stage passes around, and the rule that assigns it a split.

R1's rewards are rules, not models (R1 §2.2.2): each problem carries its exact integer answer.
Splits are disjoint by construction: a hash of the problem's canonical string, not a random draw,
decides whether a problem may appear in the pretraining corpus, among the RL prompts, or in the
held-out evaluation, whatever the seeds: no held-out question is ever a pretraining problem. Its
expression can still be written inside one, though: a worked solution writes out the rest of its
expression after each step ("First, 19+8=27, so 27+1-2."), and that remainder is a problem of one
operand fewer. In the shipped base model's corpus (seed 0, 150k documents) 76 of 100 held-out
3-operand expressions occur so, 4 of 100 4-operand ones. Keeping only documents whose remainders
are of the pretraining split too removed that, but the base model trained on such a corpus wrote
wrong remainders (step-by-step accuracy 98% -> 10%); redrawing such documents within their
difficulty and mode instead kept the corpus's mix (base: pass@1 38.8%, step by step right 76%,
bare 29%), but R1-Zero with the demo's settings then no longer raised accuracy (33.1 -> 33.1,
length 12 -> 17). The corpus therefore does not filter them yet: the world needs retuning first.
Deciding the split by an expression's last two operations instead (so that a remainder shares its
problem's split) left 7 of 100 (countdown answers), but 98 of 100 held-out 3-operand expressions
still open a longer pretraining expression ("27+1-2+5": the same first steps), as they do now.
With chains of small numbers a held-out problem's steps are always worked somewhere in the
corpus: the split guarantees unseen problems, not unseen steps. The demo's accuracy does not rest
on the expressions seen: `benchmarks/heldout_overlap.py` finds 3-operand held-out problems that
occur nowhere in the corpus solved as often as those that do (R1-Zero 100.0 vs 96.6 pass@1 on a
2-core AMD EPYC, 100.0 vs 97.3 on a 2-core Xeon at 1c78436: benchmarks/results/cpu-2026-11-2*.jsonl).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from r1lab.world.arithmetic import Chain
from r1lab.world.language import ENGLISH, register_words

ARITHMETIC = "arithmetic"
COUNTDOWN = "countdown"
KINDS: tuple[str, ...] = (ARITHMETIC, COUNTDOWN)

PRETRAIN, RL, HELDOUT = "pretrain", "rl", "heldout"
# Share of the hash space (percent) owned by each split.
SPLIT_PERCENT: dict[str, range] = {PRETRAIN: range(0, 80), RL: range(80, 90), HELDOUT: range(90, 100)}


def split_of(canonical: str) -> str:
    """The split a problem belongs to: sha256 of its canonical string, mod 100."""
    bucket = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big") % 100
    return next(name for name, percent in SPLIT_PERCENT.items() if bucket in percent)


@dataclass(frozen=True, kw_only=True)
class WorldProblem:
    """A verifiable problem of the miniature world.

    ``answer`` is the exact value (arithmetic) or the target to reach (countdown); ``chain`` is
    the expression (arithmetic) or one reference solution (countdown); ``numbers`` are the
    operands in order (arithmetic) or the numbers given to the solver (countdown).
    """

    id: str
    kind: str
    question: str
    answer: int
    difficulty: int
    chain: Chain
    numbers: tuple[int, ...]

    @property
    def canonical(self) -> str:
        """The identity used for splitting: the expression, or sorted numbers and target."""
        if self.kind == ARITHMETIC:
            return f"{ARITHMETIC}:{self.chain.expression()}"
        return f"{COUNTDOWN}:{','.join(map(str, sorted(self.numbers)))}->{self.answer}"

    @property
    def split(self) -> str:
        return split_of(self.canonical)

    def benchmark_fields(self) -> dict[str, str]:
        """Fields of ``r1lab.benchmarks.Problem``: prompt is the bare question, answer a string.

        A countdown answer is an expression reaching the target, so ``source`` tells graders to
        score it with ``r1lab.world.check_completion`` rather than by comparing numbers.
        """
        return {"id": self.id, "prompt": self.question, "answer": str(self.answer), "source": f"r1lab.world/{self.kind}"}

    def to_problem(self) -> Any:
        """This problem as an ``r1lab.benchmarks.Problem`` (imported lazily: that module is optional here)."""
        from r1lab.benchmarks import Problem  # noqa: PLC0415

        return Problem(**self.benchmark_fields())


def make_id(canonical: str) -> str:
    """A short stable id: the kind plus 10 hex digits of the canonical string's hash."""
    kind = canonical.split(":", 1)[0]
    return f"{kind}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


register_words(ENGLISH, "Compute Use once each to make")


def arithmetic_problem(chain: Chain) -> WorldProblem:
    """Wrap a chain as a problem; the question is ``Compute <expression>``."""
    expression = chain.expression()
    return WorldProblem(
        id=make_id(f"{ARITHMETIC}:{expression}"),
        kind=ARITHMETIC,
        question=f"Compute {expression}",
        answer=chain.value(),
        difficulty=len(chain.operands),
        chain=chain,
        numbers=chain.operands,
    )


def countdown_problem(numbers: tuple[int, ...], target: int, solution: Chain) -> WorldProblem:
    """Wrap a countdown instance; the question lists the numbers in the given order."""
    canonical = f"{COUNTDOWN}:{','.join(map(str, sorted(numbers)))}->{target}"
    return WorldProblem(
        id=make_id(canonical),
        kind=COUNTDOWN,
        question=f"Use {', '.join(map(str, numbers))} once each to make {target}",
        answer=target,
        difficulty=len(numbers),
        chain=solution,
        numbers=numbers,
    )
