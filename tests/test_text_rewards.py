"""The script language-consistency reward (r1lab.rewards.language): how the chain of thought is
split into words when scripts mix."""

from __future__ import annotations

import doctest
import time

import pytest

import r1lab.rewards.language as lang
from r1lab.rewards.language import script_language_reward


@pytest.mark.parametrize("cot, target, expected", [
    ("x-координата равна пяти", "ru", 1.0),  # the variable is maths; was counted as a Latin word
    ("Привет,hello", "en", 0.5),  # two words, one per script; was one Cyrillic word
    ("решаем,then solve", "ru", 1 / 3),
    ("𠀀𠀁 so", "zh", 2 / 3),  # ideographs beyond U+9FFF are words one by one too
    ("𝑥𝑦 is ok", "en", 1.0),  # mathematical letters are maths
    ("ＡＢＣ test", "en", 1.0),  # fullwidth Latin is Latin
    ("café déjà vu", "en", 1.0),  # accents, composed or not (below), stay in the word
    ("cafe\u0301 de\u0301ja\u0300 vu", "en", 1.0),
    ("so 3 plus 4 是 七", "en", 0.5), ("设 x 为 2x 加 θ", "zh", 1.0),
    ("sin(x) = 2x", "en", 1.0),
])
def test_words_are_runs_of_one_script(cot, target, expected):
    assert script_language_reward(f"<think> {cot} </think>", target=target) == pytest.approx(expected)


def test_long_reasoning_is_scored_quickly():
    cot = "因为 x-координата so 答案 hello, " * 5_000  # ~150 KB
    start = time.perf_counter()
    assert script_language_reward(f"<think>{cot}</think>", target="zh") == pytest.approx(4 / 7)  # 因为答案: 4 of 7
    assert time.perf_counter() - start < 2.0


def test_language_doctests():
    assert doctest.testmod(lang).failed == 0


class _ShortBatch:
    """A reward whose batch form drops the last completion (a bug in the reward, not model text)."""

    def __call__(self, completion, example):
        return 1.0

    def batch(self, completions, examples):
        return [1.0] * (len(completions) - 1) if len(completions) > 1 else [1.0, 1.0]


def test_a_batch_reward_of_the_wrong_length_is_refused():
    """Too few scores raised a bare IndexError in the weighted sum; too many were silently kept,
    and reward/<name> averaged the extra one in."""
    from r1lab.rewards import RewardTerm, Rubric

    rubric = Rubric([RewardTerm("short", _ShortBatch())])
    with pytest.raises(ValueError, match="'short': .batch returned 1 scores for 2 completions"):
        rubric(["a", "b"], [None, None])
    with pytest.raises(ValueError, match="returned 2 scores for 1 completions"):
        rubric(["a"], [None])


def test_every_think_block_is_chain_of_thought():
    """Only the first <think> block was scored, so Velari or Chinese in a second block (which the
    lenient format rewards) went unseen: both scored 1.0."""
    from r1lab.rewards.format import lenient_format_reward
    from r1lab.rewards.language import chain_of_thought, world_language_reward

    two = "<think> First, 2+3=5. </think> <think> Tuka, 5*2=10. </think> <answer> 10 </answer>"
    assert lenient_format_reward(two) == 1.0
    assert world_language_reward(two) == pytest.approx(0.5)  # First (en), Tuka (vl)
    assert script_language_reward("<think> so 3 plus 4 </think> <think> 是 七 </think>") == pytest.approx(0.5)
    assert chain_of_thought("<think> a <think> b </think> c") == " a \n b "  # an unclosed block ends at the next


@pytest.mark.parametrize("completion", [
    "<think> 因为 </answer> 所以 </think>",  # a stray tag inside the reasoning
    "因为所以 </think> <answer> 5 </answer>",  # no opening tag: the CoT is the text before <answer>
    "<think> 因为<|assistant|>所以 </think>",  # a sampled control token
])
def test_tags_are_not_latin_words(completion):
    """"think", "answer" and "assistant" counted as English words: a pure Chinese CoT scored 0.8."""
    assert script_language_reward(completion, target="zh") == 1.0


@pytest.mark.parametrize("reward, target", [(script_language_reward, "ja"), (lang.world_language_reward, "fr")])
def test_a_language_reward_with_an_unknown_target_is_refused_by_the_rubric(reward, target):
    """The Rubric caught the ValueError and scored every completion 0, the silent failure the
    reward's docstring says raising avoids; an error on the text itself still scores 0."""
    import functools

    from r1lab.rewards import RewardConfigError, RewardTerm, Rubric

    with pytest.raises(RewardConfigError, match=repr(target)):
        Rubric([RewardTerm("language", functools.partial(reward, target=target))])(["<think> so </think>"], [None])

    def broken(completion, example):
        return 1.0 / len(completion.split())  # raises on empty model text

    assert Rubric([RewardTerm("broken", broken)])(["", "a b"], [None, None]).total == [0.0, 0.5]


class _BatchRaisesOnEmpty:
    """A reward whose batch form raises when one completion is empty, as its per-text form does."""

    def __call__(self, completion, example):
        return 1.0 / len(completion.split())

    def batch(self, completions, examples):
        return [self(c, e) for c, e in zip(completions, examples)]


def test_a_batch_reward_that_raises_on_model_text_scores_that_text_0():
    """A raising .batch took the run down, where the same reward without .batch scored the text 0."""
    from r1lab.rewards import RewardTerm, Rubric

    result = Rubric([RewardTerm("inverse", _BatchRaisesOnEmpty(), 2.0)])(["a b", "", "a b c d"], [None] * 3)
    assert result.per_term["inverse"] == [0.5, 0.0, 0.25] and result.total == [1.0, 0.0, 0.5]


@pytest.mark.parametrize("value", [None, "high"])
def test_a_reward_that_returns_no_number_is_named(value):
    """A reward returning None (a missing return) scored 0 on every completion with no error."""
    from r1lab.rewards import RewardTerm, Rubric

    with pytest.raises(TypeError, match=f"reward 'forgot' returned {value!r}, not a number"):
        Rubric([RewardTerm("forgot", lambda completion, example: value)])(["<think> 2+3=5 </think>"], [None])
