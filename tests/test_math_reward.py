"""Answer extraction and equivalence (r1lab.rewards.math): unit cases by hand, and math-verify
checked against the real MATH-500 and AIME 2024 golds; the format rewards' tag scan (r1lab.rewards.format)."""

from __future__ import annotations

import doctest
import logging
import random
import re
from pathlib import Path

import pytest
from scaling import assert_linear

import r1lab.rewards.answer_forms as forms
import r1lab.rewards.math as rm
from r1lab.benchmarks import Problem, load_problems
from r1lab.rewards.answer_forms import fast_verdict
from r1lab.rewards.format import lenient_format_reward
from r1lab.rewards.math import (
    accuracy_reward,
    accuracy_rewards,
    answers_equal,
    canonical_answer,
    check_answers,
    extract_answer,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark copies not found at {DATA} (shared/ beside the repo)")


# --- extraction ------------------------------------------------------------------------
@pytest.mark.parametrize("completion, expected", [
    ("<think>\nmaybe \\boxed{3}\n</think>\n\nSo the answer is $\\boxed{5}$.", "5"),  # after the last </think>
    ("<think>a</think> draft \\boxed{1} <think>b</think> final \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are not braces
    ("\\fbox{7}", "7"),
    ("first \\boxed{1}, then \\boxed{ 2 }", "2"),  # the last one, stripped
    ("\\boxed{1} and then \\boxed{2", None),  # an unclosed last box states no answer
    ("\\boxed 5$", "5"),  # MATH-style box without braces
    ("\\boxed{}", None),
    ("\\boxedx{3}", None),  # not a box
    ("<think>x</think> <answer>\n 12 \n</answer>", "12"),
    ("<answer>1</answer> <answer>2</answer>", "2"),
    ("<answer>so \\boxed{3}</answer>", "3"),  # a box wins over the tag around it
    ("<answer>5", None),  # unclosed tag
    ("She pays 3 + 2 = 5.\n#### 1,234\nThanks", "1,234"),
    ("<think>\n#### 18\n</think>\n\nI am not sure.", None),  # answers inside the reasoning do not count
    ("\\boxed{3}", "3"),  # no </think>: the whole text is read
    ("", None),
    ("The answer is 42.", None),  # no last-number fallback: the format is part of the protocol
])
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


@pytest.mark.parametrize("marker", ["<|user|>", "<|eos|>", "<|bos|>"])
def test_extract_answer_reads_this_turn_only(marker):
    """Text after an end-of-turn marker is another turn: its answer is not this completion's
    (as for the format rewards and the world's checker)."""
    completion = (f"<think>2+3=5</think> \\boxed{{5}}.{marker}Now add one.<|assistant|>"
                  "<think>5+1=6</think>\\boxed{6}<|eos|>")
    assert extract_answer(completion) == "5"
    assert accuracy_reward(completion, {"answer": "5"}) == 1.0 and accuracy_reward(completion, {"answer": "6"}) == 0.0


@pytest.mark.parametrize("not_text", [None, 17, b"\\boxed{1}", ["\\boxed{1}"]])
def test_extract_answer_returns_none_for_non_text(not_text):
    assert extract_answer(not_text) is None


def test_extraction_is_linear_on_degenerate_text():
    """A model stuck in a loop can emit huge runs of openers; reading them must stay fast."""
    def run(k: int) -> None:
        texts = ["\\boxed{" * k, "<answer>" * k + "</answer>" * 3, "{" * 4 * k + "\\boxed{1}", "####" * k]
        results = [extract_answer(t) for t in texts]
        assert results[0] is None and results[2] == "1"

    assert_linear(run, 6_250)


def test_random_garbage_never_raises():
    rng = random.Random(0)
    pieces = ["\\boxed", "\\fbox", "{", "}", "\\{", "\\", "<think>", "</think>", "<answer>", "</answer>",
              "####", "$", "1", "-2.5", "x", "\\frac", "^", " ", "\n", ",", "é"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40))) for _ in range(2000)]
    answers = [extract_answer(t) for t in texts]
    assert all(a is None or isinstance(a, str) for a in answers)
    sample = [a for a in answers if a][:40]
    assert len(check_answers(sample, ["\\frac{1}{2}"] * len(sample))) == len(sample)


# --- equivalence -------------------------------------------------------------------------

FAST_CASES = [
    ("18", "18", True), ("1,000", "1000", True), ("025", "25", True), ("-3.0", "-3", True),
    ("$18$", "18", True), ("\\$18.00", "18", True), ("18.", "18", True), ("10,\\!080", "10080", True),
    ("0.5", ".50", True), ("\\left( 1, 2 \\right)", "(1,2)", True), ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
    ("10\\,080", "10080", True), ("1 000 000", "1000000", True), ("$12\\ 345.5$", "12345.5", True),  # thousands
    ("7", "8", False), ("1,001", "1000", False), ("-18", "18", False), ("0.3333", "0.333333", False),
    (None, "18", False), ("", "18", False), ("   ", "18", False),
]


@pytest.mark.parametrize("pred, gold, expected", FAST_CASES)
def test_fast_path_decides_without_math_verify(pred, gold, expected, monkeypatch):
    def no_math_verify(*args, **kwargs):
        raise AssertionError("math-verify was called on the fast path")

    monkeypatch.setattr(rm, "_math_verify_many", no_math_verify)
    assert answers_equal(pred, gold) is expected


@pytest.mark.parametrize("pred, gold, expected", [
    ("\\frac12", "0.5", True),
    ("\\dfrac{2}{4}", "\\frac{1}{2}", True),
    ("\\frac{10}{2}", "5", True),  # a plain-number gold, a non-plain prediction
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("(3,\\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("Evelyn", "\\text{Evelyn}", True),
    ("q - p", "p - q", False),
    ("\\frac{9}{2}", "4", False),
    ("}{\\frac", "\\frac{1}{2}", False),  # unparsable model text scores False
])
def test_math_verify_path(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_check_answers_matches_single_checks_and_validates_lengths():
    preds, golds = ["\\frac12", "7", None, "x"], ["0.5", "8", "1", "x"]
    assert check_answers(preds, golds) == [answers_equal(p, g) for p, g in zip(preds, golds)] == [True, False, False, True]
    with pytest.raises(ValueError, match="2 predictions but 1 gold"):
        check_answers(["1", "2"], ["1"])


def test_spacing_between_digits_separates_numbers_unless_it_groups_thousands():
    """Only 1-3 digits then groups of exactly 3 are one number; "1 2" and "3 \\, 5" are two."""
    assert [canonical_answer(a) for a in ("1 2", "3 \\, 5", "1 000", "10\\,080", "1234 567")] == \
        ["1 2", "3 5", "1000", "10080", "1234 567"]
    assert check_answers(["1 2", "3 \\, 5", "12 34"], ["12", "35", "1234"]) == [False, False, False]


HUGE = "1" * 5000  # over CPython's 4,300-digit limit on int() of a string


@pytest.mark.parametrize("completion", [f"\\boxed{{{HUGE}}}", f"#### {HUGE}", f"<answer>{HUGE}</answer>",
                                        f"\\boxed{{-{HUGE}.5}}", f"\\boxed{{0.{HUGE}}}"])
def test_numbers_too_long_to_convert_score_zero_without_raising(completion, monkeypatch):
    def no_math_verify(*args, **kwargs):
        raise AssertionError("math-verify was called on an over-long number")

    monkeypatch.setattr(rm, "_math_verify_many", no_math_verify)
    assert accuracy_reward(completion, {"answer": "4"}) == 0.0
    assert accuracy_rewards([completion], [{"answer": "\\frac{1}{2}"}]) == [0.0]
    answer = extract_answer(completion)
    assert canonical_answer(answer) == forms._normal_form(answer)[0]  # kept as text, not a number
    assert check_answers([answer, "4"], [answer, HUGE]) == [True, False]  # equal only to itself


def test_dollar_signs_between_numbers_do_not_join_them():
    """"$5$ $6$" and "\\$1 \\$2" are two numbers, like "1 2": the $ went after the gap between the
    digits had been dropped as mere whitespace next to a non-digit, and they read as 56 and 12."""
    assert check_answers(["$5$ $6$", r"\$1 \$2", r"5\$ 6"], ["56", "12", "56"]) == [False] * 3
    assert canonical_answer("$5$ $6$") == "5 6" and canonical_answer(r"\$1,000") == "1000"


def test_canonical_answer_groups_equal_numbers():
    assert canonical_answer("1,000.0") == canonical_answer("1000") == "1000"
    assert canonical_answer("$0.5$") == "1/2"
    assert canonical_answer("\\text{(C)}") == "\\text{(C)}"


def test_a_hung_worker_is_replaced(caplog):
    """A comparison that outlives the outer timeout scores False and the pool starts afresh;
    the pairs queued behind it are still checked. (9^{9^9} keeps sympy busy past the 1 s alarm.)"""
    pairs = [("2", "2"), ("9^{9^{9}}", "5"), ("\\frac{4}{2}", "2"), ("1", "3")]
    with caplog.at_level(logging.WARNING, logger="r1lab.rewards.math"):
        assert rm._math_verify_many(pairs, timeout=1, stall_after=0.3) == [True, False, True, False]
    assert "hung" in caplog.text
    assert answers_equal("\\frac{6}{2}", "3")  # the fresh pool works


# --- the format rewards ------------------------------------------------------------------

LENIENT_REGEX = re.compile(r"<think>.*?</think>.*?<answer>.*?</answer>", re.DOTALL)  # the old rule


def test_lenient_format_reward_agrees_with_its_regex_and_stays_linear():
    rng = random.Random(1)
    pieces = ["<think>", "</think>", "<answer>", "</answer>", "x", " ", "\n", "<|eos|>", "<think"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        expected = 1.0 if LENIENT_REGEX.search(text.split("<|eos|>")[0]) else 0.0
        assert lenient_format_reward(text) == expected, text

    def run(k: int) -> None:
        stuck = "<think>step</think>" * k  # the regex took ~19 s on 1,000 (19 KB)
        assert lenient_format_reward(stuck) == 0.0 and lenient_format_reward(stuck + "<answer>5</answer>") == 1.0

    assert_linear(run, 125)


# --- the reward ----------------------------------------------------------------------------
def test_a_rubric_term_named_total_is_refused():
    """Its unweighted mean went to reward/total and was overwritten by the weighted sum: with
    weight 2 the metrics showed 2.0 and the term's own mean (1.0) was lost."""
    from r1lab.rewards import RewardTerm, Rubric

    with pytest.raises(ValueError, match="may not be named 'total'"):
        Rubric([RewardTerm("total", lambda completion, example: 1.0, 2.0)])
    means = Rubric([RewardTerm("ok", lambda completion, example: 1.0, 2.0)])(["x"], [None]).means()
    assert means == {"reward/ok": 1.0, "reward/total": 2.0}


def test_doctests():
    assert doctest.testmod(rm).failed == 0


def test_accuracy_reward_takes_problems_mappings_and_strings():
    completion = "<think>\n12 * 2 = 24\n</think>\n\nSo she has $\\boxed{24}$ apples."
    problem = Problem(id="0", prompt="...", answer="24", source="test")
    assert accuracy_reward(completion, problem) == accuracy_reward(completion, {"answer": "24"}) == 1.0
    assert accuracy_reward(completion, "25") == 0.0


def test_accuracy_rewards_batch_equals_single_calls():
    completions = ["\\boxed{24}", "<answer>\\frac{48}{2}</answer>", "\\boxed{25}", "nothing", "<think>\\boxed{24}</think>"]
    examples = [{"answer": "24"}] * 5
    assert accuracy_rewards(completions, examples) == [accuracy_reward(c, e) for c, e in zip(completions, examples)] \
        == [1.0, 1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="2 completions but 1 examples"):
        accuracy_rewards(["a", "b"], [{"answer": "1"}])


@pytest.mark.parametrize("completion", [None, 3, "", "\\boxed{", "</think>" * 3, "\\boxed{\\frac{", "<answer></answer>"])
def test_accuracy_reward_scores_malformed_text_zero(completion, caplog):
    with caplog.at_level(logging.DEBUG, logger="r1lab.rewards.math"):
        assert accuracy_reward(completion, {"answer": "24"}) == 0.0
    assert "no final answer" in caplog.text


# --- math-verify on the real golds ---------------------------------------------------------
def _plain_number(answer: str) -> bool:
    return forms._normal_form(answer)[1] is not None


@needs_data
def test_math_verify_accepts_every_non_numeric_math500_gold_as_itself():
    """The fast path short-cuts identical answers, so check math-verify on its own here:
    every MATH-500 gold that is not a plain number (tuples, intervals, matrices, text, ...)."""
    golds = [p.answer for p in load_problems(DATA / "math500" / "test.jsonl") if not _plain_number(p.answer)]
    assert len(golds) > 150
    verdicts = rm._math_verify_many(list(zip(golds, golds)))
    assert [g for g, ok in zip(golds, verdicts) if not ok] == []


@needs_data
def test_aime_golds_in_another_form():
    """AIME golds ("025") against the same value as a fraction (math-verify path), and against
    a wrong one."""
    golds = [p.answer for p in load_problems(DATA / "aime24" / "test.jsonl")]
    assert len(golds) == 30
    same = [f"\\frac{{{2 * int(g)}}}{{2}}" for g in golds]
    off_by_one = [f"\\frac{{{2 * int(g) + 2}}}{{2}}" for g in golds]
    assert check_answers(same + off_by_one, golds + golds) == [True] * 30 + [False] * 30


@needs_data
def test_numbers_in_text_or_bold_are_numbers():
    """AoPS boxes AIME answers as \\textbf{(073)}; math-verify reads a number inside \\text{} /
    \\mathbf{} as a word, so the reference solution of AIME 2024 problem 16 scored 0 against its gold
    073 (and \\text{0.5} was not 1/2). Letters in the text keep it text."""
    problems = load_problems(DATA / "aime24" / "test.jsonl")
    gold = next(p.answer for p in problems if p.answer == "073")
    preds = [r"\textbf{(073)}", r"\text{073}", r"\mathbf{ 073 }", r"\mathbf{0.5}", r"\text{1,000}", r"\textbf{(074)}"]
    golds = [gold, gold, "73", r"\frac{1}{2}", "1000", gold]
    assert check_answers(preds, golds) == [True] * 5 + [False]
    assert canonical_answer(r"\textbf{073}") == "73" and canonical_answer(r"\text{(A)}") == r"\text{(A)}"


def test_unfinished_thinking_has_no_answer():
    """CONVENTIONS.md: everything up to the last </think> is reasoning; a completion cut off while
    thinking was paid for a draft answer inside it."""
    from r1lab.rewards.math import accuracy_reward

    truncated = "<think>\nTry x = 3: \\boxed{3}? Wait, check again"
    assert extract_answer(truncated) is None and accuracy_reward(truncated, {"answer": "3"}) == 0.0
    assert extract_answer("\\boxed{3}") == "3"  # no tags at all: read whole


def test_latex_commands_are_maths_not_english():
    """A Chinese chain of thought writing \\sin or \\frac is not mixed (maths is neutral); prose in
    \\text{} still counts."""
    from r1lab.rewards.language import script_language_reward

    assert script_language_reward(r"<think> 因为 \sin x = \cos x ，所以 x = \frac{\pi}{4} </think>", target="zh") == 1.0
    assert script_language_reward(r"<think> 设 \alpha 为 角 ， 则 \alpha \times 2 </think>", target="zh") == 1.0
    assert script_language_reward(r"<think> 设 \text{angle} 为 角 </think>", target="zh") == 0.75


def test_thousands_gaps_mean_the_same_when_math_verify_decides():
    """The fast path reads "10\\,080" and "1 000 000" as one number; when the other side is no
    plain number math-verify decides, and it read the gap otherwise: right answers scored 0."""
    pairs = [("10\\,080", "\\frac{20160}{2}"), ("1 000 000", "10^6"), ("10\\,080 \\text{ ways}", "10080"),
             ("1\\,500 \\text{ dollars}", "1500")]
    assert check_answers([p for p, _ in pairs], [g for _, g in pairs]) == [True] * 4
    assert check_answers(["1 2"], ["12"]) == [False]  # a gap that is no thousands separator


@pytest.mark.parametrize("completion, expected", [
    ("<think>a</think> x <think> draft \\boxed{5}", None),
    ("<think>a</think> \\boxed{4} <think> wait, maybe \\boxed{5}", "4"),  # the stated answer, not the draft
    ("<think>a</think> <answer>4</answer> <think> or <answer>5</answer>", "4"),
    ("<think>a</think>\n#### 4\n<think>\n#### 5", "4"),
])
def test_a_reopened_unfinished_think_block_is_a_draft(completion, expected):
    """Text in a <think> block that never closed is reasoning (as when the first one never closes):
    after "</think> x <think> draft \\boxed{5}" the draft 5 was read as the final answer."""
    assert extract_answer(completion) == expected
    assert accuracy_reward(completion, {"answer": "5"}) == 0.0


@pytest.mark.parametrize("pred, gold, expected", [
    ("12.5\\%", "12.5", True), ("7.5%", "7.5", True), ("12.5", "12.5\\%", True),  # math-verify: False
    ("25\\%", "25", True), ("12.5\\%", "0.125", True), ("1{,}250.5\\%", "1250.5", True),
    ("12.5\\%", "12.6", False), ("12.5\\%", "1250", False), ("12.5\\%", "0.0125", False),
])
def test_a_percentage_equals_its_number_or_its_hundredth(pred, gold, expected):
    """math-verify reads "25%" as 25 or 0.25 but "12.5%" only as 0.125: a decimal percentage
    against the bare-number gold of a "what percent" question scored 0, unlike an integer one."""
    assert answers_equal(pred, gold) is expected


def test_numbers_apart_are_not_their_sum(monkeypatch):
    """math-verify reads "3 5" as 3 + 5 (as for a mixed number): \\boxed{3 5} or \\boxed{3\\,5} scored 1
    against the gold 8, and "12 34" against 46. Two numbers equal no one number; a thousands gap
    and a real mixed number are still read."""
    def no_math_verify(*args, **kwargs):
        raise AssertionError("math-verify was called")

    with monkeypatch.context() as patch:
        patch.setattr(rm, "_math_verify_many", no_math_verify)
        assert check_answers(["3 5", "3\\,5", "12 34", "-1 2.5", "1 2"], ["8", "8", "46", "1.5", "1 2"]) == \
            [False, False, False, False, True]
    assert check_answers(["1 000", "2 \\frac{1}{2}"], ["1000", "2.5"]) == [True, True]

    def run(k: int) -> None:
        assert not answers_equal("1 " * k, "5")

    assert_linear(run, 6_250)


def test_latex_spacing_before_a_unit_keeps_the_number_whole():
    """math-verify drops a unit but not the spacing before it, and read "1,250\\,\\text{km}" as the
    set {1, 250}: the common way to typeset a quantity scored 0 against 1250 (without the comma, or
    with "\\ ", it passed). A matrix's row break `\\\\` is no spacing and stays."""
    preds = ["1,250\\,\\text{km}", "1,250\\;\\text{km}", "1,250\\quad\\text{km}", "(1,\\,2)", "1,250\\,\\text{km}",
             "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"]
    golds = ["1250", "1250", "1250", "(1,2)", "(1,250)", "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
             "\\begin{pmatrix}1&2\\end{pmatrix}"]
    assert check_answers(preds, golds) == [True] * 4 + [False, True, False]


# An equation as the final answer against a gold that is a value (r1lab.rewards.math): it states the
# value only when solved for its unknown(s); a half-solved or copied equation is not the answer.
@pytest.mark.parametrize("pred, gold, expected", [
    ("2x=10", "10", False),  # math-verify read the right side: x was never solved for
    ("2x = 10", "10", False),
    ("x^2=4", "4", False),
    ("\\frac{x}{2}=5", "5", False),  # math-verify takes x/2 for "symbols only"
    ("-x=5", "5", False),
    ("x = 10", "10", True),  # an assignment states the answer
    ("x_1=5", "5", True),
    ("a+b=7", "7", True),  # "find a+b": a left side of symbols only still counts
    ("x = 2+3 = 5", "5", True),
    ("f(2)=5", "5", True),  # "find f(2)": the function's value named, as x = 5 (it was taken for 4=5's kind)
    ("P(3) = 10", "10", True),
    ("f(2)+1=5", "5", False),  # not solved for f(2)
    ("2+3=5", "5", True),
    ("2x=10", "x=5", False),  # against an equation gold, math-verify compares equations
    ("y = 2x + 3", "y = 2x + 3", True),
])
def test_an_equation_counts_only_when_solved_for_its_unknown(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_accuracy_reward_pays_no_copied_equation():
    completion = "<think>\nWe have 2x = 10.\n</think>\n\nSo $\\boxed{2x=10}$."
    assert accuracy_reward(completion, {"answer": "10"}) == 0.0
    assert accuracy_reward(completion.replace("2x=10", "x=5"), {"answer": "5"}) == 1.0


# Two numbers with words in \text{} between them are not the first number
# (r1lab.rewards.answer_forms): math-verify reads "5 \text{ hours } 30 \text{ minutes}" as 5, which
# paid it against the gold 5.
@pytest.mark.parametrize("pred, gold, expected", [
    ("5 \\text{ hours } 30 \\text{ minutes}", "5", False),
    ("5 \\text{ dollars and } 6 \\text{ cents}", "5", False),
    ("5 \\text{ apples and } 3 \\text{ pears}", "5", False),
    ("5 \\mathrm{ m } 20 \\mathrm{ cm}", "5", False),
    ("5 \\text{ hours}", "5", True),  # one number and its unit still counts
    ("5 \\text{ cm}^2", "5", True),
    ("1,250\\,\\text{km}", "1250", True),
    ("5 \\text{ hours } 30 \\text{ minutes}", "5 \\text{ hours } 30 \\text{ minutes}", True),
])
def test_words_between_two_numbers(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_accuracy_reward_pays_no_first_number_of_two():
    completion = "<think>\n330 minutes.\n</think>\n\n$\\boxed{5 \\text{ hours } 30 \\text{ minutes}}$"
    assert accuracy_reward(completion, {"answer": "5"}) == 0.0
    assert accuracy_reward(completion, {"answer": "6"}) == 0.0


def test_the_check_stays_linear_on_an_unclosed_text_group():
    def run(k: int) -> None:
        assert canonical_answer("1\\text{" + "a" * k) == "1\\text{" + "a" * k
        assert fast_verdict("1\\text{" + "a" * k, "1") is None  # math-verify decides

    assert_linear(run, 6_250)


# The typeset minus sign U+2212 is a minus (r1lab.rewards.answer_forms / math): models copy it from
# typeset text, and majority voting and the checker must read "−5" as they read "-5".
MINUS = "\u2212"


@pytest.mark.parametrize("answer, form", [
    (f"{MINUS}5", "-5"),  # "−5" and "-5" must vote together in cons@k
    (f"{MINUS}1,000", "-1000"),
    (f"{MINUS}0.5", "-1/2"),
    (f"{MINUS}\\frac{{1}}{{2}}", "-\\frac{1}{2}"),
])
def test_canonical_answer_reads_the_unicode_minus_as_a_minus(answer, form):
    assert canonical_answer(answer) == form


@pytest.mark.parametrize("pred, gold, expected", [
    (f"{MINUS}1,000", "-1000", True),  # math-verify read the set {-1, 0}
    (f"{MINUS}1,000", "1000", False),
    (f"x = {MINUS}\\frac{{1}}{{2}}", "-0.5", True),
    (f"{MINUS}5", "5", False),
])
def test_answers_with_the_unicode_minus(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_accuracy_reward_with_the_unicode_minus():
    completion = f"<think>\nIt drops by 1,000.\n</think>\n\nThe change is $\\boxed{{{MINUS}1,000}}$."
    assert accuracy_reward(completion, {"answer": "-1000"}) == 1.0


# Scale words after a number multiply it and "percent" is a percentage (r1lab.rewards.answer_forms):
# dropped like a unit ("5 dollars"), "3 million" equalled 3 and not 3,000,000.
@pytest.mark.parametrize("pred, gold, expected", [
    ("3 million", "3000000", True),
    ("3 million", "3", False),
    ("3 \\text{ million}", "3000000", True),
    ("3 \\text{ million}", "3", False),
    ("\\$1.5 billion", "1,500,000,000", True),
    ("2 hundred thousand", "200000", True),
    ("5 dozen", "60", True),
    ("5 dozen", "5", False),
    ("3 million dollars", "3000000", True),
    ("25 percent", "0.25", True),  # as "25\%" against 0.25
    ("25 \\text{ percent}", "25", True),
    ("26 percent", "0.25", False),
    ("5 dollars", "5", True),  # a unit is still dropped
])
def test_scale_words_multiply_the_number(pred, gold, expected):
    assert answers_equal(pred, gold) is expected


def test_scale_words_in_votes_and_rewards():
    assert canonical_answer("3 million") == canonical_answer("3,000,000") == "3000000"
    assert canonical_answer("1" + "0" * 40 + " thousand") == "1" + "0" * 43  # exact, not rounded to 28 digits
    completion = "<think>\n3 thousand apples a day for 1000 days\n</think>\n\n$\\boxed{3 \\text{ million}}$"
    assert accuracy_rewards([completion, completion], [{"answer": "3000000"}, {"answer": "3"}]) == [1.0, 0.0]


# A last \boxed{ that never closes (cut off at the length limit) states no answer
# (r1lab.rewards.math): the earlier box it revises is not paid.
@pytest.mark.parametrize("completion, expected", [
    ("<think>a</think> \\boxed{12} wait, no: \\boxed{13", None),
    ("<think>a</think> \\boxed{\\frac{1}{2}} or \\fbox{\\frac{1}{3}", None),
    ("\\boxed{12} and \\boxed{}", "12"),  # an empty box states nothing: the one before counts
    ("\\boxed{\\frac{1}{2} then \\boxed{3}", "3"),  # an earlier unclosed box does not matter
    ("<think>a</think>\n#### 12\n\\boxed{13", "12"),  # no box stated: the #### line is the answer
])
def test_a_last_box_cut_off_states_no_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_accuracy_reward_pays_no_box_revised_by_a_cut_off_one():
    assert accuracy_reward("<think>a</think> \\boxed{12} then \\boxed{1", {"answer": "12"}) == 0.0
    assert accuracy_reward("<think>a</think> \\boxed{12} then \\boxed{12}", {"answer": "12"}) == 1.0


# An equation whose right side is a number with thousands commas states that number
# (r1lab.rewards.answer_forms): math-verify read "x = 1,000" as x = {1, 0}, which scored 0 against 1000.
@needs_data
def test_real_golds_with_thousands_commas_as_an_assignment():
    import json

    raw = [json.loads(line)["answer"].rsplit("####", 1)[-1].strip()
           for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    raw += [p.answer for p in load_problems(DATA / "math500" / "test.jsonl")]
    with_commas = [gold for gold in raw if re.fullmatch(r"\d{1,3}(?:,\d{3})+", gold)]
    assert len(with_commas) == 15  # 14 GSM8K golds and MATH-500's 58,500
    golds = [gold.replace(",", "") for gold in with_commas]
    completions = [f"<think>a</think> So \\boxed{{n = {gold}}}." for gold in with_commas]
    wrong = [str(int(gold) + 1000) for gold in golds]
    assert accuracy_rewards(completions * 2, golds + wrong) == [1.0] * 15 + [0.0] * 15


# A made-up new turn ("User:", "Assistant:") or new question after a blank line ends the reply, as
# for the format rewards: the answer of a turn the model invented is not graded.
@pytest.mark.parametrize("completion, expected", [
    ("<think>2+3=5</think> \\boxed{5}.\nUser: and 3+4?\nAssistant: <think>3+4=7</think> \\boxed{7}", "5"),
    ("<think>2+3=5</think> It is 5. User: and 3+4? Assistant: \\boxed{7}", None),
    ("So it is \\boxed{5}.\n\nProblem: What is 3+4?\nSolution: \\boxed{7}", "5"),
    ("So it is 5.\n\nQ: What is 3+4?\nA: <answer>7</answer>", None),
    ("See https://artofproblemsolving.com/wiki/index.php/User:Someone, so \\boxed{7}", "7"),  # a link goes on
])
def test_a_made_up_turn_after_the_reply_is_not_graded(completion, expected):
    assert extract_answer(completion) == expected
    assert accuracy_reward(completion, {"answer": "7"}) == (1.0 if expected == "7" else 0.0)


# an example without a gold answer is the data's mistake: an error, not a silent 0 for every completion
@pytest.mark.parametrize("example", [{"question": "2 + 2?"}, {"answer": None}, object()])
def test_an_example_without_a_gold_answer_is_a_config_error(example):
    from r1lab.rewards import RewardConfigError, RewardTerm, Rubric

    with pytest.raises(RewardConfigError, match="no gold answer"):
        Rubric([RewardTerm("accuracy", accuracy_reward)])(["\\boxed{4}"], [example])
    with pytest.raises(RewardConfigError, match="no gold answer"):
        accuracy_rewards(["\\boxed{4}"], [example])


# MATH-500 writes thousands as "10,\!080": a right answer in another form (an assignment, a unit in
# \text{}) goes to math-verify, which read the gold's "10, 080" as the set {10, 80} and scored it 0
@needs_data
def test_math500_golds_with_latex_thousands_commas_in_other_forms():
    golds = [p.answer for p in load_problems(DATA / "math500" / "test.jsonl") if ",\\!" in p.answer]
    assert golds == ["10,\\!080", "11,\\! 111,\\! 111,\\! 100", "\\$32,\\!348"]
    values = ["10080", "11111111100", "32348"]
    right = [f"n = {v}" for v in values] + [f"{v} \\text{{ ways}}" for v in values] + [f"x = {g}" for g in golds]
    wrong = [f"n = {int(v) + 1}" for v in values] + [f"{int(v) + 1} \\text{{ ways}}" for v in values]
    assert check_answers(right + wrong, golds * 5) == [True] * 9 + [False] * 6
    assert check_answers(["10,\\!080 \\text{ ways}"], ["10080"]) == [True]  # the same spacing in a prediction


# Extraction details (r1lab.rewards.math): the last #### line, escaped braces inside a box, a gold of 0.
@pytest.mark.parametrize("completion, expected", [
    ("Try 3.\n#### 3\nNo, recount: 4.\n#### 4", "4"),  # the last #### line, as for boxes and tags
    (r"\boxed{f(x) = \left\{ \begin{array}{ll} x & x > 0 \\ 0 & x \le 0 \end{array} \right.}",  # a piecewise
     r"f(x) = \left\{ \begin{array}{ll} x & x > 0 \\ 0 & x \le 0 \end{array} \right."),  # `\{` is no brace
])
def test_extraction_of_hashes_and_escaped_braces(completion, expected):
    assert extract_answer(completion) == expected


@pytest.mark.parametrize("gold", [0, "0", 0.0])
def test_a_gold_answer_of_zero_is_a_gold_answer(gold):
    """A gold of 0 is an answer, not a missing one: the accuracy reward compares with it."""
    assert accuracy_reward("<think>\n3-3=0\n</think>\n\n$\\boxed{0}$", {"answer": gold}) == 1.0
    assert accuracy_rewards(["\\boxed{1}"], [Problem(id="0", prompt="3-3?", answer=gold, source="test")]) == [0.0]


def test_check_answers_reads_gold_numbers_as_their_text():
    """Golds stored as numbers (an int from a JSON file) are compared as their text, on both paths."""
    assert check_answers(["5", "\\frac{10}{2}", "6", "0"], [5, 5, 5, 0]) == [True, True, False, True]
