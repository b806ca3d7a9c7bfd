"""Countdown: reach a target from given numbers, each used once, with ``+ - *``.

The task of TinyZero and of many R1-Zero reproductions. Unlike plain arithmetic its worked
solution is a search: try an order of operations, compute it step by step, compare with the
target, try again. The corpus shows a few misses before the hit, so thinking longer (more tries)
pays, the behaviour R1-Zero's RL grows (R1 §2.2.4). Answers are expressions, checked by a rule:
uses exactly the given numbers and evaluates to the target.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from dataclasses import dataclass

from r1lab.fields import check_int_fields
from r1lab.world.arithmetic import ArithmeticConfig, Chain, apply, feasible_moves, random_chain
from r1lab.world.problems import WorldProblem, countdown_problem

_EXPRESSION = re.compile(r"[0-9+\-*() ]*")  # the characters of an expression of the task


@dataclass(frozen=True, kw_only=True)
class CountdownConfig:
    """Difficulty knobs: the first number of the hidden solution lies in ``2..max_number``, the
    others in ``1..max_number`` except multipliers, which are always from the times tables
    (``2..9``, as in arithmetic); every step stays in ``1..max_value``."""

    max_number: int = 12
    max_value: int = 99

    def __post_init__(self) -> None:  # checked here: the arithmetic config it maps to names other knobs
        check_int_fields(self)
        if not 2 <= self.max_number <= self.max_value or self.max_value < 4:
            raise ValueError(f"CountdownConfig needs 2 <= max_number <= max_value and max_value >= 4; got {self}")

    def arithmetic(self) -> ArithmeticConfig:
        """Any of the numbers may be combined with any value, within range."""
        n = self.max_number
        return ArithmeticConfig(max_first=n, max_operand=n, max_multiplicand=self.max_value, max_value=self.max_value)


def random_countdown(rng: random.Random, n_numbers: int, config: CountdownConfig = CountdownConfig()) -> WorldProblem:
    """A solvable instance: a random chain over ``n_numbers`` numbers; its value is the target."""
    while True:
        solution = random_chain(rng, n_numbers, config.arithmetic())
        target = solution.value()
        if target not in solution.operands:  # a target among the numbers invites a shortcut
            numbers = list(solution.operands)
            rng.shuffle(numbers)
            return countdown_problem(tuple(numbers), target, solution)


def random_attempt(rng: random.Random, numbers: tuple[int, ...], config: CountdownConfig) -> Chain | None:
    """A random left-to-right ordering of all the numbers with in-range operators, or None."""
    order = list(numbers)
    rng.shuffle(order)
    value, ops = order[0], []
    for right in order[1:]:
        allowed = [op for op, rights in feasible_moves(value, config.arithmetic()) if right in rights]
        if not allowed:
            return None
        op = rng.choice(allowed)
        value = apply(value, op, right)
        ops.append(op)
    return Chain(operands=tuple(order), ops=tuple(ops))


def missed_attempts(rng: random.Random, problem: WorldProblem, count: int, config: CountdownConfig) -> list[Chain]:
    """Up to ``count`` distinct attempts that do not reach the target (the search's dead ends)."""
    attempts: list[Chain] = []
    for _ in range(20 * count):
        if len(attempts) == count:
            break
        attempt = random_attempt(rng, problem.numbers, config)
        if attempt is not None and attempt.value() != problem.answer and attempt not in attempts:
            attempts.append(attempt)
    return attempts


def evaluate_expression(text: str) -> tuple[int, list[int]] | None:
    """Value and literal numbers of an expression of integers, ``+ - *`` and parentheses; None if not one."""
    if not _EXPRESSION.fullmatch(text.strip()):  # Python reads more: "1_2" as 12, "3+4 # 9" as 3+4
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    literals: list[int] = []

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            literals.append(node.value)
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[type(node.op)]
            return apply(walk(node.left), symbol, walk(node.right))
        raise ValueError("not an arithmetic expression")

    try:
        return walk(tree), literals
    except (ValueError, RecursionError):
        return None


def is_solution(expression: str, numbers: tuple[int, ...], target: int) -> bool:
    """Whether ``expression`` uses exactly ``numbers`` (each once) and equals ``target``."""
    if len(expression) > 200:  # ast.parse on huge inputs is slow; no real answer is that long
        return False
    evaluated = evaluate_expression(expression)
    if evaluated is None:
        return False
    value, literals = evaluated
    return value == target and Counter(literals) == Counter(numbers)
