"""Writing problems and their solutions as text: bare, worked, tagged, and long chain of thought.

One function per way of answering, shared by the pretraining corpus (R1-Zero's base model
must already have both the skill and, rarely, the format: R1 §2.2) and by the cold-start and
SFT data of later stages (readable reasoning then a summary: R1 §2.3.1). Language is chosen per
line, so a solution can be English, Velari, or switch from one to the other mid-way.
"""

from __future__ import annotations

import random

from r1lab.fields import check_int_arg
from r1lab.world.arithmetic import Chain
from r1lab.world.countdown import CountdownConfig, missed_attempts
from r1lab.world.language import ENGLISH, LANGUAGES, PHRASES, VELARI, register_words
from r1lab.world.problems import ARITHMETIC, WorldProblem

# The R1-Zero training template, R1 Table 1, verbatim (see /work/shared/data/CONVENTIONS.md).
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. User: {prompt}. Assistant:"
)
MIXED = "mix"  # a language profile: starts in one language and switches to the other
PROFILES: tuple[str, ...] = (ENGLISH, VELARI, MIXED)


def format_r1_zero(question: str) -> str:
    """The R1-Zero prompt for a question; the completion starts right after ``Assistant:``."""
    return R1_ZERO_TEMPLATE.format(prompt=question)


def line_languages(rng: random.Random, profile: str, n_lines: int) -> list[str]:
    """The language of each line: one language throughout, or a switch at a random line."""
    if profile in (ENGLISH, VELARI):
        return [profile] * n_lines
    if profile != MIXED:
        raise ValueError(f"unknown language profile {profile!r}; expected one of {PROFILES}")
    first, second = (ENGLISH, VELARI) if rng.random() < 0.7 else (VELARI, ENGLISH)
    switch = rng.randint(1, max(1, n_lines - 2))  # the closing line alone never carries the switch
    return [first if i < switch else second for i in range(n_lines)]


def final_answer_text(problem: WorldProblem) -> str:
    """What goes in ``<answer>``: the number, or for countdown the reference expression."""
    return str(problem.answer) if problem.kind == ARITHMETIC else problem.chain.expression()


def bare_response(
    rng: random.Random, problem: WorldProblem, language: str, wrong: bool = False, countdown: CountdownConfig = CountdownConfig()
) -> str:
    """A one-sentence answer with no work shown; ``wrong`` writes a plausible wrong answer."""
    answer = final_answer_text(problem)
    if wrong:
        answer = _wrong_answer(rng, problem, countdown)
    return rng.choice(PHRASES[language].bares).format(n=answer)


def _wrong_answer(rng: random.Random, problem: WorldProblem, countdown: CountdownConfig) -> str:
    if problem.kind == ARITHMETIC:
        return str(max(0, problem.answer + rng.choice((-10, -2, -1, 1, 2, 10))))
    misses = missed_attempts(rng, problem, 1, countdown)
    return misses[0].expression() if misses else "0"


def _step_lines(rng: random.Random, chain: Chain, languages: list[str], wrong_at: int | None) -> list[str]:
    """``First, 37+48=85, so 85*2-19.`` ... ``Then 170-19=151.``; a wrong step is then corrected.

    Each step restates what is left to compute. That makes every step local, so it is easy for
    a tiny model to learn: the next operation is the first one of the line just written, and
    the rest is a verbatim copy, rather than a pointer into the question it must keep track of.
    """
    lines = []
    steps = chain.steps()
    for i, (step, language) in enumerate(zip(steps, languages)):
        book = PHRASES[language]
        connective = book.first if i == 0 else rng.choice(book.thens)
        if i == wrong_at:
            wrong = max(0, step.result + rng.choice((-10, -2, -1, 1, 2, 10)))
            lines.append(f"{connective} {_step_with_rest(chain, i, book.so, wrong)}")
            lines.append(book.wait.format(step=_step_with_rest(chain, i, book.so)))
        else:
            lines.append(f"{connective} {_step_with_rest(chain, i, book.so)}")
    return lines


def _step_with_rest(chain: Chain, i: int, so: str, result: int | None = None) -> str:
    """Step ``i`` and the expression left after it: ``85*2=170, so 170-19.`` (last step: no rest)."""
    step = chain.steps()[i]
    value = step.result if result is None else result
    if i + 1 == len(chain.ops):
        return f"{step.text(value)}."
    rest = Chain(operands=(value, *chain.operands[i + 2:]), ops=chain.ops[i + 1:])
    return f"{step.text(value)}, {so} {rest.expression()}."


def arithmetic_lines(rng: random.Random, problem: WorldProblem, profile: str, self_correct: bool = False) -> list[str]:
    """A worked solution: intro, one line per step, closing sentence with the answer."""
    steps = problem.chain.steps()
    languages = line_languages(rng, profile, len(steps) + 2)
    wrong_at = rng.randrange(len(steps)) if self_correct else None
    intro = rng.choice(PHRASES[languages[0]].intros)
    final = PHRASES[languages[-1]].final.format(n=problem.answer)
    return [intro, *_step_lines(rng, problem.chain, languages[1:-1], wrong_at), final]


def countdown_lines(
    rng: random.Random, problem: WorldProblem, profile: str, misses: int, config: CountdownConfig = CountdownConfig()
) -> list[str]:
    """A search: ``Try 25+7=32, 32+3=35. We get 35, not 46.`` ... then the hit and the answer."""
    attempts = [*missed_attempts(rng, problem, misses, config), problem.chain]
    languages = line_languages(rng, profile, len(attempts) + 2)
    lines = [rng.choice(PHRASES[languages[0]].intros)]
    for attempt, language in zip(attempts, languages[1:-1]):
        book = PHRASES[language]
        work = ", ".join(step.text() for step in attempt.steps())
        value = attempt.value()
        verdict = book.hit.format(t=value) if value == problem.answer else book.miss.format(n=value, t=problem.answer)
        lines.append(f"{book.trial} {work}. {verdict}")
    lines.append(PHRASES[languages[-1]].final.format(n=problem.chain.expression()))
    return lines


def worked_lines(
    rng: random.Random,
    problem: WorldProblem,
    profile: str,
    self_correct: bool = False,
    countdown: CountdownConfig = CountdownConfig(),
) -> list[str]:
    """A worked solution of either kind (countdown: 0-3 misses before the hit)."""
    if problem.kind == ARITHMETIC:
        return arithmetic_lines(rng, problem, profile, self_correct)
    return countdown_lines(rng, problem, profile, rng.choice((0, 1, 1, 2, 2, 3)), countdown)


def tagged_response(reasoning: str, answer: str) -> str:
    """The R1-Zero output format: ``<think> ... </think> <answer> ... </answer>``."""
    return f"<think> {reasoning} </think> <answer> {answer} </answer>"


def long_cot(problem: WorldProblem, language: str = ENGLISH, seed: int = 0) -> str:
    """A readable long chain of thought for cold start (R1 §2.3.1): reasoning, a check, a summary.

    ``<think>`` one step per line, a second pass re-checking every step, ``</think>`` and a
    one-line summary whose last number (arithmetic) or expression (countdown) is the answer.
    ValueError for a language the world lacks (the ``mix`` profile too: a cold-start CoT is in one).
    """
    if language not in LANGUAGES:  # else a bare KeyError from the phrasebook
        raise ValueError(f"long_cot: unknown language {language!r}; the world has {LANGUAGES}")
    check_int_arg("long_cot", "seed", seed)
    rng = random.Random(f"long-cot:{seed}:{problem.id}")
    book = PHRASES[language]
    lines = worked_lines(rng, problem, language)[:-1]
    recheck = " ".join(f"{step.text()}." for step in problem.chain.steps())
    lines += [book.check, recheck, book.verified]
    if problem.kind == ARITHMETIC:
        summary = book.summary.format(q=problem.chain.expression(), n=problem.answer)
    else:
        summary = book.final.format(n=problem.chain.expression())
    return "<think>\n" + "\n".join(lines) + "\n</think>\n" + summary


register_words(ENGLISH, R1_ZERO_TEMPLATE)
