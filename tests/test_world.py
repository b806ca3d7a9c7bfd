"""Behaviour of the miniature world: exact answers, disjoint splits, honest corpus, languages."""

from __future__ import annotations

import dataclasses
import random
import re

import pytest
from scaling import assert_linear

import r1lab.world as world
from r1lab.world import ARITHMETIC, PRETRAIN, problem_set
from r1lab.world.arithmetic import ArithmeticConfig, Chain, random_chain
from r1lab.world.corpus import TEMPLATE, corpus_statistics
from r1lab.world.countdown import CountdownConfig, random_countdown
from r1lab.world.language import GLOSSARY, PHRASES, lexicon
from r1lab.world.problems import SPLIT_PERCENT, countdown_problem

STEP = re.compile(r"(?<![\d)])(\d+)([+\-*])(\d+)=(\d+)")


@pytest.fixture(scope="module")
def docs() -> list[world.Document]:
    return world.pretraining_documents(seed=7, n_docs=4000)


# --- problems ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n_operands", [2, 3, 4, 5, 6])
def test_arithmetic_answers_match_python_eval(n_operands: int) -> None:
    rng = random.Random(n_operands)
    config = ArithmeticConfig()
    for _ in range(300):
        chain = random_chain(rng, n_operands, config)
        expression = chain.expression()
        assert eval(expression) == chain.value()  # noqa: S307 (digits and + - * ( ) only)
        assert len(chain.operands) == n_operands
        for step in chain.steps():  # every step is a small in-range operation
            assert 1 <= step.result <= config.max_value
            assert step.right <= config.max_operand if step.op != "*" else step.left <= config.max_multiplicand
            assert step.op != "*" or 2 <= step.right <= 9


def test_expression_parenthesises_only_where_needed() -> None:
    assert Chain(operands=(37, 48, 2, 19), ops=("+", "*", "-")).expression() == "(37+48)*2-19"
    assert Chain(operands=(3, 4, 5), ops=("*", "+")).expression() == "3*4+5"
    assert Chain(operands=(9, 4, 2, 3), ops=("-", "*", "*")).expression() == "(9-4)*2*3"
    with pytest.raises(ValueError):
        Chain(operands=(1, 2), ops=("/",))


def test_difficulty_knobs() -> None:
    easy = world.heldout_problems(40, seed=1, difficulties={"arithmetic": (2,)})
    hard = world.heldout_problems(40, seed=1, difficulties={"arithmetic": (5,)})
    assert {p.difficulty for p in easy} == {2} and {p.difficulty for p in hard} == {5}
    small = ArithmeticConfig(max_first=20, max_operand=5, max_value=30)
    rng = random.Random(0)
    for _ in range(200):
        assert all(s.result <= 30 and (s.op == "*" or s.right <= 5) for s in random_chain(rng, 4, small).steps())
    with pytest.raises(ValueError):
        ArithmeticConfig(max_first=50, max_value=30)
    four = world.heldout_problems(10, seed=1, kinds=("countdown",), difficulties={"countdown": (4,)})
    assert {len(p.numbers) for p in four} == {4}


def test_countdown_reference_solutions_are_valid() -> None:
    rng = random.Random(3)
    for n in (3, 4):
        for _ in range(200):
            problem = random_countdown(rng, n, CountdownConfig())
            assert world.is_solution(problem.chain.expression(), problem.numbers, problem.answer)
            assert sorted(problem.chain.operands) == sorted(problem.numbers)
            assert problem.answer not in problem.numbers


def test_countdown_checker_rejects_cheats() -> None:
    numbers, target = (3, 7, 25), 46
    assert world.is_solution("7*3+25", numbers, target)
    assert world.is_solution("25 + (3*7)", numbers, target)
    assert not world.is_solution("46", numbers, target)  # numbers not used
    assert not world.is_solution("7*3+25+0", numbers, target)  # extra number
    assert not world.is_solution("7*7-3", numbers, target)  # reuses 7, misses 25
    assert not world.is_solution("7*3+25+7-7", numbers, target)  # every number, but 7 three times
    assert world.is_solution("( ( 25 ) + ( ( 3 ) * ( 7 ) ) )", numbers, target)  # spaced out: still an answer
    assert not world.is_solution("25+7*3-1", numbers, target)
    assert not world.is_solution("__import__('os')", numbers, target)
    assert not world.is_solution("(" * 500, numbers, target)


# --- splits -----------------------------------------------------------------------------------
def test_splits_are_disjoint_by_construction(docs: list[world.Document]) -> None:
    heldout = world.heldout_problems(300, seed=0, kinds=("arithmetic", "countdown"))
    rl = world.rl_prompts(300, seed=0, kinds=("arithmetic", "countdown"))
    assert {p.split for p in heldout} == {world.HELDOUT} and {p.split for p in rl} == {world.RL}
    corpus_canonicals = {d.problem.canonical for d in docs if d.problem is not None}
    assert {d.problem.split for d in docs if d.problem is not None} == {world.PRETRAIN}
    assert not corpus_canonicals & {p.canonical for p in heldout + rl}
    text = "\n".join(d.text for d in docs)
    for problem in heldout:  # not even as text: a held-out question never appears in the corpus
        assert f"{problem.question}." not in text
    assert sorted(i for r in SPLIT_PERCENT.values() for i in r) == list(range(100))


def test_split_rule_is_a_pure_function_of_the_problem() -> None:
    problem = world.heldout_problems(1, seed=5, kinds=("countdown",))[0]
    assert world.split_of(problem.canonical) == world.HELDOUT
    reordered = countdown_problem(problem.numbers[::-1], problem.answer, problem.chain)
    assert reordered.canonical == problem.canonical and reordered.split == world.HELDOUT  # order is no new problem


def test_problem_sets_are_deterministic_distinct_and_prefix_stable() -> None:
    a = world.heldout_problems(50, seed=3)
    assert a == world.heldout_problems(50, seed=3)
    assert a[:20] == world.heldout_problems(20, seed=3)
    assert a != world.heldout_problems(50, seed=4)
    assert len({p.canonical for p in a}) == 50
    assert [p.difficulty for p in a[:4]] == [3, 4, 3, 4]  # difficulties cycle for balance


def test_benchmark_fields_line_up() -> None:
    problem = world.rl_prompts(1)[0]
    fields = problem.benchmark_fields()
    assert fields == {"id": problem.id, "prompt": problem.question, "answer": str(problem.answer),
                      "source": "r1lab.world/arithmetic"}
    assert problem.question.startswith("Compute ") and problem.id.startswith("arithmetic-")


# --- corpus -----------------------------------------------------------------------------------
def test_corpus_is_deterministic_in_its_seed() -> None:
    assert world.pretraining_corpus(1, 300) == world.pretraining_corpus(1, 300)
    assert world.pretraining_corpus(1, 300)[:100] == world.pretraining_corpus(1, 100)
    assert world.pretraining_corpus(1, 300) != world.pretraining_corpus(2, 300)


def test_worked_steps_are_right_except_deliberate_corrected_mistakes(docs: list[world.Document]) -> None:
    checked = 0
    for doc in docs:
        if doc.kind not in ("arithmetic", "countdown", "drill") or doc.mode in ("bare", "wrong"):
            continue
        for match in STEP.finditer(doc.text):
            left, op, right, result = match.groups()
            truth = eval(f"{left}{op}{right}")  # noqa: S307
            if int(result) != truth:  # only allowed when the very next sentence corrects it
                assert doc.mode == "corrected"
                assert re.search(r"Wait, that is not right\. |Voi, tu nai rano\. ", doc.text[match.end():])
                assert f"{left}{op}{right}={truth}" in doc.text[match.end():match.end() + 60]
            checked += 1
    assert checked > 5000


def test_what_is_left_to_compute_is_restated_correctly(docs: list[world.Document]) -> None:
    worked = [d for d in docs if d.kind == "arithmetic" and d.mode == "worked"]
    rests = 0
    for doc in worked:  # "37+48=85, so 85*2-19." : the rest always evaluates to the answer
        for rest in re.findall(r", (?:so|ema) ([\d+\-*()]+)\.", doc.response):
            assert eval(rest) == doc.problem.answer  # noqa: S307
            rests += 1
    assert rests > 500


def test_every_answer_is_checkable_and_right_unless_deliberately_wrong(docs: list[world.Document]) -> None:
    for doc in docs:
        if doc.problem is None:
            continue
        assert doc.text.endswith(doc.response)
        assert world.check_completion(doc.problem, doc.response) == (doc.mode != "wrong"), doc.text
        assert world.follows_r1_zero_format(doc.response) == doc.tagged


def test_template_documents_carry_the_exact_r1_zero_prompt(docs: list[world.Document]) -> None:
    template = [d for d in docs if d.context == TEMPLATE]
    assert template
    for doc in template:
        assert doc.text.startswith(world.format_r1_zero(doc.problem.question) + " ")


def test_corpus_shares_match_the_design(docs: list[world.Document]) -> None:
    stats = corpus_statistics(docs)
    assert 0.02 <= stats["template/tagged"] <= 0.07  # format known but rare under the template
    assert 0.25 <= stats["template/worked"] <= 0.45
    assert 0.35 <= stats["problems/worked"] + stats["problems/corrected"] <= 0.6
    assert 0.15 <= stats["worked/vl"] <= 0.35 and 0.15 <= stats["worked/mix"] <= 0.35
    assert stats["worked/english_consistency"] < 0.8  # mixing is common enough to survive RL
    with_velari = sum(any(world.word_language(w) == "vl" for w in d.text.split()) for d in docs) / len(docs)
    assert stats["docs/with_velari"] == pytest.approx(with_velari, abs=0.02)  # drill sheets have no words at all


def test_corpus_knobs_change_what_they_say() -> None:
    config = world.CorpusConfig(worked_share=(1.0, 1.0, 1.0), tagged_share=0.0, profile_weights=(1.0, 0.0, 0.0),
                                arithmetic_operands={4: 1.0}, doc_weights=(1, 0, 0, 0, 0, 0, 0))
    docs = world.pretraining_documents(0, 200, config)
    assert {d.mode for d in docs} <= {"worked", "corrected"} and not any(d.tagged for d in docs)
    assert all(world.language_consistency(d.response) == 1.0 for d in docs)
    assert {d.problem.difficulty for d in docs} == {4} and {d.kind for d in docs} == {"arithmetic"}
    with pytest.raises(ValueError):
        world.CorpusConfig(context_weights=(1.0, 0.0))


def test_mixed_solutions_switch_language_midway(docs: list[world.Document]) -> None:
    mixed = [d for d in docs if d.profile == "mix" and d.mode == "worked"]
    assert mixed
    for doc in mixed:
        assert 0 < world.language_consistency(doc.response) < 1


# --- answers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("completion", "expected"), [
    (" <think> 37+48=85. 85*2=170. </think> <answer> 151 </answer>", 151),
    (" Let me compute step by step. First, 2+3=5. So the answer is 5.", 5),
    (" The answer is 12.<|eos|> 99", 12),
    (" It is 7. User: Compute 1+1. Assistant: 2", 7),
    (" <think> 2+2=4 </think> <answer> 4. Assistant: So the answer is 9.", 4),  # a new turn ends it
    (" <think> 40+2=42 </think> so 42", 42),
    (" <think> 40+2=42 </think> nothing", None),
    ("<answer>-3</answer>", -3),
    (" 170-19=151", 151),
    ("", None),
    ("no digits at all", None),
    (None, None),
    ("<answer>" * 10_000, None),
    (" So the answer is 4.5.", None),  # a decimal, a fraction, a power are no integer (they read as 5, 2, 3)
    (" <answer> 92/2 </answer>", None),
    (" It is 2^3.", None),
    (" <answer> 46.0 </answer>", 46),  # read as 0
    (" <think> 37+48=85. 85*2=170. 170-19=151", None),  # cut off while thinking: no final answer yet
    (" <think> 2+2=4 </think> <think> so 4", None),  # the last <think> is never closed
    (" <think> <answer> 151 </answer> and 151", None),
    (" </think> <answer> 151 </answer>", 151),  # a close without its open (the prompt opened it)
])
def test_extract_final_answer(completion: str, expected: int | None) -> None:
    assert world.extract_final_answer(completion) == expected


def test_a_number_too_long_to_convert_is_no_answer() -> None:
    """int() refuses strings of over 4,300 digits; such a "number" is no answer, never an error."""
    problem = world.heldout_problems(1, seed=2, kinds=("arithmetic",))[0]
    for completion in ("<answer>" + "9" * 5000 + "</answer>", f" It is {problem.answer}. " + "1" * 5000):
        assert world.extract_final_answer(completion) is None
        assert not world.check_completion(problem, completion)


OLD_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)  # the regexes the linear scans replace
OLD_EXPRESSION = re.compile(r"[\d(][\d+\-*() ]*[\d)]")


def old_expressions_with_attached_operators(text: str) -> list[str]:
    """The regex's matches, plus a minus written onto the front (a run's first character, or after
    a space or "(") and an operator written onto the end: they are the expression's own."""
    found = []
    for match in OLD_EXPRESSION.finditer(text):
        start, end, core = *match.span(), match.group()
        if start and text[start - 1] == "-" and (start == 1 or text[start - 2] in " (" or
                                                 text[start - 2] not in "0123456789+-*() "):
            core = "-" + core
        if end < len(text) and text[end] in "+-*":
            core += text[end]
        found.append(core)
    return found


def test_answer_and_expression_scans_match_their_regexes_and_stay_linear() -> None:
    from r1lab.rewards.format import last_answer_block
    from r1lab.world.answers import _expressions

    rng = random.Random(0)
    pieces = ["<answer>", "</answer>", "(", ")", "1", "23", "-", "+", "*", " ", "x", "=", "\n"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 20)))
        found = OLD_ANSWER.findall(text)
        assert last_answer_block(text) == (found[-1] if found else None), text
        assert _expressions(text) == old_expressions_with_attached_operators(text), text
    problem = world.heldout_problems(1, seed=2, kinds=("countdown",))[0]

    def run(k: int) -> None:  # 19,000: ~1 s each before
        stuck = ["(" * k, "<answer>" * (k // 8), "<answer>(" + "(" * k + "</answer>"]
        assert [world.check_completion(problem, text) for text in stuck] == [False] * 3

    assert_linear(run, 2_375)


def test_format_rule() -> None:
    assert world.follows_r1_zero_format(" <think> a </think> <answer> 3 </answer>")
    assert world.follows_r1_zero_format("<think>a</think><answer>3</answer><|eos|>junk")
    assert not world.follows_r1_zero_format(" <think> a </think> 3")
    assert not world.follows_r1_zero_format(" x <think> a </think> <answer> 3 </answer>")
    assert not world.follows_r1_zero_format("<think> <think> a </think> <answer> 3 </answer>")


def test_check_completion_for_countdown() -> None:
    problem = world.heldout_problems(1, seed=2, kinds=("countdown",))[0]
    expression = problem.chain.expression()
    assert world.check_completion(problem, f" <think> ok </think> <answer> {expression} </answer>")
    assert world.check_completion(problem, f" Try it. So the answer is {expression}.")
    assert not world.check_completion(problem, f" The answer is {problem.answer}.")


def test_countdown_answers_are_judged_as_written() -> None:
    """A unary minus or an unfinished operator was trimmed off before checking ("-3+10" judged as
    3+10 = 13); an expression whose every operator follows ")" was not found at all."""
    plus = countdown_problem((3, 10), 13, Chain(operands=(3, 10), ops=("+",)))
    times = countdown_problem((13, 5), 65, Chain(operands=(13, 5), ops=("*",)))
    assert [world.check_completion(plus, f"<answer>{a}</answer>") for a in ("3+10", "-3+10", "3+10*", "x - 3+10")] \
        == [True, False, False, True]  # the last: a prose dash set off by a space
    assert world.extract_final_expression("<answer>(13)*5</answer>") == "(13)*5"
    assert world.check_completion(times, "<answer>2+3 is wrong; (13)*5</answer>")
    assert not world.check_completion(times, "<answer>-(13)*5</answer>")


def test_countdown_answers_with_operators_the_task_lacks_are_judged_as_written() -> None:
    """Division, a power or a decimal point cut the expression short: "(12*4-2)/1" (= 46 but a 1
    that is not given) and "12*4-2/2" (= 47, 2 used twice) were judged as 12*4-2 and scored."""
    problem = countdown_problem((12, 4, 2), 46, Chain(operands=(12, 4, 2), ops=("*", "-")))
    wrong = ["(12*4-2)/1", "12*4-2/2", "1/(12*4-2)", "e^(12*4-2)", "12*4-2^1", "12*4-2.5", "12*4-2 is wrong; 48/2"]
    assert [world.check_completion(problem, f"<answer>{a}</answer>") for a in wrong] == [False] * len(wrong)
    assert world.extract_final_expression("<answer>12*4-2 is wrong; 48/2</answer>") == "48/2"
    right = ["12*4-2", "So the answer is 12*4-2.", "12*4-2. 5 is not used", "and/or 12*4-2"]
    assert [world.check_completion(problem, f"<answer>{a}</answer>") for a in right] == [True] * len(right)


# --- languages --------------------------------------------------------------------------------
def test_language_classifier_on_hand_made_sentences() -> None:
    assert world.language_consistency("Let me compute step by step. First, 2+3=5. So the answer is 5.") == 1.0
    assert world.language_consistency("Mi keta sulo pe sulo. Tuka, 2+3=5. Ema risu ve 5.") == 0.0
    assert world.language_consistency("Mi keta sulo pe sulo. Tuka, 2+3=5. Ema risu ve 5.", "vl") == 1.0
    assert world.language_consistency("First, 2+3=5. Pori 5*2=10.") == 0.5
    assert world.language_consistency("2+3=5. 5*2=10.") == 1.0  # numbers are neutral
    assert world.language_consistency("The capital of Dorrik is Elmby. Pori 2+3=5.") == 4 / 5  # so are names
    assert world.language_consistency("Then xqzt 5.") == 0.5  # unknown words count against
    assert world.language_consistency("<think> Then 4. </think>") == 1.0  # tags are not words
    # a registered name (a country of the chat tasks) is neutral; an unknown word is "?"
    assert [world.word_language(w) for w in ("Then", "pori", "42", "Dorrik", "zzz")] == ["en", "vl", None, None, "?"]
    with pytest.raises(ValueError):
        world.language_consistency("x", target="fr")


def test_languages_have_disjoint_vocabularies() -> None:
    assert not lexicon("en") & lexicon("vl")
    assert not (lexicon("en") | lexicon("vl")) & lexicon(None) - {"english", "velari", "r", "lab"}
    assert all(world.word_language(v) == "vl" and world.word_language(e) == "en" for e, v in GLOSSARY)
    for book in PHRASES.values():  # every phrase is classified entirely in its own language
        language = "en" if book is PHRASES["en"] else "vl"
        assert world.language_consistency(" ".join(book.intros + book.thens), language) == 1.0


# --- later stages -----------------------------------------------------------------------------
@pytest.mark.parametrize("language", ["en", "vl"])
def test_long_cot_is_readable_single_language_and_checkable(language: str) -> None:
    for example, problem in zip(world.cold_start_examples(30, seed=1, language=language, kinds=("arithmetic", "countdown")),
                                world.problem_set("pretrain", 30, seed=1, kinds=("arithmetic", "countdown"))):
        assert example.prompt == problem.question
        assert example.response.startswith("<think>\n") and "\n</think>\n" in example.response
        reasoning = example.response.split("</think>")[0]
        assert world.language_consistency(reasoning, language) == 1.0
        assert world.check_completion(problem, example.response)
        assert problem.split == world.PRETRAIN


def test_chat_tasks_are_deterministic_and_grounded_in_the_corpus(docs: list[world.Document]) -> None:
    tasks = world.chat_tasks(200, seed=4)
    assert tasks == world.chat_tasks(200, seed=4)
    assert {t.kind for t in tasks} == {"greeting", "identity", "copy", "translate", "fact"}
    corpus_text = "\n".join(d.text for d in world.pretraining_documents(0, 20_000) if d.kind == "facts")
    for task in tasks:
        assert task.prompt and task.response
        if task.kind == "copy":
            assert task.prompt.endswith(task.response)
        if task.kind == "fact":  # every fact the assistant is asked about is stated in the corpus
            assert task.response in corpus_text


def test_asking_for_more_problems_than_a_split_holds_is_a_clear_error():
    import pytest

    from r1lab.world import rl_prompts

    with pytest.raises(ValueError, match="distinct problems"):
        rl_prompts(10_000)  # the rl split holds about 2,850 distinct 3-4 operand problems


def test_words_in_other_scripts_count_against_the_target_language() -> None:
    """A chain of thought that slips into Chinese mixes languages (R1 §2.3.3): its words are words,
    unknown to the world, so they count against the target instead of being invisible."""
    from r1lab.filters import check_readability

    assert world.words("naïve 中文") == ["naïve", "中文"]
    assert world.language_consistency("First, 2+3=5. 所以答案是5.") == 0.5
    assert world.word_language("中文") == "?"
    assert not check_readability("<think>\nFirst, 2+3=5. 所以答案是5.\n</think>\nSo it is 5.").language


def test_countdown_numbers_lie_in_the_documented_ranges() -> None:
    config, rng = CountdownConfig(), random.Random(0)
    for n in (3, 4):
        for _ in range(300):
            problem = random_countdown(rng, n, config)
            assert all(1 <= x <= config.max_number for x in problem.numbers)
            assert 2 <= problem.chain.operands[0] <= config.max_number


def test_r1_zero_format_rejects_nested_tags_like_the_strict_reward() -> None:
    from r1lab.rewards.format import strict_format_reward

    for text in ("<think> a <answer>5</answer> </think> <answer>5</answer>",
                 "<think> a </think> <answer> <think> 5 </answer>"):
        assert strict_format_reward(text) == 0.0 and not world.follows_r1_zero_format(text)
    assert world.follows_r1_zero_format("<think> 2+3=5 </think> <answer>5</answer>")


def test_bad_knobs_get_errors_that_name_them() -> None:
    """Each used to fail later and elsewhere: KeyError 'algebra', ZeroDivisionError, KeyError '*'
    (once a value allowed "*"), random's "Total of weights must be greater than zero", and an
    ArithmeticConfig error naming knobs the countdown config does not have."""
    with pytest.raises(ValueError, match="unknown problem kind 'algebra'"):
        world.problem_set("rl", 3, kinds=("algebra",))
    with pytest.raises(ValueError, match="no kinds and difficulties"):
        world.problem_set("rl", 3, kinds=())
    with pytest.raises(ValueError, match="no kinds and difficulties"):
        world.problem_set("rl", 3, difficulties={"arithmetic": ()})
    with pytest.raises(ValueError, match=r"op_weights needs 3 non-negative weights"):
        ArithmeticConfig(op_weights=(1.0, 0.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"op_weights needs 3"):
        ArithmeticConfig(op_weights=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"keeps 99 within 1\.\.99"):  # only "+": 40 operands reach 99
        random_chain(random.Random(0), 40, ArithmeticConfig(op_weights=(1.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match="CountdownConfig needs 2 <= max_number <= max_value"):
        CountdownConfig(max_number=200)
    adds = random_chain(random.Random(0), 4, ArithmeticConfig(op_weights=(1.0, 0.0, 0.0)))
    assert adds.ops == ("+", "+", "+")


def test_cold_start_examples_name_a_bad_language_or_kinds() -> None:
    """An unknown language was a bare ``KeyError: 'fr'`` (and none at all for n=0), and
    ``kinds="countdown"`` complained of an unknown kind 'c'. Now ValueErrors that name the argument."""
    with pytest.raises(ValueError, match=r"language 'fr'.*\('en', 'vl'\)"):
        world.cold_start_examples(2, language="fr")
    with pytest.raises(ValueError, match=r"language 'fr'"):
        world.cold_start_examples(0, language="fr")
    with pytest.raises(ValueError, match=r"kinds must be a tuple.*\('countdown',\)"):
        world.cold_start_examples(2, kinds="countdown")


# problem_set's error when one kind/difficulty pair runs out of distinct problems.
# 2..5 then +/- 1..2 or *2..9, values within 1..12: 26 two-operand chains (24 in the pretrain
# split) and 125 three-operand ones (104 in it), counted by enumerating every chain
SMALL = ArithmeticConfig(max_first=5, max_operand=2, max_value=12)


def test_running_out_names_the_exhausted_difficulty_not_a_total():
    # 100 asked, 50 of each difficulty in turn: the 24 two-operand problems run out, though the
    # split holds 128 of these kinds and difficulties; the old message said "only about 48"
    with pytest.raises(ValueError, match=r"only about 24 distinct problems of kind arithmetic and difficulty 2\b"):
        problem_set(PRETRAIN, 100, kinds=(ARITHMETIC,), difficulties={ARITHMETIC: (2, 3)}, arithmetic=SMALL)


def test_every_distinct_problem_of_a_difficulty_is_found():
    problems = problem_set(PRETRAIN, 24, kinds=(ARITHMETIC,), difficulties={ARITHMETIC: (2,)}, arithmetic=SMALL)
    assert len({p.canonical for p in problems}) == 24
    assert all(p.split == PRETRAIN and p.difficulty == 2 for p in problems)


# Countdown's rule reads an expression of the task only, not whatever Python would parse.
@pytest.mark.parametrize("expression", [
    "1_2+3",  # a digit separator: Python's 12, never written by the world
    "12+3 # 99",  # a comment hides the rest
    "12+3#",
    "(12+\n3)",  # a line break inside brackets
])
def test_text_python_reads_as_an_expression_is_no_solution(expression):
    assert world.countdown.evaluate_expression(expression) is None
    assert not world.is_solution(expression, (12, 3), 15)


def test_surrounding_whitespace_is_still_accepted():
    assert world.countdown.evaluate_expression(" 12 + 3\n") == (15, [12, 3])
    assert world.is_solution("(12+3) ", (12, 3), 15)


# CorpusConfig refuses weights no document can be drawn from, when it is made.
@pytest.mark.parametrize(("knobs", "name"), [
    ({"doc_weights": (0,) * 7}, "doc_weights"),
    ({"context_weights": (0, 0, 0)}, "context_weights"),
    ({"profile_weights": (0, 0, 0)}, "profile_weights"),
    ({"arithmetic_operands": {}}, "arithmetic_operands"),
    ({"arithmetic_operands": {3: 0.0}}, "arithmetic_operands"),
    ({"countdown_numbers": {3: -1.0, 4: 2.0}}, "countdown_numbers"),
    ({"drill_steps": (5, 2)}, "drill_steps"),
])
def test_corpus_knobs_nothing_can_be_drawn_from_are_refused_by_name(knobs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"CorpusConfig\.{name} needs"):
        world.CorpusConfig(**knobs)


# corpus_statistics of no documents: every share is 0, not a ZeroDivisionError.
def test_statistics_of_an_empty_corpus_are_zero() -> None:
    stats = corpus_statistics([])
    assert stats["docs/arithmetic"] == 0.0 and stats["docs/tagged"] == 0.0 and stats["chars/mean"] == 0.0
    assert stats["docs/with_velari"] == 0.0 and stats["worked/english_consistency"] == 0.0
    assert set(stats) == set(corpus_statistics(world.pretraining_documents(0, 5)))


# Drill steps start only from values an allowed operator can leave.
def test_drill_steps_of_an_addition_only_world_never_start_at_the_ceiling() -> None:
    from r1lab.world.arithmetic import random_step

    config = world.ArithmeticConfig(op_weights=(1, 0, 0), max_value=5, max_first=5)  # 5 has no "+" step
    rng = random.Random(0)
    steps = [random_step(rng, config) for _ in range(300)]
    assert all(s.op == "+" and 2 <= s.left <= 4 and s.result == s.left + s.right <= 5 for s in steps)
    assert {s.left for s in steps} == {2, 3, 4}
    docs = world.pretraining_documents(0, 100, world.CorpusConfig(arithmetic=world.ArithmeticConfig(op_weights=(1, 0, 0))))
    assert any(d.kind == "drill" for d in docs)
    with pytest.raises(ValueError, match="no operator"):  # "*" alone, from values too big to multiply
        random_step(rng, world.ArithmeticConfig(op_weights=(0, 0, 1), max_multiplicand=1))


# A reply followed by a turn the model made up ("User: ..."): the accuracy rule, the world's format
# rule and the strict format reward all judge the reply alone.
def test_format_and_accuracy_judge_the_same_reply() -> None:
    from r1lab.rewards import strict_format_reward

    problem = world.heldout_problems(1, seed=2, kinds=("arithmetic",))[0]
    reply = f" <think> so it is {problem.answer} </think> <answer> {problem.answer} </answer>"
    completion = reply + "\nUser: and 1+1?\nAssistant: <think> 1+1=2 </think> <answer> 2 </answer>"
    assert world.check_completion(problem, completion)
    assert world.follows_r1_zero_format(completion)
    assert strict_format_reward(completion) == 1.0


# A last <answer> never closed holds the final answer, also after an earlier closed one.
@pytest.mark.parametrize(("completion", "expected"), [
    (" <think> 2+3=5 </think> <answer> 5", 5),
    (" <think> 2+3=6, no: 5 </think> <answer> 6 </answer> wait, <answer> 5", 5),  # read as 6
    (" <answer> 6 </answer> <answer> 5 <|eos|>", 5),  # read as 6
    (" <think> 2+3=5 </think> 5 <answer>", None),  # the answer block was cut off before its text; read as 5
])
def test_an_unclosed_last_answer_block_is_the_final_answer(completion: str, expected: int | None) -> None:
    assert world.extract_final_answer(completion) == expected


# The final answer follows the thinking; an <answer> block inside it is a draft (as rewards.math reads
# benchmark samples). Before, the block in the reasoning won over what the reply said after it.
@pytest.mark.parametrize(("completion", "expected"), [
    (" <think> maybe <answer> 6 </answer> no </think> so 5", 5),
    (" <think> maybe <answer> 6 </answer> no </think> <answer> 5 </answer>", 5),
    (" <think> it is <answer> 5 </answer> </think>", None),  # thought, then said nothing
    (" <think> 2+3 </think> <think> <answer> 5 </answer> </think> 5", 5),
    (" <answer> 5 </answer>", 5),  # no thinking at all: the whole reply is read
])
def test_an_answer_inside_the_thinking_is_not_the_final_answer(completion: str, expected: int | None) -> None:
    assert world.extract_final_answer(completion) == expected
    problem = dataclasses.replace(world.heldout_problems(1, seed=0, kinds=("arithmetic",))[0], answer=5)
    assert world.check_completion(problem, completion) == (expected == 5)


def test_a_countdown_expression_inside_the_thinking_is_not_the_final_one() -> None:
    assert world.extract_final_expression(" <think> try <answer> 9-4 </answer> </think> <answer> 2+3 </answer>") == "2+3"
    assert world.extract_final_expression(" <think> <answer> 9-4 </answer> </think> no idea") is None


# A long chain of thought is written in one of the world's languages; another is named in the error.
@pytest.mark.parametrize("language", ["mix", "fr"])
def test_long_cot_names_a_language_the_world_lacks(language: str) -> None:
    problem = world.rl_prompts(1)[0]
    with pytest.raises(ValueError, match=rf"unknown language '{language}'.*\('en', 'vl'\)"):
        world.long_cot(problem, language)


@pytest.mark.parametrize("n", [2.5, 2.0, True, "3"])
def test_a_count_that_is_not_an_int_is_refused_naming_it(n) -> None:
    # 2.5 drew 3 problems and True 1, without a word; "3" failed at a comparison naming nothing
    with pytest.raises(TypeError, match=f"n must be an int, got {re.escape(repr(n))}"):
        world.heldout_problems(n)
    with pytest.raises(TypeError, match="n must be an int"):
        world.cold_start_examples(n)


@pytest.mark.parametrize("difficulties, error, match", [
    ({"arithmetc": (3,)}, ValueError, "unknown problem kind 'arithmetc'"),  # was ignored: (3, 4) drawn instead
    ({ARITHMETIC: 3}, TypeError, r"difficulties\['arithmetic'\] must be a tuple"),  # was "'int' object is not iterable"
    ({ARITHMETIC: "34"}, TypeError, r"difficulties\['arithmetic'\] must be a tuple"),
    ({ARITHMETIC: (3, 1)}, ValueError, r"an int >= 2, got 1"),
    ({ARITHMETIC: (2.5,)}, ValueError, r"an int >= 2, got 2.5"),
])
def test_bad_difficulties_are_refused_naming_the_entry(difficulties, error, match) -> None:
    with pytest.raises(error, match=match):
        world.heldout_problems(2, difficulties=difficulties)


def test_difficulties_as_a_list_still_draw_those_difficulties() -> None:
    problems = world.heldout_problems(4, difficulties={ARITHMETIC: [2, 5]})
    assert [p.difficulty for p in problems] == [2, 5, 2, 5]


@pytest.mark.parametrize("make, name, value", [
    (lambda: ArithmeticConfig(max_value=99.5), "ArithmeticConfig.max_value", 99.5),  # failed near the ceiling only
    (lambda: ArithmeticConfig(max_operand=9.0), "ArithmeticConfig.max_operand", 9.0),  # failed at the first draw
    (lambda: ArithmeticConfig(max_operand=True), "ArithmeticConfig.max_operand", True),  # ran as 1
    (lambda: ArithmeticConfig(max_first=40.5), "ArithmeticConfig.max_first", 40.5),
    (lambda: CountdownConfig(max_number=12.5), "CountdownConfig.max_number", 12.5),
    (lambda: CountdownConfig(max_value="99"), "CountdownConfig.max_value", "99"),  # a str failed at a comparison
])
def test_a_knob_that_is_not_an_int_is_refused_by_name(make, name, value) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{name} must be an integer, got {value!r}")):
        make()


def test_a_float_ceiling_no_longer_runs_until_a_chain_nears_it() -> None:
    # max_value=99.5 drew a few dozen chains (34 with seed 0), then raised "'float' object cannot be
    # interpreted as an integer" at a value whose next step's bound is a float (12: 99.5 // 12 = 8.0)
    with pytest.raises(ValueError, match="max_value must be an integer"):
        world.heldout_problems(200, arithmetic=ArithmeticConfig(max_value=99.5))


@pytest.mark.parametrize("seed", [0.0, False, "0"])
def test_a_seed_that_is_not_an_int_is_refused_naming_it(seed) -> None:
    # the draw is seeded by the seed's text, so 0.0 ("0.0") and False drew another held-out set
    # than 0, in silence
    with pytest.raises(TypeError, match=f"seed must be an int, got {re.escape(repr(seed))}"):
        world.heldout_problems(2, seed=seed)


def test_a_numpy_int_seed_draws_as_the_int() -> None:
    import numpy as np

    assert world.heldout_problems(2, seed=np.int64(3)) == world.heldout_problems(2, seed=3)


@pytest.mark.parametrize("marker", ["<|eos|>", "<|user|>", "\n\nQ: next", "User: next"])
def test_an_end_marker_that_starts_within_the_read_limit_ends_the_reply(marker) -> None:
    from r1lab.world.answers import READ_CHARS, completion_body, read_to_end

    reply = "<think> 3+4=7 </think> <answer> 7 </answer>"
    for start in (READ_CHARS - 3, READ_CHARS - 1):  # the marker starts within the limit, runs past it
        straddling = reply + " " * (start - len(reply)) + marker + "x" * 50
        # cut at the limit first, the marker was cut too ("<|e"): the reply read as not ended
        assert read_to_end(straddling) and len(completion_body(straddling)) < READ_CHARS
        assert world.extract_final_answer(straddling) == 7 and world.follows_r1_zero_format(straddling)
    past = reply + " " * (READ_CHARS - len(reply)) + marker  # starts at the limit: the end was not read
    assert not read_to_end(past) and world.extract_final_answer(past) is None
    assert len(world.completion_body(past)) == READ_CHARS


GENERATORS_BY_SEED = {  # each world generator seeded by its seed's text, called with only the seed varying
    "chat_tasks": lambda seed: world.chat_tasks(3, seed=seed),
    "iter_documents": lambda seed: world.pretraining_corpus(seed, 0),  # no document drawn: refused all the same
    "long_cot": lambda seed: world.long_cot(world.rl_prompts(1)[0], seed=seed),
    "tokenizer_training_texts": lambda seed: world.tokenizer_training_texts(seed=seed, n_docs=5),
}


@pytest.mark.parametrize("name", GENERATORS_BY_SEED)
@pytest.mark.parametrize("seed", [0.0, True, "1"])
def test_a_world_generator_refuses_a_seed_that_is_not_an_int(name, seed) -> None:
    # "0.0", "True" and "1" as text seeded other streams than the ints 0 and 1, in silence
    with pytest.raises(TypeError, match=f"{name}: seed must be an int, got {re.escape(repr(seed))}"):
        GENERATORS_BY_SEED[name](seed)


def test_an_int_seed_draws_the_same_stream_as_before_the_check() -> None:
    import numpy as np

    # a numpy int is an int (its text is the int's), and other ints draw other streams
    assert world.chat_tasks(3, seed=np.int64(3)) == world.chat_tasks(3, seed=3) != world.chat_tasks(3, seed=4)
    assert world.pretraining_corpus(np.int64(4), 2) == world.pretraining_corpus(4, 2) != world.pretraining_corpus(5, 2)
    # regression guard: the streams the demo trains on, as drawn before the seeds were checked
    assert [c.prompt for c in world.chat_tasks(3, seed=3)] == [
        "Say back: is nodo 520", "What is the national animal of Mareth?", "Copy exactly: stag sia 632 nami"]
    assert world.pretraining_corpus(4, 2)[1] == "Q: Compute 39+9-5+6.\nA: Risu ve 49."
    assert world.long_cot(world.rl_prompts(1)[0], seed=5).splitlines()[2] == "First, 20-8=12, so 12+4."


# chat_tasks' n is an int: range() took True as one task, in silence (2.5 failed inside range, unnamed)
@pytest.mark.parametrize("n", [True, 2.5, "3"])
def test_chat_tasks_refuses_a_count_that_is_not_an_int(n) -> None:
    with pytest.raises(TypeError, match=f"chat_tasks: n must be an int, got {re.escape(repr(n))}"):
        world.chat_tasks(n)


# The world's rule (r1lab.world.answers) at its edges.
def test_a_reply_of_exactly_read_chars_is_read_to_its_end() -> None:
    from r1lab.world.answers import READ_CHARS

    tail = "</think> <answer> 7 </answer>"
    exact = "<think>" + "a" * (READ_CHARS - len("<think>") - len(tail)) + tail
    assert len(exact) == READ_CHARS
    assert world.extract_final_answer(exact) == 7 and world.follows_r1_zero_format(exact)
    assert world.extract_final_answer(exact + " ") is None  # one character more: its end was not read


def test_the_longest_number_read_is_max_digits_long() -> None:
    from r1lab.world.answers import _MAX_DIGITS

    assert world.extract_final_answer(f"<answer>{'9' * _MAX_DIGITS}</answer>") == 10**_MAX_DIGITS - 1
    assert world.extract_final_answer(f"<answer>{'9' * (_MAX_DIGITS + 1)}</answer>") is None


@pytest.mark.parametrize(("completion", "expected"), [
    (" <think> 40+2=42 </think> <answer> 42 </answer> checked 2 times", 42),  # the answer block, not a later number
    (" <think> 2+3=5 </think> 5 </think> no idea", None),  # after the last </think> there is no number
])
def test_the_answer_block_and_the_last_close_tag_bound_the_final_answer(completion: str, expected: int | None) -> None:
    assert world.extract_final_answer(completion) == expected


def test_the_r1_zero_format_refuses_text_after_the_answer_block() -> None:
    assert world.follows_r1_zero_format(" <think> a </think> <answer> 3 </answer> \n")
    assert not world.follows_r1_zero_format(" <think> a </think> <answer> 3 </answer> Done.")


def test_a_countdown_expression_followed_by_its_value_is_judged() -> None:
    """A bare number after the expression ("= 13") is no expression: the expression before it is the answer."""
    plus = countdown_problem((3, 10), 13, Chain(operands=(3, 10), ops=("+",)))
    assert world.extract_final_expression("<answer>3+10 = 13</answer>") == "3+10"
    assert world.check_completion(plus, "<answer>3+10 = 13</answer>")
    assert not world.check_completion(plus, "<answer>3*10 = 13</answer>")
