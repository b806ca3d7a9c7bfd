"""Language-consistency reward (R1 §2.3.2): the share of the chain of thought's words that are
in the target language, added to the accuracy reward to stop language mixing.

Two classifiers:
- the miniature world's two languages (English and Velari), by the world's vocabulary
  (`r1lab.world.language_consistency`; numbers and symbols are neutral, unknown words count
  against the target);
- real text, by script: a word is in the target language when its letters are in the target's
  script (Latin for "en", CJK ideographs for "zh", Cyrillic for "ru", ...). Script is a coarse
  proxy (English and French are both Latin), the same simplification the paper's reward makes
  for its Chinese/English mixing.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_END = re.compile(r"<\|eos\|>|<\|user\|>|<\|bos\|>")
_SCRIPTS = {"en": "LATIN", "fr": "LATIN", "de": "LATIN", "zh": "CJK", "ru": "CYRILLIC", "el": "GREEK"}


def chain_of_thought(completion: str) -> str:
    """The reasoning: inside the first <think> block; without tags, the text before <answer>."""
    if not isinstance(completion, str):
        return ""
    body = _END.split(completion, maxsplit=1)[0]
    m = _THINK.search(body)
    return m.group(1) if m else body.split("<answer>", 1)[0]


def world_language_reward(completion: str, example: Any = None, target: str = "en") -> float:
    """Share of the CoT's words in the target world language ("en" or "vl").

    >>> world_language_reward("<think> First, 2+3=5. </think> <answer> 5 </answer>")
    1.0
    """
    from r1lab.world import language_consistency

    return float(language_consistency(chain_of_thought(completion), target))


def _word_script(word: str) -> str | None:
    for ch in word:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            return "CJK" if name.startswith("CJK") else name.split(" ")[0]
    return None


def script_language_reward(completion: str, example: Any = None, target: str = "en") -> float:
    """Share of CoT words written in the target's script; CJK characters count one word each.


    >>> script_language_reward("<think> so 3 plus 4 是 七 </think>")
    0.5
    """
    want = _SCRIPTS.get(target)
    if want is None:
        return 0.0
    text = re.sub(r"([\u3400-\u9fff])", r" \1 ", chain_of_thought(completion))
    scripts = [s for s in (_word_script(w) for w in text.split()) if s is not None]
    return sum(s == want for s in scripts) / len(scripts) if scripts else 1.0
