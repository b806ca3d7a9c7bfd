"""Problem sets for each stage, drawn from disjoint splits.

The split of a problem is a property of the problem itself (a hash of its canonical string; see
``problems.split_of``), so sampling for a split is rejection sampling: draw, keep the problem if
it falls in the split. The pretraining corpus only ever keeps ``pretrain`` problems, R1-Zero and
reasoning RL (R1 §2.2, §2.3.2) draw ``rl`` prompts, and evaluation uses ``heldout`` ones.
"""

from __future__ import annotations

import numbers
import random

from r1lab.fields import check_int_arg
from r1lab.world.arithmetic import ArithmeticConfig, random_chain
from r1lab.world.countdown import CountdownConfig, random_countdown
from r1lab.world.problems import ARITHMETIC, COUNTDOWN, HELDOUT, KINDS, RL, SPLIT_PERCENT, WorldProblem, arithmetic_problem

DEFAULT_DIFFICULTY: dict[str, tuple[int, ...]] = {ARITHMETIC: (3, 4), COUNTDOWN: (3,)}


def sample_problem(
    rng: random.Random,
    split: str,
    kind: str,
    difficulty: int,
    arithmetic: ArithmeticConfig = ArithmeticConfig(),
    countdown: CountdownConfig = CountdownConfig(),
) -> WorldProblem:
    """A random problem of ``kind`` with ``difficulty`` operands/numbers from ``split``."""
    if split not in SPLIT_PERCENT:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_PERCENT)}")
    for _ in range(10_000):
        if kind == ARITHMETIC:
            problem = arithmetic_problem(random_chain(rng, difficulty, arithmetic))
        elif kind == COUNTDOWN:
            problem = random_countdown(rng, difficulty, countdown)
        else:
            raise ValueError(f"unknown problem kind {kind!r}; expected one of {KINDS}")
        if problem.split == split:
            return problem
    raise RuntimeError(f"no {kind} problem of difficulty {difficulty} found in split {split!r}")


def problem_set(
    split: str,
    n: int,
    seed: int = 0,
    kinds: tuple[str, ...] = (ARITHMETIC,),
    difficulties: dict[str, tuple[int, ...]] | None = None,
    arithmetic: ArithmeticConfig = ArithmeticConfig(),
    countdown: CountdownConfig = CountdownConfig(),
) -> list[WorldProblem]:
    """``n`` distinct problems of ``split``, kinds and difficulties cycled in order for balance.

    Deterministic in (split, n, seed, kinds, difficulties, configs); a larger ``n`` extends a
    smaller one (same prefix).
    """
    check_int_arg("problem_set", "n", n)  # else 2.5 drew 3 problems and True 1, in silence
    check_int_arg("problem_set", "seed", seed)  # the stream is seeded by its text: 0.0 drew other problems than 0
    _check_difficulties(difficulties or {})
    difficulties = {**DEFAULT_DIFFICULTY, **(difficulties or {})}
    if isinstance(kinds, str):  # else each letter is read as a kind: "unknown problem kind 'c'"
        raise ValueError(f"kinds must be a tuple of kinds, e.g. {(kinds,)!r}, got {kinds!r}")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown problem kind {unknown[0]!r}; expected one of {KINDS}")
    plan = [(kind, d) for kind in kinds for d in difficulties[kind]]
    if not plan and n > 0:
        raise ValueError(f"no kinds and difficulties to draw from: kinds={kinds}, difficulties={difficulties}")
    rng = random.Random(f"{split}:{seed}")
    problems: list[WorldProblem] = []
    seen: set[str] = set()
    misses = 0
    while len(problems) < n:
        kind, difficulty = plan[len(problems) % len(plan)]
        problem = sample_problem(rng, split, kind, difficulty, arithmetic, countdown)
        if problem.canonical not in seen:
            seen.add(problem.canonical)
            problems.append(problem)
            misses = 0
        elif (misses := misses + 1) > 20_000:  # this kind and difficulty has run out of distinct problems
            # name the pair alone: the others, drawn in turn with it, may hold far more than asked for
            have = sum(p.kind == kind and p.difficulty == difficulty for p in problems)
            raise ValueError(f"the {split} split has only about {have} distinct problems of kind {kind} and "
                             f"difficulty {difficulty}, and problem_set draws the {len(plan)} kind/difficulty pairs in "
                             f"turn; asked for {n}")
    return problems


def _check_difficulties(difficulties: dict[str, tuple[int, ...]]) -> None:
    """ValueError / TypeError naming a bad entry of ``difficulties``: a misspelt kind was ignored
    in silence (its default difficulties drawn instead), and a bare number (``{"arithmetic": 3}``)
    failed as "'int' object is not iterable"."""
    for kind, values in difficulties.items():
        if kind not in KINDS:
            raise ValueError(f"difficulties: unknown problem kind {kind!r}; expected one of {KINDS}")
        if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)):
            raise TypeError(f"difficulties[{kind!r}] must be a tuple of operand counts, e.g. (3, 4), got {values!r}")
        bad = [d for d in values if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 2]
        if bad:
            raise ValueError(f"difficulties[{kind!r}]: a difficulty is a count of operands, an int >= 2, got {bad[0]!r}")


def rl_prompts(
    n: int,
    seed: int = 0,
    kinds: tuple[str, ...] = (ARITHMETIC,),
    difficulties: dict[str, tuple[int, ...]] | None = None,
    arithmetic: ArithmeticConfig = ArithmeticConfig(),
    countdown: CountdownConfig = CountdownConfig(),
) -> list[WorldProblem]:
    """``n`` RL prompts for R1-Zero and reasoning RL (R1 §2.2, §2.3.2), from the ``rl`` split."""
    return problem_set(RL, n, seed, kinds, difficulties, arithmetic, countdown)


def heldout_problems(
    n: int,
    seed: int = 0,
    kinds: tuple[str, ...] = (ARITHMETIC,),
    difficulties: dict[str, tuple[int, ...]] | None = None,
    arithmetic: ArithmeticConfig = ArithmeticConfig(),
    countdown: CountdownConfig = CountdownConfig(),
) -> list[WorldProblem]:
    """``n`` held-out evaluation problems, from the ``heldout`` split (never a pretraining problem).

    Defaults: arithmetic with 3 and 4 operands, alternating. Countdown answers are expressions:
    score them with ``check_completion``, not by comparing numbers.
    """
    return problem_set(HELDOUT, n, seed, kinds, difficulties, arithmetic, countdown)
