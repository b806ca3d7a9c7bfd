"""A rubric: named reward functions with weights, summed into the RL reward (R1 §2.2.2:
accuracy + format, with equal weights in the Nature version; §2.3.2 adds language consistency)."""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

log = logging.getLogger(__name__)


class RewardFn(Protocol):
    def __call__(self, completion: str, example: Any) -> float: ...


@dataclass(frozen=True)
class RewardTerm:
    name: str  # shown in metrics as reward/<name>
    fn: RewardFn  # (completion, example) -> float; may also have .batch(completions, examples)
    weight: float = 1.0  # multiplies the term in the total


@dataclass
class RubricResult:
    total: list[float]  # weighted sum per completion
    # unweighted score of each term; None where the term does not apply (`ScenarioRubric`: a reward
    # model's term on a reasoning prompt), left out of its mean (no mean at all where it applies to none)
    per_term: dict[str, list[float | None]] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        scored = {k: [x for x in v if x is not None] for k, v in self.per_term.items()}
        out = {f"reward/{k}": _mean(v) for k, v in scored.items() if v or not self.per_term[k]}
        out["reward/total"] = _mean(self.total)
        return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / max(len(values), 1)


class RewardConfigError(ValueError):
    """A reward's own setting is wrong (a target language it cannot score), not the model text:
    `Rubric` lets it through, since scoring every completion 0 would hide the mistake."""


def _safe(fn: RewardFn, completion: str, example: Any, name: str) -> float:
    try:
        value = fn(completion, example)
    except RewardConfigError:
        raise
    except Exception as err:  # a reward must never take a run down on model text
        log.debug("reward %s raised %r; scoring 0", name, err)
        return 0.0
    return _number(name, value)


def _number(name: str, value: Any) -> float:
    """`value` as a float, or a TypeError naming the term: a reward that returns None (a missing
    `return`) is a bug in the reward, not bad model text, and scoring it 0 everywhere would hide it.
    Text is refused though float() reads it: a reward returning the answer it read ("42") scored 42."""
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"reward {name!r} returned {value!r}, not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"reward {name!r} returned {value!r}, not a number") from None


class Rubric:
    """Named reward functions with weights; `rubric(completions, examples)` scores a batch.

    >>> from r1lab.rewards import Rubric, RewardTerm, strict_format_reward
    >>> r = Rubric([RewardTerm("format", strict_format_reward, 1.0)])
    >>> r(["<think>2+2=4</think> <answer>4</answer>", "4"], [None, None]).total
    [1.0, 0.0]
    """

    def __init__(self, terms: Sequence[RewardTerm]) -> None:
        terms = list(terms)  # a generator would be used up by the checks below, leaving no term to score
        if not terms:
            raise ValueError("a rubric needs at least one reward term")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"reward term names must be unique, got {names}")
        if "total" in names:  # its mean would be reported under reward/total, then overwritten
            raise ValueError(f"a reward term may not be named 'total' (reward/total is the weighted sum), got {names}")
        for term in terms:  # else a NaN weight reads as a NaN reward of the first completion, a string as a TypeError
            if not isinstance(term.weight, numbers.Real) or not math.isfinite(term.weight):
                raise ValueError(f"reward term {term.name!r}: weight must be a finite number, got {term.weight!r}")
        self.terms = terms

    def __call__(self, completions: Sequence[str], examples: Sequence[Any]) -> RubricResult:
        if len(completions) != len(examples):
            raise ValueError(f"completions and examples must have the same length, got {len(completions)} "
                             f"completions and {len(examples)} examples")
        per_term: dict[str, list[float]] = {}
        for term in self.terms:
            per_term[term.name] = _finite(term.name, _term_scores(term, completions, examples), completions)
        total = [sum(t.weight * per_term[t.name][i] for t in self.terms) for i in range(len(completions))]
        return RubricResult(total=_finite("total (weighted sum)", total, completions), per_term=per_term)


def _term_scores(term: RewardTerm, completions: Sequence[str], examples: Sequence[Any]) -> list[float]:
    """One unweighted score per completion, by the term's batch form where it has one."""
    batch = getattr(term.fn, "batch", None)
    if batch is None:
        return [_safe(term.fn, c, e, term.name) for c, e in zip(completions, examples)]
    try:
        values = list(batch(list(completions), list(examples)))
    except RewardConfigError:
        raise
    except Exception as err:  # as for one text: the batch's bad text scores 0, the others their score
        log.debug("reward %s: .batch raised %r; scoring each completion alone", term.name, err)
        return [_safe(term.fn, c, e, term.name) for c, e in zip(completions, examples)]
    if len(values) != len(completions):  # one score per completion, or the sum below fails or keeps extras
        raise ValueError(f"reward {term.name!r}: .batch returned {len(values)} scores for {len(completions)} completions")
    return [_number(term.name, v) for v in values]


def _finite(name: str, scores: list[float], completions: Sequence[str]) -> list[float]:
    """`scores`, or a ValueError naming the term, the value and the completion: a NaN or inf reward
    (a user's reward function gone wrong; model text scores 0, never NaN) would make its group's
    advantages, then the loss and every weight, NaN with no error."""
    bad = next((i for i, v in enumerate(scores) if not math.isfinite(v)), None)
    if bad is not None:
        raise ValueError(f"reward {name!r} is {scores[bad]} for completion {bad} "
                         f"({completions[bad][:80]!r}); rewards must be finite numbers")
    return scores


class ScenarioRubric:
    """One rubric per kind of prompt (R1 §2.3.4, all-scenario RL: rule rewards for reasoning
    prompts, reward models for general ones). `scenario(example)` names the rubric that scores an
    example; a term of another scenario's rubric is None for it and left out of that term's mean.

    >>> from r1lab.rewards import Rubric, RewardTerm, strict_format_reward
    >>> fmt = Rubric([RewardTerm("format", strict_format_reward)])
    >>> short = Rubric([RewardTerm("short", lambda c, e: float(len(c) < 5))])
    >>> r = ScenarioRubric({"math": fmt, "chat": short}, lambda e: e)
    >>> result = r(["<think>a</think> <answer>1</answer>", "hi"], ["math", "chat"])
    >>> result.total, result.per_term["short"]
    ([1.0, 1.0], [None, 1.0])
    """

    def __init__(self, rubrics: dict[str, Rubric], scenario: Callable[[Any], str]) -> None:
        if not rubrics:
            raise ValueError("a scenario rubric needs at least one rubric")
        self.rubrics, self.scenario = dict(rubrics), scenario
        self.terms = [term for rubric in self.rubrics.values() for term in rubric.terms]
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):  # per_term is keyed by name: two scenarios' terms would mix
            raise ValueError(f"reward term names must be unique across scenarios, got {names}")

    def __call__(self, completions: Sequence[str], examples: Sequence[Any]) -> RubricResult:
        if len(completions) != len(examples):
            raise ValueError(f"completions and examples must have the same length, got {len(completions)} "
                             f"completions and {len(examples)} examples")
        keys = [self.scenario(e) for e in examples]
        unknown = sorted(set(keys) - set(self.rubrics))
        if unknown:
            raise ValueError(f"no rubric for scenario(s) {unknown}; have {sorted(self.rubrics)}")
        total = [0.0] * len(completions)
        per_term: dict[str, list[float | None]] = {t.name: [None] * len(completions) for t in self.terms}
        for key, rubric in self.rubrics.items():
            rows = [i for i, k in enumerate(keys) if k == key]
            if not rows:
                continue
            part = rubric([completions[i] for i in rows], [examples[i] for i in rows])
            for j, i in enumerate(rows):
                total[i] = part.total[j]
                for name, values in part.per_term.items():
                    per_term[name][i] = values[j]
        return RubricResult(total=total, per_term=per_term)
