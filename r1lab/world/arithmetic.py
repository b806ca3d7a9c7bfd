"""Multi-step integer arithmetic: the world's main reasoning task.

A problem is a left-to-right chain ``((a op b) op c) op d`` written with the fewest parentheses,
e.g. ``(17-6)*5+7`` or ``34+7-8+9``. Its worked solution is one small step per operator
(``34+7=41``): a number up to 99 and a one-digit number (``*`` only in the times tables), a
space of ~2,000 facts a tiny model sees hundreds of times each in pretraining. Its bare answer
needs all the steps in one shot, which a tiny model mostly cannot do. That gap, reasoning right
far more often than guessing, is what lets R1-Zero's RL reward thinking and grow it (R1 §2.2;
``/work/shared/notes/miniature-feasibility.md``: at 19% vs 14% RL only shifted the mix).

Difficulty knobs (``ArithmeticConfig``): the number of operands, the range of the first and of
the other operands, the largest multiplicand, and the largest value any step may produce (all
intermediate values stay in ``[1, max_value]``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from r1lab.fields import check_int_fields

OPS: tuple[str, ...] = ("+", "-", "*")
MULTIPLIERS = range(2, 10)  # "*" always takes a one-digit right operand


@dataclass(frozen=True, kw_only=True)
class ArithmeticConfig:
    """Difficulty knobs for generated chains."""

    max_first: int = 40  # the first operand lies in 2..max_first
    max_operand: int = 9  # the right operand of + and - lies in 1..max_operand
    max_multiplicand: int = 12  # "*" only applies to values up to this (times tables), by 2..9
    max_value: int = 99  # every intermediate value lies in 1..max_value
    op_weights: tuple[float, float, float] = (0.35, 0.35, 0.3)  # +, -, * (among those feasible)

    def __post_init__(self) -> None:
        check_int_fields(self)  # a float (max_value=99.5) passed the range checks, then failed mid-draw
        if not 2 <= self.max_first <= self.max_value or self.max_operand < 1 or self.max_value < 4:
            raise ValueError(f"inconsistent arithmetic config {self}")
        if len(self.op_weights) != len(OPS) or min(self.op_weights) < 0 or not any(self.op_weights):
            raise ValueError(f"op_weights needs {len(OPS)} non-negative weights (for {' '.join(OPS)}), not all zero; "
                             f"got {self.op_weights}")


@dataclass(frozen=True, kw_only=True)
class Step:
    """One operation of a worked solution: ``left op right = result``."""

    left: int
    op: str
    right: int
    result: int

    def text(self, result: int | None = None) -> str:
        """``37+48=85``; ``result`` overrides the value (to write a deliberate mistake)."""
        return f"{self.left}{self.op}{self.right}={self.result if result is None else result}"


@dataclass(frozen=True, kw_only=True)
class Chain:
    """A left-nested expression: ``operands[0] ops[0] operands[1] ops[1] ...``."""

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.operands) != len(self.ops) + 1 or any(op not in OPS for op in self.ops):
            raise ValueError(f"malformed chain {self.operands} {self.ops}")

    def steps(self) -> list[Step]:
        """The worked solution, one step per operator, evaluated left to right."""
        value, steps = self.operands[0], []
        for op, right in zip(self.ops, self.operands[1:]):
            result = apply(value, op, right)
            steps.append(Step(left=value, op=op, right=right, result=result))
            value = result
        return steps

    def value(self) -> int:
        """The exact answer."""
        return self.steps()[-1].result if self.ops else self.operands[0]

    def expression(self) -> str:
        """The chain with minimal parentheses; Python's ``eval`` of it equals ``value()``."""
        text, additive = str(self.operands[0]), False
        for op, right in zip(self.ops, self.operands[1:]):
            if op == "*" and additive:
                text = f"({text})"
            text, additive = f"{text}{op}{right}", op != "*"
        return text


def apply(left: int, op: str, right: int) -> int:
    """Exact integer result of one operation."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    raise ValueError(f"unknown operator {op!r}")


def feasible_moves(value: int, config: ArithmeticConfig) -> list[tuple[str, range]]:
    """Operators (with their allowed right operands) that keep the next value in range."""
    moves = []
    if value + 1 <= config.max_value:
        moves.append(("+", range(1, min(config.max_operand, config.max_value - value) + 1)))
    if value >= 2:
        moves.append(("-", range(1, min(config.max_operand, value - 1) + 1)))
    top = min(MULTIPLIERS.stop - 1, config.max_value // max(value, 1))
    if 2 <= value <= config.max_multiplicand and top >= MULTIPLIERS.start:
        moves.append(("*", range(MULTIPLIERS.start, top + 1)))
    return moves


def _allowed_moves(value: int, config: ArithmeticConfig) -> list[tuple[str, range]]:
    """`feasible_moves` of the operators with a positive weight."""
    weights = dict(zip(OPS, config.op_weights))
    return [(op, rights) for op, rights in feasible_moves(value, config) if weights[op] > 0]


def _move(rng: random.Random, value: int, config: ArithmeticConfig) -> tuple[str, int]:
    """A random operator and right operand that keep the next value in range."""
    weights = dict(zip(OPS, config.op_weights))
    moves = _allowed_moves(value, config)
    if not moves:  # e.g. op_weights (1, 0, 0) once a long chain reaches max_value
        raise ValueError(f"no operator with a positive weight in {config.op_weights} keeps {value} within "
                         f"1..{config.max_value}")
    op, choices = rng.choices(moves, weights=[weights[op] for op, _ in moves])[0]
    return op, rng.choice(choices)


def random_chain(rng: random.Random, n_operands: int, config: ArithmeticConfig = ArithmeticConfig()) -> Chain:
    """A random chain of ``n_operands`` operands whose every step stays in range."""
    if n_operands < 2:
        raise ValueError("a chain needs at least two operands")
    value = rng.randint(2, config.max_first)
    operands, ops = [value], []
    for _ in range(n_operands - 1):
        op, right = _move(rng, value, config)
        value = apply(value, op, right)
        operands.append(right)
        ops.append(op)
    return Chain(operands=tuple(operands), ops=tuple(ops))


def random_step(rng: random.Random, config: ArithmeticConfig = ArithmeticConfig()) -> Step:
    """One step like those inside chains (left value anywhere in range): drill material.

    A left value no allowed operator can leave (99 when only ``+`` has weight) is drawn again:
    chains never take a step from it either. ValueError if no value in range has a step.
    """
    high = config.max_value if rng.random() < 0.6 else config.max_first
    left = rng.randint(2, high)
    while True:  # drawn again only then, so configs whose every value has a step draw as before
        try:
            op, right = _move(rng, left, config)  # raises before drawing anything when there is no move
            break
        except ValueError:
            if not any(_allowed_moves(value, config) for value in range(2, high + 1)):
                raise ValueError(f"no operator with a positive weight in {config.op_weights} has a step from "
                                 f"any value in 2..{high} within 1..{config.max_value}") from None
            left = rng.randint(2, high)
    return Step(left=left, op=op, right=right, result=apply(left, op, right))
