"""The pretraining corpus: the skill is there, the habit is not.

R1-Zero starts from a base model and lets RL discover that thinking first pays (R1 §2.2). For
that to happen honestly at tiny scale the base model must (1) reason step by step reliably when
it does reason, (2) often answer bare instead, and bare answers to multi-operand problems are
hard, (3) know the ``<think>``/``<answer>`` format yet rarely use it under the R1-Zero template,
and (4) reason in English, in Velari, or switching mid-solution, so that RL can surface language
mixing and a language reward can remove it (R1 §2.3.2).

So the corpus holds problems (from the pretraining split only) shown in three contexts, each with
its own mix of answering modes: textbook pages (mostly worked), Q&A lists (mostly bare), and
conversations under the R1-Zero template (mostly bare, some worked, a few percent in the tagged
format). Drill sheets of single steps make each step a fact seen very often. Facts about the
fictional world, dialogues and a Velari glossary give the non-reasoning stages material.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from r1lab.fields import check_int_arg
from r1lab.world.arithmetic import ArithmeticConfig, random_step
from r1lab.world.chat import CHAT_KINDS, CHAT_WEIGHTS, chat_example, countries, fact_statements, random_fact
from r1lab.world.countdown import CountdownConfig
from r1lab.world.language import (ENGLISH, GLOSSARY, VELARI, language_consistency, register_words, word_language,
                                  words)
from r1lab.world.problems import ARITHMETIC, COUNTDOWN, PRETRAIN, WorldProblem
from r1lab.world.render import (
    PROFILES,
    bare_response,
    final_answer_text,
    format_r1_zero,
    line_languages,
    tagged_response,
    worked_lines,
)
from r1lab.world.splits import sample_problem

TEMPLATE, TEXTBOOK, QA = "template", "textbook", "qa"
CONTEXTS: tuple[str, ...] = (TEMPLATE, TEXTBOOK, QA)
DOC_KINDS: tuple[str, ...] = (ARITHMETIC, COUNTDOWN, "drill", "facts", "dialogue", "glossary", "tagged_chat")


@dataclass(frozen=True, kw_only=True)
class CorpusConfig:
    """Knobs of the corpus. Defaults are tuned for a ~2-5M-parameter model and ~6-12M tokens.

    Calibration (a 2M-parameter RoPE transformer, 6M tokens, T=1.0, 16 samples on held-out
    problems under the R1-Zero template): pass@1 22%, pass@16 97%, reasoning samples right 57%
    of the time against 2% for bare ones, 4% in the tag format, English consistency of the
    reasoning 0.69. ``worked_share[0]`` moves pass@1; ``tagged_share`` the starting format rate.
    """

    doc_weights: tuple[float, ...] = (0.58, 0.08, 0.16, 0.07, 0.06, 0.03, 0.02)  # in DOC_KINDS order
    context_weights: tuple[float, ...] = (0.4, 0.35, 0.25)  # in CONTEXTS order
    worked_share: tuple[float, ...] = (0.35, 0.85, 0.15)  # chance of a worked solution, per context
    tagged_share: float = 0.04  # template conversations answered in the R1-Zero tag format
    wrong_bare_share: float = 0.10  # bare answers that are wrong (noisy web data)
    self_correct_share: float = 0.05  # worked arithmetic with a wrong step then "Wait, ..."
    profile_weights: tuple[float, ...] = (0.5, 0.25, 0.25)  # English, Velari, mixed (PROFILES order)
    arithmetic_operands: dict[int, float] = field(default_factory=lambda: {2: 0.15, 3: 0.35, 4: 0.35, 5: 0.15})
    countdown_numbers: dict[int, float] = field(default_factory=lambda: {3: 0.7, 4: 0.3})
    drill_steps: tuple[int, int] = (6, 14)
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    countdown: CountdownConfig = CountdownConfig()

    def __post_init__(self) -> None:
        lengths = {"doc_weights": (self.doc_weights, DOC_KINDS), "context_weights": (self.context_weights, CONTEXTS),
                   "worked_share": (self.worked_share, CONTEXTS), "profile_weights": (self.profile_weights, PROFILES)}
        for name, (values, names) in lengths.items():
            if len(values) != len(names) or min(values) < 0:
                raise ValueError(f"CorpusConfig.{name} needs {len(names)} non-negative values ({', '.join(names)})")
        # else random.choices fails only once a document draws from them, naming no knob
        # ("Total of weights must be greater than zero", or an IndexError for an empty dict)
        draws = {"doc_weights": self.doc_weights, "context_weights": self.context_weights,
                 "profile_weights": self.profile_weights, "arithmetic_operands": tuple(self.arithmetic_operands.values()),
                 "countdown_numbers": tuple(self.countdown_numbers.values())}
        for name, values in draws.items():
            if not values or min(values) < 0 or sum(values) <= 0:
                raise ValueError(f"CorpusConfig.{name} needs non-negative weights, not all zero; got {values}")
        if not 1 <= self.drill_steps[0] <= self.drill_steps[1]:  # else randint's "empty range" at the first drill
            raise ValueError(f"CorpusConfig.drill_steps needs 1 <= low <= high; got {self.drill_steps}")


@dataclass(frozen=True, kw_only=True)
class Document:
    """A corpus document and how it was made (for statistics and tests)."""

    text: str
    kind: str  # one of DOC_KINDS
    context: str | None = None  # problems: one of CONTEXTS
    mode: str | None = None  # problems: bare | wrong | worked | corrected
    profile: str | None = None  # problems: en | vl | mix
    tagged: bool = False  # uses <think>/<answer> in its answer
    problem: WorldProblem | None = None
    response: str | None = None  # problems: the answer text after the question's frame


def _pick(rng: random.Random, weights: dict[int, float]) -> int:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def problem_document(rng: random.Random, config: CorpusConfig, kind: str) -> Document:
    """A problem from the pretraining split shown in one context and answered in one mode."""
    difficulty = _pick(rng, config.arithmetic_operands if kind == ARITHMETIC else config.countdown_numbers)
    problem = sample_problem(rng, PRETRAIN, kind, difficulty, config.arithmetic, config.countdown)
    context = rng.choices(CONTEXTS, weights=config.context_weights)[0]
    tagged = context == TEMPLATE and rng.random() < config.tagged_share
    profile = rng.choices(PROFILES, weights=config.profile_weights)[0]
    if rng.random() < config.worked_share[CONTEXTS.index(context)]:
        corrected = kind == ARITHMETIC and rng.random() < config.self_correct_share
        mode = "corrected" if corrected else "worked"
        lines = worked_lines(rng, problem, profile, corrected, config.countdown)
    else:
        mode = "wrong" if rng.random() < config.wrong_bare_share else "bare"
        language = line_languages(rng, profile, 1)[0]
        lines = [bare_response(rng, problem, language, mode == "wrong", config.countdown)]
    response = _answer(problem, lines, mode, tagged)
    return Document(
        text=_frame(problem, context, response),
        kind=kind, context=context, mode=mode, profile=profile, tagged=tagged, problem=problem, response=response,
    )


def _answer(problem: WorldProblem, lines: list[str], mode: str, tagged: bool) -> str:
    """The response text; tagged: reasoning in ``<think>`` (the closing sentence moves to ``<answer>``)."""
    if not tagged:
        return " ".join(lines)
    if mode in ("worked", "corrected"):
        return tagged_response(" ".join(lines[:-1]), final_answer_text(problem))
    stated = lines[0].rstrip(".").split()[-1]  # the (possibly wrong) bare answer
    return tagged_response(lines[0], stated)


def _frame(problem: WorldProblem, context: str, response: str) -> str:
    if context == TEMPLATE:
        return f"{format_r1_zero(problem.question)} {response}"
    if context == TEXTBOOK:
        return f"Problem: {problem.question}.\nSolution: {response}"
    return f"Q: {problem.question}.\nA: {response}"


def drill_document(rng: random.Random, config: CorpusConfig) -> Document:
    """A practice sheet of single steps: the facts every worked solution is built from."""
    steps = [random_step(rng, config.arithmetic) for _ in range(rng.randint(*config.drill_steps))]
    return Document(text=" ".join(f"{step.text()}." for step in steps), kind="drill")


def world_document(rng: random.Random, kind: str) -> Document:
    """Non-reasoning documents: country facts, dialogues, glossary, tag-format fact answers."""
    if kind == "facts":
        statements = fact_statements(rng.choice(countries()))
        text = " ".join(rng.sample(statements, rng.randint(2, len(statements))))
    elif kind == "dialogue":
        example = chat_example(rng, rng.choices(CHAT_KINDS, weights=CHAT_WEIGHTS)[0])
        text = f"User: {example.prompt}\nAssistant: {example.response}"
    elif kind == "glossary":
        pairs = rng.sample(GLOSSARY, rng.randint(3, 6))
        text = " ".join(f"Velari {velari} means {english}." for english, velari in pairs)
    elif kind == "tagged_chat":
        question, statement, short = random_fact(rng)
        text = f"User: {question}\nAssistant: {tagged_response(statement, short)}"
    else:
        raise ValueError(f"unknown document kind {kind!r}")
    return Document(text=text, kind=kind, tagged=kind == "tagged_chat")


def iter_documents(seed: int, config: CorpusConfig = CorpusConfig()) -> Iterator[Document]:
    """An endless, deterministic stream of documents; the first n are ``pretraining_documents(seed, n)``."""
    check_int_arg("iter_documents", "seed", seed)  # here, not in the generator: there it ran only at the first document
    return _documents(random.Random(f"corpus:{seed}"), config)


def _documents(rng: random.Random, config: CorpusConfig) -> Iterator[Document]:
    while True:
        kind = rng.choices(DOC_KINDS, weights=config.doc_weights)[0]
        if kind in (ARITHMETIC, COUNTDOWN):
            yield problem_document(rng, config, kind)
        elif kind == "drill":
            yield drill_document(rng, config)
        else:
            yield world_document(rng, kind)


def pretraining_documents(seed: int, n_docs: int, config: CorpusConfig = CorpusConfig()) -> list[Document]:
    """``n_docs`` documents with their provenance."""
    stream = iter_documents(seed, config)
    return [next(stream) for _ in range(n_docs)]


def pretraining_corpus(seed: int, n_docs: int, config: CorpusConfig = CorpusConfig()) -> list[str]:
    """``n_docs`` pretraining texts (no BOS/EOS: the trainer adds them when packing)."""
    return [doc.text for doc in pretraining_documents(seed, n_docs, config)]


register_words(ENGLISH, "Problem Solution Q A User Assistant Velari means")


def corpus_statistics(docs: list[Document]) -> dict[str, float]:
    """Shares that matter for the base model's targets (see the module docstring); all 0.0 for no documents."""
    n_docs = max(1, len(docs))  # a share of nothing is 0, as for the problem shares below
    problems = [d for d in docs if d.problem is not None]
    worked = [d for d in problems if d.mode in ("worked", "corrected")]
    template = [d for d in problems if d.context == TEMPLATE]
    stats = {f"docs/{kind}": sum(d.kind == kind for d in docs) / n_docs for kind in DOC_KINDS}
    for mode in ("bare", "wrong", "worked", "corrected"):
        stats[f"problems/{mode}"] = sum(d.mode == mode for d in problems) / max(1, len(problems))
    for profile in PROFILES:
        stats[f"worked/{profile}"] = sum(d.profile == profile for d in worked) / max(1, len(worked))
    stats["template/worked"] = sum(d.mode in ("worked", "corrected") for d in template) / max(1, len(template))
    stats["template/tagged"] = sum(d.tagged for d in template) / max(1, len(template))
    stats["docs/tagged"] = sum(d.tagged for d in docs) / n_docs
    # a Velari word, not a consistency > 0: text without words (a drill sheet) has consistency 1
    stats["docs/with_velari"] = sum(any(word_language(w) == VELARI for w in words(d.text)) for d in docs) / n_docs
    stats["worked/english_consistency"] = sum(language_consistency(d.response or "") for d in worked) / max(1, len(worked))
    stats["chars/mean"] = sum(len(d.text) for d in docs) / n_docs
    return stats
