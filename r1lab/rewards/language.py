"""Language-consistency reward (R1 §2.3.2): the share of the chain of thought's words that are
in the target language, added to the accuracy reward to stop language mixing.

Two classifiers:
- the miniature world's two languages (English and Velari), by the world's vocabulary
  (`r1lab.world.language_consistency`; numbers and symbols are neutral, unknown words count
  against the target);
- real text, by script: a word is in the target language when its letters are in the target's
  script (Latin for "en", CJK ideographs for "zh", Cyrillic for "ru", ...). Script is a coarse
  proxy (English and French are both Latin), the same simplification the paper's reward makes
  for its Chinese/English mixing. Maths is neutral, like the world's numbers and symbols: a
  token with a digit ("2x", "4π") or no run of two letters ("x", "θ", "f(x)") is a formula, not
  a word, so a variable does not make a Chinese CoT mixed, nor θ an English one.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import groupby
from typing import Any

from r1lab.rewards.format import reply_body
from r1lab.rewards.rubric import RewardConfigError

_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
# tags and control tokens are markup, not Latin words (the world classifier drops them too)
_MARKUP = re.compile(r"</?(?:think|answer)>|<\|[a-z]+\|>")
# a block ends at its </think>, at the next <think> (one left open) or at the end of the text
_THINK = re.compile(r"<think>(.*?)(?=</think>|<think>|\Z)", re.DOTALL)
# The script each language the script classifier knows is written in.
SCRIPTS = {"en": "LATIN", "fr": "LATIN", "de": "LATIN", "zh": "CJK", "ru": "CYRILLIC", "el": "GREEK"}


def chain_of_thought(completion: str) -> str:
    """The reasoning of the reply (`reply_body`): every <think> block, one per line (R1 §2.3.2
    scores the whole CoT, and the lenient format accepts several blocks), and before any <think>
    the text up to a </think> (a block the prompt opened: its summary is not reasoning); without
    tags, the text before <answer>.

    >>> chain_of_thought("<think>2+3=5</think> <think>5*2=10</think> <answer>10</answer>")
    '2+3=5\\n5*2=10'
    >>> chain_of_thought("2+3=5 </think> The sum is 5.")
    '2+3=5 '
    """
    if not isinstance(completion, str):
        return ""
    body = reply_body(completion)
    head = body.split("<think>", 1)[0]
    blocks = [head.rsplit("</think>", 1)[0]] if "</think>" in head else []
    blocks += _THINK.findall(body)
    return "\n".join(blocks) if blocks else body.split("<answer>", 1)[0]


def world_language_reward(completion: str, example: Any = None, target: str = "en") -> float:
    """Share of the CoT's words in the target world language ("en" or "vl"); RewardConfigError
    (a ValueError) for another target. A CoT without words (empty, or only numbers and
    operators) scores 1.0, as `language_consistency`: no word of it is in another language.

    >>> world_language_reward("<think> First, 2+3=5. </think> <answer> 5 </answer>")
    1.0
    """
    from r1lab.world import LANGUAGES, language_consistency

    if target not in LANGUAGES:
        raise RewardConfigError(f"world_language_reward: the world's languages are {LANGUAGES}, got {target!r}")
    return float(language_consistency(chain_of_thought(completion), target))


@lru_cache(maxsize=8192)
def _letter_script(ch: str) -> str | None:
    """The script of a letter ("LATIN", "CJK", ...); None for a non-letter or a maths letter (𝑥)."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "").removeprefix("FULLWIDTH ")  # ＡＢＣ is Latin
    script = "CJK" if name.startswith("CJK") else name.split(" ")[0]
    return None if script in ("", "MATHEMATICAL") else script


def _word_scripts(token: str) -> list[str]:
    """The scripts of the words in a whitespace-free token: an ideograph is a word by itself, any
    other word is a run of two or more letters of one script, so "x-координата" and "решаем,then"
    hold one Cyrillic word each, not a Latin one. A token with a digit is a formula ("2x", "4π",
    "x²"), as is one without such a run ("x", "θ", "f(x)"), in any language."""
    if len(token) == 1 and _letter_script(token) == "CJK":
        return ["CJK"]
    if any(ch.isnumeric() for ch in token):
        return []
    scripts = [_letter_script(ch) for ch in token if not unicodedata.category(ch).startswith("M")]  # accents join
    return [script for script, run in groupby(scripts) if script is not None and len(list(run)) >= 2]


def script_language_reward(completion: str, example: Any = None, target: str = "en") -> float:
    """Share of CoT words written in the target's script; CJK characters count one word each,
    maths tokens ("x", "2x", "π") none. A CoT without words (empty, or only numbers and maths)
    scores 1.0, as the world's classifier: R1's ratio has no words to count, and none is foreign.
    Raises RewardConfigError (a ValueError, which `Rubric` lets through) for a target not in
    `SCRIPTS`: scoring every completion 0 would hide it.

    >>> script_language_reward("<think> so 3 plus 4 是 七 </think>")
    0.5
    >>> script_language_reward("<think> 设 x 为 2x 加 θ </think>", target="zh")
    1.0
    """
    want = SCRIPTS.get(target)
    if want is None:
        raise RewardConfigError(f"script_language_reward: no script known for language {target!r}; known: {sorted(SCRIPTS)}")
    text = _LATEX_COMMAND.sub(" ", _MARKUP.sub(" ", chain_of_thought(completion)))  # \frac, \sin: maths
    text = "".join(f" {ch} " if _letter_script(ch) == "CJK" else ch for ch in text)
    scripts = [script for token in text.split() for script in _word_scripts(token)]
    return sum(s == want for s in scripts) / len(scripts) if scripts else 1.0
