"""Non-reasoning material: a small fictional world of facts, and short chat tasks.

R1's SFT set mixes ~600k reasoning samples with ~200k non-reasoning ones (writing, factual QA,
self-cognition, translation; R1 §2.3.3). The miniature equivalents: greetings, self-cognition,
copying a string, translating between English and Velari, and facts about invented countries.
The facts are stated in the pretraining corpus, so a later SFT stage only has to teach the model
to answer questions about what it already read, as in the paper.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from r1lab.fields import check_int_arg
from r1lab.world.language import ENGLISH, GLOSSARY, VELARI, register_words

WORLD_SEED = 20250122  # the facts of the world are fixed: every corpus and task agrees on them
_COUNTRY_PARTS = (("Dor", "Kel", "Mar", "Tor", "Zan", "Fen", "Gal", "Hol", "Ost", "Ryn", "Bel", "Quor"),
                  ("vin", "dar", "moth", "eth", "gard", "wyn", "rik", "holm", "ster", "brand"))
_CITY_PARTS = (("Ash", "Brim", "Cold", "Elm", "Frost", "Glen", "Iron", "Lark", "Oak", "Stone", "Thorn", "Wil"),
               ("ford", "haven", "mere", "wick", "by", "crest", "field", "gate", "port", "reach"))
COLOURS = ("red", "blue", "green", "white", "black", "yellow")
ANIMALS = ("fox", "heron", "bear", "otter", "hawk", "stag", "wolf", "owl")


@dataclass(frozen=True, kw_only=True)
class Country:
    """One country of the fictional world and its facts."""

    name: str
    capital: str
    provinces: int
    language: str  # "English" or "Velari"
    colour: str  # colour of its flag
    animal: str  # its national animal


@dataclass(frozen=True, kw_only=True)
class ChatExample:
    """A non-reasoning SFT pair (R1 §2.3.3): the user's message and the assistant's reply."""

    prompt: str
    response: str
    kind: str  # greeting | identity | copy | translate | fact


@cache
def countries() -> tuple[Country, ...]:
    """The world's 24 countries, the same in every run."""
    rng = random.Random(WORLD_SEED)
    names = rng.sample([a + b for a in _COUNTRY_PARTS[0] for b in _COUNTRY_PARTS[1]], 24)
    capitals = rng.sample([a + b for a in _CITY_PARTS[0] for b in _CITY_PARTS[1]], 24)
    return tuple(
        Country(
            name=name,
            capital=capital,
            provinces=rng.randint(2, 9),
            language=rng.choice(("English", "Velari")),
            colour=rng.choice(COLOURS),
            animal=rng.choice(ANIMALS),
        )
        for name, capital in zip(names, capitals)
    )


FACT_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    # (question, statement, field); the statement doubles as the SFT answer.
    ("What is the capital of {name}?", "The capital of {name} is {capital}.", "capital"),
    ("How many provinces does {name} have?", "{name} has {provinces} provinces.", "provinces"),
    ("What language do people in {name} speak?", "People in {name} speak {language}.", "language"),
    ("What colour is the flag of {name}?", "The flag of {name} is {colour}.", "colour"),
    ("What is the national animal of {name}?", "The national animal of {name} is the {animal}.", "animal"),
)
GREETINGS: tuple[tuple[str, str], ...] = (
    ("Hello", "Hello! How can I help you today?"),
    ("Hi", "Hi! What would you like to know?"),
    ("Good morning", "Good morning! How can I help?"),
    ("Thanks", "You are welcome."),
    ("Thank you for the help", "Glad to help. Ask me anything else."),
)
IDENTITY: tuple[tuple[str, str], ...] = (
    ("Who are you?", "I am a small assistant trained with r1lab. I can do arithmetic and answer simple questions."),
    ("What can you do?", "I can compute, reach a target from numbers, copy text, translate Velari and answer simple questions."),
)
COPY_PROMPTS = ("Repeat this: {s}", "Copy exactly: {s}", "Say back: {s}")
TRANSLATE_PROMPTS = (("Translate to English: {w}", VELARI), ("Translate to Velari: {w}", ENGLISH))


def fact_statements(country: Country) -> list[str]:
    """Every fact about a country as a sentence."""
    return [statement.format(**vars(country)) for _, statement, _ in FACT_TEMPLATES]


def random_fact(rng: random.Random) -> tuple[str, str, str]:
    """A random fact as (question, statement, short answer)."""
    country = rng.choice(countries())
    question, statement, field = rng.choice(FACT_TEMPLATES)
    return question.format(**vars(country)), statement.format(**vars(country)), str(getattr(country, field))


def random_string(rng: random.Random) -> str:
    """A short string to copy: words of both languages and a number."""
    vocabulary = sorted({word for pair in GLOSSARY for word in pair} | set(COLOURS) | set(ANIMALS))
    parts = rng.sample(vocabulary, rng.randint(2, 4)) + [str(rng.randint(0, 999))]
    rng.shuffle(parts)
    return " ".join(parts)


def chat_example(rng: random.Random, kind: str) -> ChatExample:
    """One random example of a non-reasoning task kind."""
    if kind == "greeting":
        prompt, response = rng.choice(GREETINGS)
    elif kind == "identity":
        prompt, response = rng.choice(IDENTITY)
    elif kind == "copy":
        text = random_string(rng)
        prompt, response = rng.choice(COPY_PROMPTS).format(s=text), text
    elif kind == "translate":
        template, source = rng.choice(TRANSLATE_PROMPTS)
        english, velari = rng.choice(GLOSSARY)
        prompt, response = (template.format(w=velari), english) if source == VELARI else (template.format(w=english), velari)
    elif kind == "fact":
        prompt, response, _ = random_fact(rng)
    else:
        raise ValueError(f"unknown chat kind {kind!r}; expected one of {CHAT_KINDS}")
    return ChatExample(prompt=prompt, response=response, kind=kind)


CHAT_KINDS: tuple[str, ...] = ("greeting", "identity", "copy", "translate", "fact")
CHAT_WEIGHTS: tuple[float, ...] = (0.15, 0.05, 0.25, 0.2, 0.35)


def chat_tasks(n: int, seed: int = 0) -> list[ChatExample]:
    """``n`` non-reasoning SFT pairs (R1 §2.3.3's non-reasoning data), deterministic in ``seed``."""
    check_int_arg("chat_tasks", "seed", seed)
    check_int_arg("chat_tasks", "n", n)  # range() took True as 1, in silence
    rng = random.Random(f"chat:{seed}")
    return [chat_example(rng, rng.choices(CHAT_KINDS, weights=CHAT_WEIGHTS)[0]) for _ in range(n)]


# The short reasoning rejection sampling gives the chat tasks that get one (R1 §2.3.3: a CoT for
# some non-reasoning prompts): the world's text, so its words are registered here with the rest.
TRANSLATE_THOUGHT = "This asks for a translation from {source} to {target}.\nIn {target}, {word} is {answer}."
FACT_THOUGHT = "This asks for a fact about the world.\nI remember: {answer}"


def _register_vocabulary() -> None:
    templates = [t for q, s, _ in FACT_TEMPLATES for t in (q, s)] + [t for pair in GREETINGS + IDENTITY for t in pair]
    templates += [TRANSLATE_THOUGHT, FACT_THOUGHT]
    for text in templates + list(COPY_PROMPTS) + [t for t, _ in TRANSLATE_PROMPTS] + list(COLOURS + ANIMALS):
        register_words(ENGLISH, text)
    for country in countries():
        register_words(None, f"{country.name} {country.capital} English Velari r1lab")


_register_vocabulary()
