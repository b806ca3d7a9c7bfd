"""The script language-consistency reward (r1lab.rewards.language): how the chain of thought is
split into words when scripts mix."""

from __future__ import annotations

import doctest
import logging

import pytest
from scaling import assert_linear

import r1lab.rewards.language as lang
from r1lab.rewards import RewardTerm, Rubric, lenient_format_reward, r1_format_reward, strict_format_reward
from r1lab.rewards.language import chain_of_thought, script_language_reward, world_language_reward
from r1lab.rewards.format import reply_body


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
    def run(k: int) -> None:
        cot = "因为 x-координата so 答案 hello, " * k  # 5,000: ~150 KB
        assert script_language_reward(f"<think>{cot}</think>", target="zh") == pytest.approx(4 / 7)  # 因为答案: 4 of 7

    assert_linear(run, 625)


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


# Language-consistency rewards (r1lab.rewards.language): what a CoT without words scores, as the
# docstrings say.
@pytest.mark.parametrize("completion, cot", [
    ("", ""),
    ("<think></think> <answer> 10 </answer>", ""),
    ("<think> 2+3=5, 5*2=10. </think> <answer> 10 </answer>", " 2+3=5, 5*2=10. "),
    ("10", "10"),  # no tags: the whole turn is read as the reasoning
])
def test_a_cot_without_words_scores_1(completion, cot):
    """Numbers and operators are neutral and nothing else is there: no word is in another language."""
    assert chain_of_thought(completion) == cot
    assert world_language_reward(completion, target="vl") == 1.0 and world_language_reward(completion) == 1.0
    assert script_language_reward(completion, target="zh") == 1.0 and script_language_reward(completion) == 1.0


def test_one_word_in_a_numeric_cot_decides_it():
    """The neutral tokens are not counted either way: one Velari word among numbers scores 0 for English."""
    completion = "<think> 2+3=5, Pori 5*2=10. </think> <answer> 10 </answer>"
    assert world_language_reward(completion) == 0.0 and world_language_reward(completion, target="vl") == 1.0


# The Rubric (r1lab.rewards.rubric) refuses weights that are not finite numbers.
@pytest.mark.parametrize("weight", [float("nan"), float("inf"), None, "2"])
def test_a_weight_that_is_no_finite_number_is_refused_naming_the_term(weight):
    """A NaN or inf weight was reported as "reward 'total (weighted sum)' is nan for completion 0"
    ("rewards must be finite numbers"), blaming the model's text; None failed with a bare
    TypeError from the sum, and "2" with "can't multiply sequence"."""
    with pytest.raises(ValueError, match=f"reward term 'format': weight must be a finite number, got {weight!r}"):
        Rubric([RewardTerm("format", strict_format_reward, weight)])


def test_finite_weights_still_weigh_each_term():
    rubric = Rubric([RewardTerm("format", strict_format_reward, 2), RewardTerm("half", strict_format_reward, 0.5)])
    result = rubric(["<think> 3+4=7 </think> <answer> 7 </answer>", "7"], [None, None])
    assert result.total == [2.5, 0.0] and result.means() == {"reward/format": 0.5, "reward/half": 0.5, "reward/total": 1.25}


# chain_of_thought when the prompt opened the <think> block: the completion has only </think>.
@pytest.mark.parametrize("completion, cot", [
    ("因为 3+4=7 </think> The answer is 7.", "因为 3+4=7 "),  # R1 format: a summary, no <answer>
    ("a </think> b <answer> 7 </answer>", "a "),  # the summary before <answer> is not reasoning either
    ("a </think> b </think> c", "a </think> b "),  # up to the last </think>, like the answer extractors
    ("a </think> <think> b </think> c", "a \n b "),  # a block opened by the prompt, then one of its own
    ("Sure. <think> a </think> b", " a "),  # text before a <think> with no </think> stays out, as before
    ("a b <answer> 7 </answer>", "a b "),  # no tags at all: the text before <answer>, as before
])
def test_chain_of_thought_stops_at_a_close_tag_without_an_opening_one(completion, cot):
    """The text before <answer> was taken, summary included (the whole completion in R1's format)."""
    assert chain_of_thought(completion) == cot


def test_the_summary_does_not_count_against_the_reasoning_language():
    """A Chinese CoT with an English summary after </think> scored 0.5 for target zh (1.0 now)."""
    assert script_language_reward("因为 所以 </think> So it is seven.", target="zh") == 1.0
    assert world_language_reward("First, 2+3=5. </think> Tuka") == 1.0  # Tuka is Velari


# The R1 output format's summary (r1lab.rewards.format.r1_format_reward): control tokens are no text.
@pytest.mark.parametrize("summary, expected", [
    ("<|assistant|>", 0.0), ("\n<|pad|><|pad|>\n", 0.0), (" <|assistant|> It is 7.", 1.0), ("It is 7.", 1.0),
])
def test_a_summary_of_only_control_tokens_is_no_summary(summary, expected):
    """A sampled <|assistant|> or <|pad|> after </think> counted as a non-empty summary: format reward 1.0."""
    from r1lab.rewards import r1_format_reward

    assert r1_format_reward(f"<think>\n3+4=7\n</think>{summary}") == expected


# A Rubric built from any iterable of terms scores with every term.
def test_a_rubric_built_from_a_generator_keeps_its_terms():
    """The name checks used the generator up: the rubric had no terms and every total was 0."""
    rubric = Rubric(RewardTerm(name, strict_format_reward, weight) for name, weight in [("format", 1.0), ("twice", 2.0)])
    result = rubric(["<think> 3+4=7 </think> <answer> 7 </answer>", "7"], [None, None])
    assert [t.name for t in rubric.terms] == ["format", "twice"] and result.total == [3.0, 0.0]
    assert result.means() == {"reward/format": 0.5, "reward/twice": 0.5, "reward/total": 1.5}


# A plain-text new turn ("User:", "Assistant:", R1 Table 1's turn markers) ends the reply for the
# format and language rewards, as it does for the world's accuracy rule.
MADE_UP_TURN = "\nUser: and 1+1?\nAssistant: <think> 是 七 </think> <answer> 2 </answer>"


@pytest.mark.parametrize("reward, reply, expected", [
    (strict_format_reward, " <think> so 2+3=5 </think> <answer> 5 </answer>", 1.0),
    (strict_format_reward, " <think> so 2+3=5 </think> 5", 0.0),
    (r1_format_reward, " <think> so 2+3=5 </think> It is 5.", 1.0),
    (lambda c: script_language_reward(c, target="en"), " <think> so 2+3=5 </think> <answer> 5 </answer>", 1.0),
])
def test_a_made_up_turn_is_not_part_of_the_reply(reward, reply, expected):
    assert reward(reply + MADE_UP_TURN) == expected


# A new question after a blank line ("Q:", "Problem:") also ends the reply, for the format rewards as
# for the world's accuracy rule and format check.
@pytest.mark.parametrize("reward, completion, expected", [
    (strict_format_reward, "<think> 2+3=5 </think> <answer> 5 </answer>\n\nQ: What is 1+1?.\nA: 2", 1.0),
    (lenient_format_reward, "<think> 2+3=5 </think> 5\n\nProblem: 1+1?.\nSolution: <think> 1+1=2 </think> "
                            "<answer> 2 </answer>", 0.0),
])
def test_a_made_up_question_is_not_part_of_the_reply(reward, completion, expected):
    from r1lab.world import completion_body, follows_r1_zero_format

    assert reward(completion) == expected
    assert follows_r1_zero_format(completion) == (expected == 1.0 and reward is strict_format_reward)
    assert completion_body(completion) == completion.split("\n\n")[0]


# "User:" inside a link (a wiki page such as .../index.php/User:Name, as AIME solutions cite) is
# not a new turn: the reply goes on past it.
def test_a_user_page_in_a_link_does_not_end_the_reply():
    reply = ("<think> see https://artofproblemsolving.com/wiki/index.php/User:Someone for the trick, "
             "so 2+3=5 </think> <answer> 5 </answer>")
    assert reply_body(reply) == reply
    assert strict_format_reward(reply) == 1.0
    assert reply_body(reply + " User: and 1+1?") == reply + " "  # a turn after a space still ends it
    assert reply_body(reply + "\nAssistant: 2") == reply + "\n"


# The world reads a completion's first READ_CHARS characters: a reply that runs past them is judged
# neither right nor in format (its end was not read), never on a prefix ("151" cut to 15); a reply
# that ends within them is judged whatever follows.
def test_the_world_does_not_judge_a_reply_it_did_not_read_to_its_end():
    from r1lab.world.answers import READ_CHARS, extract_final_answer, follows_r1_zero_format

    head = "<think>" + "a" * (READ_CHARS - 100) + "</think> <answer> "
    straddling = head + " " * (READ_CHARS - 2 - len(head)) + "151 </answer>"  # "15" within the limit
    assert straddling.index("151") == READ_CHARS - 2
    assert extract_final_answer(straddling) is None and not follows_r1_zero_format(straddling)
    assert strict_format_reward(straddling) == 1.0  # the format rewards read the whole reply
    short = "<think> 3+4=7 </think> <answer> 7 </answer>"
    ended = short + "<|eos|>" + "x" * READ_CHARS  # the turn ends early: the rest is not this reply
    assert extract_final_answer(ended) == 7 and follows_r1_zero_format(ended)
    assert extract_final_answer(short + " " * READ_CHARS) is None  # not read to its end


# Numbers written with non-decimal digits (superscripts, fractions, Roman numerals) are numbers to
# the world's classifier, neutral as "25" is, not unknown words counted against the target.
@pytest.mark.parametrize("cot", ["First, 5²=25.", "First, ½ of 4 is 2.", "First, Ⅻ is 12.", "First, ① is 1."])
def test_the_world_reward_counts_no_number_as_a_word(cot):
    from r1lab.filters import language_share
    from r1lab.world import word_language, words

    assert world_language_reward(f"<think> {cot} </think>") == 1.0
    assert language_share(f"<think>\n{cot}\n</think>\nIt is 25.") == 1.0
    assert words("x² and y") == ["x", "and", "y"] and word_language("²") is None


# A reward that returns text is refused even when the text reads as a number, by either form.
@pytest.mark.parametrize("value", ["42", "1.0", b"1"])
def test_a_reward_that_returns_numeric_text_is_named(value):
    with pytest.raises(TypeError, match="reward 'read' returned .*, not a number"):
        Rubric([RewardTerm("read", lambda completion, example: value)])(["<answer>42</answer>"], [None])


class _BatchReturnsText:
    """A reward whose batch form returns one string of digits, one character per completion."""

    def __call__(self, completion, example):
        return 1.0

    def batch(self, completions, examples):
        return "10"


def test_a_batch_reward_that_returns_text_is_named():
    with pytest.raises(TypeError, match="reward 'digits' returned '1', not a number"):
        Rubric([RewardTerm("digits", _BatchReturnsText())])(["a", "b"], [None, None])


# a format reward's 0 gives its reason in the debug log (the rewards' contract); a 1 logs nothing
@pytest.mark.parametrize("reward, why", [(strict_format_reward, "is not exactly <think>"),
                                         (lenient_format_reward, "has no <think>"),
                                         (r1_format_reward, "is not one <think>")])
def test_a_format_reward_logs_why_it_scored_0(reward, why, caplog):
    with caplog.at_level(logging.DEBUG, logger="r1lab.rewards.format"):
        assert reward("no tags at all") == 0.0
    assert f"{reward.__name__}: 0, the reply (14 chars) {why}" in caplog.text
    caplog.clear()
    good = "<think> 3+4=7 </think> The sum is 7." if reward is r1_format_reward else "<think> a </think> <answer> 7 </answer>"
    with caplog.at_level(logging.DEBUG, logger="r1lab.rewards.format"):
        assert reward(good) == 1.0
    assert caplog.text == ""


# The strict R1-Zero format (R1 Table 1) allows only whitespace around and between its two blocks;
# the lenient one pays all of these.
@pytest.mark.parametrize("completion, expected", [
    ("\n <think> 3+4=7 </think>\n<answer> 7 </answer> \n", 1.0),
    ("Sure. <think> 3+4=7 </think> <answer> 7 </answer>", 0.0),  # text before the think block
    ("<think> 3+4=7 </think> <answer> 7 </answer> Done.", 0.0),  # text after the answer block
    ("<think> 3+4=7 </think> so <answer> 7 </answer>", 0.0),  # text between the blocks
    ("<think> 3+4=7 </think> <answer> 7 </answer> <answer> 8 </answer>", 0.0),  # a second answer
])
def test_strict_format_allows_only_whitespace_around_the_blocks(completion, expected):
    assert strict_format_reward(completion) == expected and lenient_format_reward(completion) == 1.0


# R1's output format after the cold start (R1 §2.3.1): one think block first, then a summary with no tags.
@pytest.mark.parametrize("completion, expected", [
    ("\n<think> 3+4=7 </think> It is 7.", 1.0),
    ("Sure. <think> 3+4=7 </think> It is 7.", 0.0),  # text before the think block
    ("<think> 3+4=7 </think> <answer> 7 </answer>", 0.0),  # the R1-Zero answer tags are no summary
    ("<think> 3+4=7 </think> It is 7. </think>", 0.0),  # a second close tag
    ("<think> 3+4=7 </think> It is 7. <think> or 8", 0.0),  # a reopened think block
])
def test_r1_format_wants_one_leading_think_block_and_a_summary_without_tags(completion, expected):
    assert r1_format_reward(completion) == expected


def test_format_and_rubric_doctests():
    import r1lab.rewards.format as format_module
    import r1lab.rewards.rubric as rubric_module

    assert doctest.testmod(format_module).failed == 0 and doctest.testmod(rubric_module).failed == 0


def test_a_rubric_refuses_completions_and_examples_of_different_lengths():
    """Unchecked, zip dropped the completion without an example and the weighted sum failed with an IndexError."""
    rubric = Rubric([RewardTerm("format", strict_format_reward)])
    with pytest.raises(ValueError, match="must have the same length, got 2 completions and 1 examples"):
        rubric(["<think> a </think> <answer> 1 </answer>", "2"], [None])


# Word splitting by script (r1lab.rewards.language), counted against a Chinese target.
@pytest.mark.parametrize("cot, expected", [
    ("因为 de\u0301ja\u0300", 2 / 3),  # a decomposed accent stays in its word: one Latin word, not "de" and "ja"
    ("因为 ½xy 加 ⅓ab", 1.0),  # a token with a non-decimal numeral (½, ⅓) is maths, as one with a digit
])
def test_word_counts_against_a_chinese_target(cot, expected):
    assert script_language_reward(f"<think> {cot} </think>", target="zh") == pytest.approx(expected)
