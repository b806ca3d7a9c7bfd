"""The world's two languages: English and Velari, a small constructed language.

DeepSeek-R1-Zero's chains of thought mixed languages (R1 §2.3, "language mixing"), and R1 fixed
it with a language-consistency reward: the share of chain-of-thought words written in the
target language (R1 §2.3.2). To reproduce both halves in miniature the world writes worked
solutions in English, in Velari, or switching from one to the other mid-solution. Numbers and
operators are neutral: a step such as ``37+48=85`` reads the same in both languages, so the
arithmetic is exactly as reliable in either and RL has no accuracy reason to prefer one.

Velari is a closed vocabulary of consonant-vowel words, disjoint from every English word the
world writes (a test checks it), so a word's language is decided by look-up, not by guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ENGLISH = "en"
VELARI = "vl"
LANGUAGES: tuple[str, ...] = (ENGLISH, VELARI)


@dataclass(frozen=True, kw_only=True)
class Phrasebook:
    """Everything a language needs to write a solution; ``{n}``, ``{t}``, ``{step}`` are slots."""

    intros: tuple[str, ...]  # opening of a worked solution ("Let me compute step by step.")
    first: str  # connective before the first step
    thens: tuple[str, ...]  # connectives before later steps
    so: str  # between a step and what is left to compute ("37+48=85, so 85*2-19")
    final: str  # closing sentence of a worked solution, slot {n}
    bares: tuple[str, ...]  # a bare answer, slot {n}
    wait: str  # self-correction after a wrong step, slot {step}
    check: str  # opening of a verification pass in long CoT
    verified: str  # closing of a verification pass
    trial: str  # countdown: announce an attempt
    miss: str  # countdown: the attempt missed, slots {n} {t}
    hit: str  # countdown: the attempt reached the target, slot {t}
    summary: str  # cold-start summary after </think>, slots {q} {n}


PHRASES: dict[str, Phrasebook] = {
    ENGLISH: Phrasebook(
        intros=("Let me compute step by step.", "Let me work it out step by step.", "Step by step."),
        first="First,",
        thens=("Then", "Next,"),
        so="so",
        final="So the answer is {n}.",
        bares=("The answer is {n}.", "It is {n}."),
        wait="Wait, that is not right. {step}",
        check="Let me check each step again.",
        verified="All steps are right.",
        trial="Try",
        miss="We get {n}, not {t}.",
        hit="We get {t}.",
        summary="The value of {q} is {n}.",
    ),
    VELARI: Phrasebook(
        intros=("Mi keta sulo pe sulo.", "Mi sano tu sulo pe sulo.", "Sulo pe sulo."),
        first="Tuka,",
        thens=("Pori", "Sani,"),
        so="ema",
        final="Ema risu ve {n}.",
        bares=("Risu ve {n}.", "Tu ve {n}."),
        wait="Voi, tu nai rano. {step}",
        check="Mi keta sulo lemo.",
        verified="Sulo kemi rano.",
        trial="Kosa",
        miss="Mi sato {n}, nai {t}.",
        hit="Mi sato {t}.",
        summary="Keta {q} ve {n}.",
    ),
}

# Short bilingual glossary used by dictionary documents and translation chat tasks.
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("step", "sulo"), ("answer", "risu"), ("then", "pori"), ("next", "sani"), ("first", "tuka"),
    ("compute", "keta"), ("wait", "voi"), ("not", "nai"), ("right", "rano"), ("try", "kosa"),
    ("get", "sato"), ("all", "kemi"), ("again", "lemo"), ("so", "ema"), ("is", "ve"),
    ("one", "una"), ("two", "dila"), ("three", "tira"), ("four", "kova"), ("five", "pela"),
    ("water", "nami"), ("stone", "koru"), ("bird", "tiva"), ("river", "salu"), ("city", "moka"),
    ("hello", "lumi"), ("thanks", "sedu"), ("yes", "sia"), ("no", "nodo"), ("good", "belo"),
)

_WORD = re.compile(r"[^\W\d_]+(?:'[a-z]+)?")  # letters of any script: a Chinese or accented word is a word too
_TAG = re.compile(r"</?(?:think|answer)>|<\|[a-z]+\|>")
_SLOT = re.compile(r"\{[a-z]+\}")

_english_words: set[str] = set()
_velari_words: set[str] = set()
_neutral_words: set[str] = set()


def words(text: str) -> list[str]:
    """Alphabetic words of ``text`` (digits, operators, punctuation and tags are not words)."""
    text = _TAG.sub(" ", text)
    if not text.isascii():  # re's \d is only decimal digits: "²", "½", "Ⅻ" would match as letters
        text = "".join(" " if ch.isnumeric() else ch for ch in text)
    return _WORD.findall(text)


def register_words(language: str | None, text: str) -> None:
    """Add the words of ``text`` to a language's lexicon (``None``: neutral names); ``{slots}`` are skipped.

    Every module that writes text in a language registers its templates here at import time,
    so the classifier knows the world's whole vocabulary and nothing else.
    """
    target = {ENGLISH: _english_words, VELARI: _velari_words, None: _neutral_words}[language]
    target.update(w.lower() for w in words(_SLOT.sub(" ", text)))


def lexicon(language: str | None) -> frozenset[str]:
    """The registered words of a language (``None``: proper names, neutral)."""
    return frozenset({ENGLISH: _english_words, VELARI: _velari_words, None: _neutral_words}[language])


def word_language(word: str) -> str | None:
    """``"en"``, ``"vl"``, ``None`` for neutral tokens (numbers, symbols, names), ``"?"`` for unknown words."""
    lowered = word.lower()
    if words(word) != [word] or lowered in _neutral_words:  # as `words` reads it: "²" is a number
        return None
    if lowered in _english_words:
        return ENGLISH
    if lowered in _velari_words:
        return VELARI
    return "?"


def language_consistency(text: str, target: str = ENGLISH) -> float:
    """Share of the words of ``text`` that are in ``target`` (R1 §2.3.2's language reward).

    Neutral tokens are ignored; unknown words count against the target, so gibberish cannot
    raise the score. A text with no words at all scores 1.0 (nothing is in the wrong language).
    """
    if target not in LANGUAGES:
        raise ValueError(f"unknown language {target!r}; the world has {LANGUAGES}")
    labels = [word_language(w) for w in words(text)]
    counted = [label for label in labels if label is not None]
    if not counted:
        return 1.0
    return sum(label == target for label in counted) / len(counted)


def _register_phrasebooks() -> None:
    for language, book in PHRASES.items():
        for value in vars(book).values():
            for text in value if isinstance(value, tuple) else (value,):
                register_words(language, text)
    for english, velari in GLOSSARY:
        register_words(ENGLISH, english)
        register_words(VELARI, velari)


_register_phrasebooks()
