"""Readability filters for chain-of-thought SFT data (R1 §2.3.1 cold start, §2.3.3 rejection sampling).

R1-Zero's reasoning was hard to read: it mixed languages and lacked formatting (R1 §2.3). The
cold-start data keeps only readable responses in the R1 output format, ``<think>reasoning</think>``
then a summary; the rejection-sampled SFT set "filtered out chains of thought with mixed languages,
long paragraphs, and code blocks". Each of those is one pure function here over a response string
(the assistant's turn), never raising on model text. Every filter reads the same text, the reply:
the turn up to its first made-up new turn or question (``User:``, ``\n\nQ:``; `reply_body`, where
the rewards and the world's judges stop reading too), and ``r1_format`` fails a response that goes
on past it, so no text that the filters did not read is kept:

- ``r1_format``:       ``<think>…</think>`` then a non-empty summary (``r1lab.rewards.r1_format_reward``);
- ``language``:        the share of words in the target language (reasoning and summary) reaches a
                       threshold; 1.0 means a single foreign word makes the response mixed;
- ``repetition``:      no line of the reasoning occurs twice (lines of only delimiters and punctuation,
                       such as the ``\\[`` and ``\\]`` around every display equation, do not count);
- ``paragraph_length``: no line of the reasoning is longer than ``max_paragraph_chars`` (the readable
                       format writes one step per line, so a long line is a wall of text);
- ``code_block``:      no Markdown code fence (````` or ``~~~``) in the reasoning.

`check_readability` runs them all; `Funnel` counts how many candidates reach and pass each filter
of a cascade, `DatasetStats` writes those counts next to a dataset, and `Deduper` drops repeated
(prompt, response) pairs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, astuple, dataclass, field, fields
from pathlib import Path
from typing import Any

from r1lab.rewards.format import r1_format_reward, reply_body, turn_body
from r1lab.rewards.language import SCRIPTS, chain_of_thought, script_language_reward
from r1lab.data import write_text_atomically
from r1lab.fields import is_int
from r1lab.tokenizer import find_control_token

WORLD, SCRIPT = "world", "script"  # language classifiers: the world's lexicon, or Unicode script (real text)
_TAGS = re.compile(r"</?think>|</?answer>")
_SPACE = re.compile(r"\s+")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\{[^{}]*\}")  # \begin{aligned}: a delimiter, like \[
# Markdown's two code fences; a line may also start after a lone \r (str.splitlines and CommonMark agree)
_FENCE = re.compile(r"```|(?:^|(?<=\r))[ \t]*~~~", re.MULTILINE)
# Markdown's line endings (CommonMark): str.splitlines also breaks at \v, \f, \x1c-\x1e, \x85 and
# U+2028/9, which display inside a line, so a wall of text joined by them would pass as short lines
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(kw_only=True)
class ReadabilityConfig:
    language: str = "en"  # target language: "en" / "vl" in the world; "en", "zh", ... for the script classifier
    min_language_share: float = 1.0  # share of words in the target language needed; 1.0 = no foreign word
    max_paragraph_chars: int = 100  # longest reasoning line allowed; the world's readable lines are < 60
    classifier: str = WORLD  # "world" (English/Velari lexicon) or "script" (real text)

    def __post_init__(self) -> None:
        check_readability_settings("ReadabilityConfig", self.language, self.min_language_share,
                                   self.max_paragraph_chars, self.classifier)


def check_readability_settings(owner: str, language: str, min_language_share: float, max_paragraph_chars: int,
                               classifier: str = WORLD) -> None:
    """ValueError naming ``<owner>.<field>`` and the value given for a setting no filter can use.
    The stages that build SFT data hold these settings as their own fields (and flags), so their
    errors name their config, not the `ReadabilityConfig` made from it."""
    if classifier not in (WORLD, SCRIPT):
        raise ValueError(f"{owner}.classifier must be {WORLD!r} or {SCRIPT!r}, got {classifier!r}")
    if classifier == WORLD and language not in ("en", "vl"):
        raise ValueError(f"{owner}.language must be one of the world's languages 'en' and 'vl', got {language!r}")
    if classifier == SCRIPT and language not in SCRIPTS:
        raise ValueError(f"{owner}.language must be one of the script classifier's languages {sorted(SCRIPTS)}, "
                         f"got {language!r}")
    if isinstance(min_language_share, bool) or not isinstance(min_language_share, (int, float)):  # "0.8": a TypeError
        raise ValueError(f"{owner}.min_language_share must be a number, got {min_language_share!r}")
    if not 0.0 <= min_language_share <= 1.0:  # NaN fails too
        raise ValueError(f"{owner}.min_language_share must be in [0, 1], got {min_language_share}")
    # an int, not just >= 1: NaN passed the comparison and then failed every line in silence (every
    # response dropped as a long paragraph), and "100" raised a TypeError naming no setting
    if not is_int(max_paragraph_chars):
        raise ValueError(f"{owner}.max_paragraph_chars must be an integer, got {max_paragraph_chars!r}")
    if max_paragraph_chars < 1:
        raise ValueError(f"{owner}.max_paragraph_chars must be >= 1, got {max_paragraph_chars}")


def reasoning_lines(response: Any) -> list[str]:
    """The non-empty lines of the chain of thought (ended by \\n, \\r\\n or \\r), stripped.

    >>> reasoning_lines("<think>\\nFirst, 2+3=5.\\n\\nThen 5*2=10.\\n</think>\\nIt is 10.")
    ['First, 2+3=5.', 'Then 5*2=10.']
    """
    return [line.strip() for line in _LINE_END.split(chain_of_thought(turn_body(response))) if line.strip()]


def is_r1_format(response: Any) -> bool:
    """``<think>`` reasoning ``</think>`` then a non-empty summary, no ``<answer>`` tags, no
    control token (a sampled ``<|assistant|>`` decodes as text, which the SFT loader refuses),
    and no made-up turn after the reply (unread by the other filters, it would train as a reply).

    >>> is_r1_format("<think>\\n2+3=5.\\n</think>\\nThe value of 2+3 is 5."), is_r1_format("<think> 5 </think>")
    (True, False)
    """
    body = turn_body(response)
    return r1_format_reward(body) == 1.0 and find_control_token(body) is None and reply_body(body) == body


def language_share(response: Any, language: str = "en", classifier: str = WORLD) -> float:
    """Share of the words of the reasoning and the summary that are in ``language`` (tags are not words).

    >>> language_share("<think>\\nFirst, 2+3=5.\\nPori 5*2=10.\\n</think>\\nSo it is 10.")
    0.8
    """
    if classifier not in (WORLD, SCRIPT):  # else read as SCRIPT, by which Velari is English (both Latin)
        raise ValueError(f"language_share: classifier must be {WORLD!r} or {SCRIPT!r}, got {classifier!r}")
    text = _TAGS.sub(" ", reply_body(response))  # the script classifier's chain_of_thought reads no further
    if classifier == WORLD:
        from r1lab.world import language_consistency

        return float(language_consistency(text, language))
    return script_language_reward(f"<think>{text}</think>", target=language)


def mixes_languages(response: Any, language: str = "en", min_share: float = 1.0, classifier: str = WORLD) -> bool:
    """Whether fewer than ``min_share`` of the words are in ``language`` (1.0: any foreign word).

    >>> mixes_languages("<think>\\nFirst, 2+3=5.\\n</think>\\nIt is 5.")
    False
    >>> mixes_languages("<think>\\nTuka, 2+3=5.\\n</think>\\nIt is 5.")
    True
    """
    return language_share(response, language, classifier) < min_share


def has_repeated_lines(response: Any) -> bool:
    """Whether a line of the reasoning with a letter or digit occurs twice (spacing and case ignored).

    Lines of only delimiters and punctuation (``\\[``, ``\\]``, ``$$``, ``\\begin{aligned}``) repeat in
    any reasoning with two display equations, a readable format (R1 §2.3.1), not a loop.

    >>> has_repeated_lines("<think>\\nThen 5*2=10.\\nthen  5*2=10.\\n</think>\\nIt is 10.")
    True
    >>> has_repeated_lines("<think>\\n\\\\[\\n2+3=5\\n\\\\]\\nso\\n\\\\[\\n5*2=10\\n\\\\]\\n</think>\\n10")
    False
    """
    lines = [_SPACE.sub(" ", line).lower() for line in reasoning_lines(response)
             if any(ch.isalnum() for ch in _ENVIRONMENT.sub("", line))]
    return len(set(lines)) < len(lines)


def longest_paragraph(response: Any) -> int:
    """Characters in the longest line of the reasoning (0 without reasoning).

    >>> longest_paragraph("<think>\\nFirst, 2+3=5.\\nThen 5*2=10.\\n</think>\\nIt is 10.")
    13
    """
    return max((len(line) for line in reasoning_lines(response)), default=0)


def has_code_block(response: Any) -> bool:
    """Whether the reasoning holds a Markdown code fence.

    >>> has_code_block("<think>\\n```python\\nprint(5)\\n```\\n</think>\\n5"), has_code_block("<think>\\n5\\n</think>\\n5")
    (True, False)
    """
    return _FENCE.search(chain_of_thought(turn_body(response))) is not None


@dataclass(frozen=True)
class ReadabilityResult:
    """Which readability filters a response passes (True = passes), in the order they are applied."""

    r1_format: bool
    language: bool
    repetition: bool
    paragraph_length: bool
    code_block: bool

    @property
    def ok(self) -> bool:
        return all(astuple(self))

    def checks(self) -> Iterator[tuple[str, bool]]:
        """(filter name, passed) pairs in order, for `Funnel.admit`."""
        return ((f.name, getattr(self, f.name)) for f in fields(self))

    def passed(self) -> list[str]:
        return [name for name, ok in self.checks() if ok]


READABILITY_FILTERS: tuple[str, ...] = tuple(f.name for f in fields(ReadabilityResult))


def check_readability(response: Any, config: ReadabilityConfig = ReadabilityConfig()) -> ReadabilityResult:
    """Every readability filter on one response.

    >>> good = "<think>\\nFirst, 2+3=5.\\nThen 5*2=10.\\n</think>\\nThe value of (2+3)*2 is 10."
    >>> check_readability(good).ok, check_readability("<think>\\nTuka, 2+3=5.\\n</think>\\nIt is 5.").passed()
    (True, ['r1_format', 'repetition', 'paragraph_length', 'code_block'])
    """
    return ReadabilityResult(
        r1_format=is_r1_format(response),
        language=not mixes_languages(response, config.language, config.min_language_share, config.classifier),
        repetition=not has_repeated_lines(response),
        paragraph_length=longest_paragraph(response) <= config.max_paragraph_chars,
        code_block=not has_code_block(response),
    )


@dataclass
class FilterCount:
    name: str  # the filter
    reached: int = 0  # candidates that passed every earlier filter
    kept: int = 0  # of those, the ones this filter kept
    kept_fraction: float | None = None  # kept / reached; None while nothing reached it


@dataclass
class Funnel:
    """Candidates of one source through filters applied one after another (a dataset's stats).

    >>> funnel = Funnel.of("demo", ["correct", "short"])
    >>> [funnel.admit([("correct", c), ("short", s)]) for c, s in [(True, True), (True, False), (False, True)]]
    [True, False, False]
    >>> funnel.filters[1], funnel.kept_fraction
    (FilterCount(name='short', reached=2, kept=1, kept_fraction=0.5), 0.3333333333333333)
    """

    source: str  # where the candidates come from ("r1-zero", "rejection-sampling", ...)
    filters: list[FilterCount] = field(default_factory=list)  # in the order they are applied
    candidates: int = 0  # candidates that entered
    kept: int = 0  # candidates that passed every filter
    kept_fraction: float | None = None  # kept / candidates

    @classmethod
    def of(cls, source: str, names: Iterable[str]) -> Funnel:
        return cls(source=source, filters=[FilterCount(name=name) for name in names])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters]

    def admit(self, checks: Iterable[tuple[str, bool]]) -> bool:
        """One candidate through the filters; True when it passes them all.

        ``checks`` yields (filter name, passed) in the funnel's order and is consumed lazily: a
        check after the first failure is never computed (a generator's dedupe step then only
        records candidates that passed everything before it).
        """
        self.candidates += 1
        passed = True
        checks = iter(checks)
        for count in self.filters:
            name, ok = next(checks, (None, False))  # a missing check is named below, not a bare StopIteration
            if name != count.name:
                raise ValueError(f"funnel {self.source!r}: expected filter {count.name!r}, got {name!r}")
            count.reached += 1
            count.kept += bool(ok)
            count.kept_fraction = count.kept / count.reached
            if not ok:
                passed = False
                break
        else:  # all passed: a check beyond the funnel's filters would have been ignored, not applied
            extra = next(checks, None)
            if extra is not None:
                raise ValueError(f"funnel {self.source!r}: check {extra[0]!r} after its last filter "
                                 f"{self.names[-1] if self.filters else None!r}")
        self.kept += passed
        self.kept_fraction = self.kept / self.candidates
        return passed

    def describe(self) -> str:
        """One line: candidates, kept, and each filter's kept fraction.

        >>> funnel = Funnel.of("demo", ["correct"]); funnel.admit([("correct", True)]); funnel.describe()
        True
        'demo: 1 candidates -> 1 kept (100.0%) | correct 1/1'
        """
        share = f"{100 * self.kept_fraction:.1f}%" if self.kept_fraction is not None else "-"
        steps = " ".join(f"{f.name} {f.kept}/{f.reached}" for f in self.filters)
        return f"{self.source}: {self.candidates} candidates -> {self.kept} kept ({share}) | {steps}"


@dataclass(kw_only=True)
class DatasetStats:
    """What a dataset builder wrote: examples in all, and how each source's candidates were filtered."""

    data: str  # the dataset file
    examples: int  # examples written, all sources together
    sources: list[Funnel]  # one funnel per source, in the order the examples were written
    config: dict[str, Any]  # the stage config that built the data

    def write(self, path: str | os.PathLike) -> Path:
        # atomically: a stats file cut short by a crash would stop the demo's next run from reading it
        return write_text_atomically(path, json.dumps(asdict(self), indent=2, default=str) + "\n")


def dedupe_key(prompt: str, response: str) -> str:
    """The identity of an example: prompt and response with spacing and case normalised.

    >>> key = dedupe_key("Compute 2+3", "<think>\\n2+3=5.\\n</think>\\nIt is 5.")
    >>> key == dedupe_key("compute  2+3 ", "<think> 2+3=5. </think> It is 5.")
    True
    """
    # JSON, not a separator character: a prompt or response holding the separator (a NUL in model
    # text) would make two different pairs one key, and the second would be dropped as a duplicate
    return json.dumps([_SPACE.sub(" ", text).strip().lower() for text in (prompt, response)], ensure_ascii=False)


@dataclass
class Deduper:
    """Remembers the examples seen; `add` is True the first time an example is seen.

    >>> d = Deduper()
    >>> d.add("Hello", "Hi!"), d.add("hello", "Hi! "), d.add("Hello", "Hello!")
    (True, False, True)
    """

    seen: set[str] = field(default_factory=set)

    def __contains__(self, example: tuple[str, str]) -> bool:
        """Whether (prompt, response) was seen, without recording it."""
        return dedupe_key(*example) in self.seen

    def add(self, prompt: str, response: str) -> bool:
        key = dedupe_key(prompt, response)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True
