"""Evaluation (r1lab.stages.evaluate, r1lab.benchmarks): metrics against hand-computed values,
the `r1lab eval` command, and the checker's proof on the real GSM8K, MATH-500 and AIME files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import r1lab
from r1lab import cli
from r1lab.benchmarks import Problem, load_problems
from r1lab.judges import final_answer
from r1lab.stages.evaluate import SCORING_VERSION, majority_vote, pass_at_k, read_completions, score_completions

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark copies not found at {DATA} (shared/ beside the repo)")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def r1_completion(reasoning: str, answer: str) -> str:
    """What a released R1 model writes: reasoning in <think>, then the boxed answer."""
    return f"<think>\n{reasoning}\n</think>\n\nThe final answer is $\\boxed{{{answer}}}$."


# --- metrics --------------------------------------------------------------------------------
@pytest.mark.parametrize("n, c, k, expected", [
    (10, 3, 1, 0.3),
    (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
    (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
    (4, 3, 2, 1.0),  # fewer than k wrong samples: some draw is always right
    (4, 0, 2, 0.0),
    (64, 1, 64, 1.0),
])
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_is_the_exact_formula_rounded_once():
    """1 - C(n-c, k) / C(n, k) computed exactly, then rounded to a float: for every small (n, c, k),
    c = 0, c = n, n = k, and n far past float's range for C(n, k); pass@1 is c / n exactly."""
    from fractions import Fraction
    from math import comb

    cases = [(n, c, k) for n in range(1, 13) for c in range(n + 1) for k in range(1, n + 1)]
    cases += [(10_000, 1, 5_000), (100_000, 3, 50_000), (2_000, 1_000, 1_000), (3_000, 0, 3_000), (10**6, 1, 1)]
    for n, c, k in cases:
        assert pass_at_k(n, c, k) == float(1 - Fraction(comb(n - c, k), comb(n, k))), (n, c, k)
    assert [pass_at_k(5, c, 1) for c in range(6)] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert pass_at_k(10**6, 1, 1) == 1e-06


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 5), (4, 1, 0), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@pytest.mark.parametrize("answers, winner", [
    (["5", "3", "5"], 0),
    (["3", "5"], 0),  # a tie goes to the first answer
    (["x", "1,000", "1000.0"], 1),  # equal numbers vote together
    ([None, None, "4"], 2),  # samples without an answer do not vote
    ([None, None], None),
])
def test_majority_vote(answers, winner):
    assert majority_vote(answers) == winner


def test_majority_vote_counts_every_correct_answer_for_the_gold():
    """Canonical forms cannot see that "0.5", "\\frac12" and "\\dfrac{1}{2}" are equal; the
    checker's verdicts can, so correct answers vote as one instead of losing to "3", "3"."""
    answers = ["0.5", "\\frac12", "3", "3", "\\dfrac{1}{2}"]
    assert majority_vote(answers) == 2
    assert majority_vote(answers, [True, True, False, False, True]) == 0
    assert majority_vote(["3", "0.5", "3"], [False, True, False]) == 0  # wrong answers still win when more
    assert majority_vote([None, "7"], [False, True]) == 1


@needs_data
def test_cons_at_k_on_a_real_math500_problem_with_equal_answers_written_differently():
    problem = next(p for p in load_problems(DATA / "math500" / "test.jsonl") if p.id == "test/counting_and_probability/282.json")
    assert problem.answer == "\\frac{1}{2}"
    samples = [r1_completion("", a) for a in ("0.5", "\\frac12", "3", "3", "\\dfrac{1}{2}")]
    score = score_completions([problem], {0: samples}).problems[0]
    assert score.correct == [True, True, False, False, True]
    assert (score.majority, score.cons_correct) == ("0.5", True)


def test_numbers_too_long_to_convert_are_scored_not_raised():
    huge = "9" * 5000  # over CPython's 4,300-digit limit on int() of a string
    samples = [r1_completion("", huge), f"<answer>{huge}</answer>", f"#### {huge}", r1_completion("", "4")]
    score = score_completions([Problem(id="0", prompt="q", answer="4", source="hand")], {0: samples}).problems[0]
    assert score.correct == [False, False, False, True] and score.majority == huge and not score.cons_correct


def test_the_generative_judge_sees_the_end_of_a_long_summary():
    """An R1 summary states its answer last; cutting it to its first 500 characters lost it."""
    summary = "We check each case in turn. " * 40 + "So the answer is $\\boxed{42}$."
    shown = final_answer(f"<think>\nlong reasoning\n</think>\n{summary}<|eos|>")
    assert len(shown) == 500 and shown.endswith("\\boxed{42}$.")


PROBLEMS = [Problem(id=str(i), prompt=f"q{i}", answer=a, source="hand") for i, a in enumerate(["4", "7", "\\frac{1}{2}"])]
SAMPLES = {
    0: [r1_completion("", "4"), r1_completion("", "4"), r1_completion("", "5"), "<think>\nI give up"],  # 2 of 4
    1: [r1_completion("", "6"), r1_completion("", "6"), r1_completion("", "7"), r1_completion("", "8")],  # 1 of 4, vote wrong
    2: [r1_completion("", "0.5"), r1_completion("", "0.50"), r1_completion("", "1/3"), "<answer>\\frac12</answer>"],  # 3 of 4
}


def test_score_completions_by_hand():
    result = score_completions(PROBLEMS, SAMPLES)
    summary = result.summary()
    assert (summary["k"], summary["n_problems"], summary["n_samples"]) == (4, 3, 12)
    assert [p.correct for p in result.problems] == [[True, True, False, False], [False, False, True, False],
                                                    [True, True, False, True]]
    assert summary["pass@1"] == pytest.approx((2 / 4 + 1 / 4 + 3 / 4) / 3)
    assert summary["pass@k"] == pytest.approx(1.0)  # n = k = 4 and every problem has a right sample
    assert summary["cons@k"] == pytest.approx(2 / 3)  # "4" right, "6" wrong, "0.5"+"0.50" right
    assert summary["no_answer"] == pytest.approx(1 / 12)
    assert [p.majority for p in result.problems] == ["4", "6", "0.5"]


def test_score_completions_with_k_below_the_sample_count():
    summary = score_completions(PROBLEMS, SAMPLES, k=2).summary()
    assert summary["pass@1"] == pytest.approx(0.5)  # pass@1 still uses all 4 samples
    assert summary["pass@k"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6) + 1.0) / 3)
    assert summary["cons@k"] == pytest.approx(2 / 3)  # votes over the first 2: [4,4] [6,6] [0.5,0.50]
    # there every problem's first-2 vote agrees with its all-samples vote; here they differ: the first 2,
    # [7, 6], tie and the first (correct) wins, while over all 4 the wrong 6 has three votes
    late = {1: [r1_completion("", a) for a in ("7", "6", "6", "6")]}
    assert [(p.majority, p.cons_correct) for p in score_completions(PROBLEMS, late, k=2).problems] == [("7", True)]
    assert [(p.majority, p.cons_correct) for p in score_completions(PROBLEMS, late, k=4).problems] == [("6", False)]


def test_a_setting_named_like_a_metric_is_refused():
    """A setting "pass@1" replaced the computed pass@1 in the summary, eval.json and eval.md."""
    from dataclasses import replace

    result = score_completions(PROBLEMS, SAMPLES, k=2)
    with pytest.raises(ValueError, match=r"settings 'pass@1', 'problems' would overwrite the summary's own values"):
        replace(result, settings={"pass@1": 1.0, "seed": 0, "problems": []})
    kept = replace(result, settings={"seed": 0})
    assert kept.summary()["pass@1"] == pytest.approx(0.5) and kept.summary()["seed"] == 0
    assert set(kept.summary()) | {"problems"} == set(kept.RESERVED) | {"seed"}  # RESERVED is every computed key


def test_score_completions_rejects_bad_k_and_indices():
    with pytest.raises(ValueError, match=r"k must be from 1 to 4 \(the fewest samples any problem has\), got 5"):
        score_completions(PROBLEMS, SAMPLES, k=5)
    with pytest.raises(ValueError, match="index 3 out of range"):
        score_completions(PROBLEMS, {3: ["\\boxed{1}"]})
    with pytest.raises(ValueError, match="no completions"):
        score_completions(PROBLEMS, {})


def test_report_formats():
    result = score_completions(PROBLEMS, SAMPLES)
    table = result.to_markdown()
    assert "| data | problems | samples | pass@1 | pass@4 | cons@4 | no answer |" in table
    assert "| hand | 3 | 12 | 50.0 | 100.0 | 66.7 | 8.3 |" in table
    document = json.loads(result.to_json())
    assert document["cons@k"] == pytest.approx(2 / 3)
    assert document["problems"][2]["answers"] == ["0.5", "0.50", "1/3", "\\frac12"]


# --- loaders ----------------------------------------------------------------------------------
def test_load_problems_formats_and_errors(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        {"question": "How many?", "answer": "2 + 3 = 5 boxes\n#### 1,250"},
        {"problem": "Find x.", "answer": "\\frac{1}{2}", "unique_id": "test/algebra/1.json"},
        {"id": 61, "problem": "AIME", "answer": "025"},
        {"prompt": "3+4-2=?", "answer": "5"},
    ])
    problems = load_problems(path)
    assert [(p.id, p.answer) for p in problems] == [
        ("0", "1250"), ("test/algebra/1.json", "\\frac{1}{2}"), ("61", "025"), ("3", "5")]
    assert problems[0].prompt == "How many?" and problems[0].source == f"{tmp_path.name}/mixed"

    (tmp_path / "bad.jsonl").write_text('{"problem": "a", "answer": "1"}\n\n{"problem": "b", "answer": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not valid JSON"):
        load_problems(tmp_path / "bad.jsonl")
    write_jsonl(tmp_path / "odd.jsonl", [{"text": "a", "answer": "1"}])
    with pytest.raises(ValueError, match=r"odd.jsonl:1: unknown format"):
        load_problems(tmp_path / "odd.jsonl")
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_problems(tmp_path / "missing.jsonl")
    (tmp_path / "aime24").mkdir()
    write_jsonl(tmp_path / "aime24" / "test.jsonl", [{"problem": "a", "answer": "1"}])
    with pytest.raises(ValueError, match=r"aime24 is a directory, not a JSONL file; it holds test.jsonl"):
        load_problems(tmp_path / "aime24")  # was "data file not found", for a folder that is there
    (tmp_path / "latin1.jsonl").write_bytes(b'{"problem": "a", "answer": "1"}\n{"problem": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(ValueError, match=r"latin1.jsonl:2: not valid UTF-8 \(byte 0xe9 at byte 17"):
        load_problems(tmp_path / "latin1.jsonl")


@needs_data
def test_load_real_benchmarks():
    gsm8k, math500, aime = (load_problems(DATA / name / "test.jsonl") for name in ("gsm8k", "math500", "aime24"))
    assert (len(gsm8k), len(math500), len(aime)) == (1319, 500, 30)
    assert gsm8k[0].answer == "18" and all(p.answer.lstrip("-").isdigit() for p in gsm8k)
    assert math500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)" and math500[0].id == "test/precalculus/807.json"
    assert aime[7].answer == "025" and aime[0].source == "aime24/test"


@needs_data
@pytest.mark.parametrize("name, split, count", [("gsm8k", "test", 1319), ("gsm8k", "train", 7473),
                                                ("math500", "test", 500), ("aime24", "test", 30)])
def test_every_record_of_the_real_files_loads_with_its_own_gold(name, split, count):
    """One problem per line, in order, none skipped; ids unique; gold and prompt from the record's
    own fields: GSM8K's '#### N' line without commas (CONVENTIONS.md), MATH-500's answer (= its
    solution's last \\boxed{}), AIME's answer string with its leading zeros."""
    path = DATA / name / f"{split}.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    problems = load_problems(path)
    assert len(records) == len(problems) == count
    assert len({p.id for p in problems}) == count and {p.source for p in problems} == {f"{name}/{split}"}
    for i, (record, problem) in enumerate(zip(records, problems)):
        if name == "gsm8k":
            gold = record["answer"].splitlines()[-1].removeprefix("#### ").replace(",", "")
            assert (problem.id, problem.prompt, problem.answer) == (str(i), record["question"], gold)
            assert gold.lstrip("-").isdigit()
        else:
            own_id = record["unique_id"] if name == "math500" else str(record["id"])
            assert (problem.id, problem.prompt, problem.answer) == (own_id, record["problem"], record["answer"])
    assert [p.answer for p in problems[:3]] == {"gsm8k": {"test": ["18", "3", "70000"], "train": ["72", "10", "5"]},
                                                "math500": {"test": ["\\left( 3, \\frac{\\pi}{2} \\right)", "p - q",
                                                                     "\\frac{14}{3}"]},
                                                "aime24": {"test": ["204", "113", "371"]}}[name][split]


@needs_data
def test_code_benchmarks_are_refused_with_the_reason(tmp_path):
    """HumanEval's .gz was 'not valid UTF-8 (byte 0x8b ...)'; MBPP's records 'need a text field
    answer': neither said these are code tasks, scored by running tests, not by final answers."""
    with pytest.raises(ValueError, match=r"HumanEval.jsonl.gz \(gzip-compressed\), line 1: a code task"):
        load_problems(DATA / "humaneval" / "HumanEval.jsonl.gz")
    with pytest.raises(ValueError, match=r"mbpp.jsonl:1: a code task .* scored by running their tests"):
        load_problems(DATA / "mbpp" / "mbpp.jsonl")
    humaneval = tmp_path / "HumanEval.jsonl"
    humaneval.write_bytes(gzip.decompress((DATA / "humaneval" / "HumanEval.jsonl.gz").read_bytes()))
    with pytest.raises(ValueError, match=r"HumanEval.jsonl:1: a code task"):
        load_problems(humaneval)


def test_read_completions_errors_name_the_line(tmp_path):
    good = write_jsonl(tmp_path / "c.jsonl", [{"index": 1, "completion": "a"}, {"index": 1, "completion": "b"}])
    assert read_completions(good, 2) == {1: ["a", "b"]}
    cases = {
        '{"index": 0, "completion": "a"}\n{"index": 0, "completion": \n': "c1.jsonl:2: not valid JSON",
        '{"index": 0, "completion": "a"}\n{"index": 9, "completion": "b"}\n': "c2.jsonl:2: index 9 out of range",
        '{"completion": "a"}\n': "c3.jsonl:1: 'index' must be an integer",
        '{"index": 0, "completion": 5}\n': "c4.jsonl:1: 'completion' must be a string",
        '[1, 2]\n': "c5.jsonl:1: expected a JSON object",
        '{"index": 2, "completion": "a"}\n': r"c6.jsonl:1: index 2 out of range: the data has 2 problems$",  # 0-based
        '{"index": true, "completion": "a"}\n': r"c7.jsonl:1: 'index' must be an integer, got True$",  # not index 1
    }
    for number, (text, message) in enumerate(cases.items(), start=1):
        (tmp_path / f"c{number}.jsonl").write_text(text)
        with pytest.raises(ValueError, match=message):
            read_completions(tmp_path / f"c{number}.jsonl", 2)
    (tmp_path / "bad.jsonl").write_bytes(b'\xff{"index": 0, "completion": "a"}\n')  # was: "'utf-8' codec can't..."
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not valid UTF-8"):
        read_completions(tmp_path / "bad.jsonl", 2)
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"index": 0, "completion": "a"}\n')  # as benchmark files
    assert read_completions(tmp_path / "bom.jsonl", 2) == {0: ["a"]}


def test_read_completions_names_a_directory_a_gzip_file_and_a_missing_file(tmp_path):
    """Each said as what it is (a directory read as "not found", a gzip file as "not valid UTF-8"
    before), with the same messages as the benchmark loader's."""
    import gzip

    (tmp_path / "runs").mkdir()
    with pytest.raises(ValueError, match=r"runs is a directory, not a JSONL file"):
        read_completions(tmp_path / "runs", 2)
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.write('{"index": 0, "completion": "a"}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl\.gz: gzip-compressed; give the decompressed JSONL file"):
        read_completions(tmp_path / "c.jsonl.gz", 2)
    with pytest.raises(FileNotFoundError, match=r"completions file not found: .*absent\.jsonl"):
        read_completions(tmp_path / "absent.jsonl", 2)


# --- the `r1lab eval` command ----------------------------------------------------------------
@pytest.fixture
def hand_files(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", [{"prompt": p.prompt, "answer": p.answer} for p in PROBLEMS])
    completions = write_jsonl(tmp_path / "completions.jsonl",
                              [{"index": i, "completion": text} for i, texts in SAMPLES.items() for text in texts])
    return data, completions


def test_cli_json_and_out(hand_files, tmp_path, capsys):
    data, completions = hand_files
    out = tmp_path / "report"
    assert cli.main(["eval", "--data", str(data), "--completions", str(completions), "--json", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pass@1"] == pytest.approx(0.5) and summary["cons@k"] == pytest.approx(2 / 3)
    assert (summary["k"], summary["n_problems"], summary["pass@k"]) == (4, 3, 1.0)
    assert len(json.loads((out / "eval.json").read_text())["problems"]) == 3
    assert "| 50.0 | 100.0 | 66.7 |" in (out / "eval.md").read_text()

    assert cli.main(["eval", "--data", str(data), "--completions", str(completions), "--k", "2"]) == 0
    assert "| pass@1 | pass@2 | cons@2 |" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    ([], "--completions FILE.jsonl is required"),
    (["--completions", "nowhere.jsonl"], "completions file not found: nowhere.jsonl"),
    (["--completions", "{completions}", "--k", "9"], "k must be from 1 to 4"),
    # sampling flags without --checkpoint were accepted and ignored
    (["--completions", "{completions}", "--samples", "1", "--temperature", "0"],
     "--samples, --temperature set how --checkpoint is sampled"),
])
def test_cli_bad_input_is_one_line(hand_files, tmp_path, capsys, extra, message):
    data, completions = hand_files
    argv = ["eval", "--data", str(data), *[a.format(completions=completions) for a in extra], "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_cli_checkpoint_honours_k_and_refuses_completions(hand_files, capsys):
    """With --checkpoint, --k was silently ignored and --completions silently unused."""
    _, completions = hand_files
    base = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"  # the shipped pretrained tiny model
    argv = ["eval", "--data", "world", "--checkpoint", str(base), "--n-problems", "2", "--samples", "2",
            "--max-new-tokens", "4", "--json"]
    for extra, message in ((["--completions", str(completions)], "--completions and --checkpoint exclude each other"),
                           (["--k", "3"], "--k must be from 1 to --samples (2)")):
        assert cli.main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"r1lab eval: error: {message}") and err.count("\n") == 1
    assert cli.main([*argv, "--k", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["k"], summary["n_problems"], summary["n_samples"]) == (1, 2, 4)


@pytest.mark.parametrize("flag, message", [("--samples", "k (samples per problem, --samples) must be >= 1, got 0"),
                                           ("--n-problems", "n_problems must be >= 1, got 0"),
                                           ("--max-new-tokens", "max_new_tokens must be >= 1, got 0")])
def test_cli_checkpoint_bad_count_names_its_value(capsys, flag, message):
    """--samples 0 said 'k, n_problems, batch_problems and max_new_tokens must be >= 1': neither
    the value nor which one, and 'k' read as --k."""
    assert cli.main(["eval", "--data", "world", "--checkpoint", "nowhere", flag, "0"]) == 2
    assert capsys.readouterr().err == f"r1lab eval: error: SampleEvalConfig.{message}\n"


# --- proof of the checker on the real benchmarks ------------------------------------------
def _wrong_answer(problems: list[Problem], i: int) -> str:
    """A certainly wrong answer: gold + 1 for integer golds, else the next problem's gold that
    is neither a plain number nor written the same way."""
    gold = problems[i].answer
    if gold.replace(",", "").lstrip("-").isdigit():
        return str(int(gold.replace(",", "")) + 1)
    j = (i + 1) % len(problems)
    while problems[j].answer.replace(",", "").lstrip("-").isdigit() or problems[j].answer == gold:
        j = (j + 1) % len(problems)
    return problems[j].answer


@needs_data
@pytest.mark.parametrize("name, count", [("gsm8k", 1319), ("math500", 500), ("aime24", 30)])
def test_gold_solutions_score_100_and_wrong_answers_0(name, count, tmp_path, capsys):
    """Each record's reference solution as the reasoning (its own '#### N' or boxed answer sits
    inside <think>), then the gold boxed: 100%. The same reasoning with a wrong final answer: 0%."""
    path = DATA / name / "test.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    problems = load_problems(path)
    assert len(problems) == count
    variants = [("gold", lambda i: problems[i].answer, 1.0), ("wrong", lambda i: _wrong_answer(problems, i), 0.0)]
    for variant, answer_of, expected in variants:
        completions = write_jsonl(tmp_path / f"{variant}.jsonl", [
            {"index": i, "completion": r1_completion(record.get("solution", record["answer"]), answer_of(i))}
            for i, record in enumerate(records)])
        assert cli.main(["eval", "--data", str(path), "--completions", str(completions), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["n_problems"] == count
        assert (summary["pass@1"], summary["pass@k"], summary["cons@k"]) == (expected, expected, expected), variant


def test_a_wrong_answer_written_several_ways_still_outvotes_a_minority_right_one():
    """'0.5', '\\frac12' and '\\frac{1}{2}' are one wrong answer with 3 votes against 2 for the
    right 3: cons@k must be wrong (normal forms alone split the 3 votes, and 3 won)."""
    from r1lab.rewards.math import check_answers
    from r1lab.stages.evaluate import majority_vote, score_completions

    answers = ["0.5", "\\frac12", "\\frac{1}{2}", "3", "3"]
    correct = [False, False, False, True, True]
    assert majority_vote(answers, correct) == 3  # without the checker's equality
    assert majority_vote(answers, correct, check_answers) == 0
    assert majority_vote(["7", "0.5", "\\frac12", "3"], [False, False, False, True], check_answers) == 1
    problem = Problem(id="p", prompt="?", answer="3", source="t")
    texts = [f"The answer is \\boxed{{{a}}}." for a in answers]
    score = score_completions([problem], {0: texts}, k=5).problems[0]
    assert not score.cons_correct and score.pass_at_1 == 0.4


def test_vote_without_a_correct_answer_skips_the_checker():
    """The merge only stops split wrong answers outvoting the right group; with no right sample it
    cannot change cons@k, and 64 distinct \\frac answers cost 2,016 math-verify comparisons (8.7 s)."""
    calls = []

    def same(preds: list[str], golds: list[str]) -> list[bool]:
        calls.append(len(preds))
        return [False] * len(preds)

    answers = [f"\\frac{{{i}}}{{{i + 1}}}" for i in range(64)]
    assert majority_vote(answers, [False] * 64, same) == 0 and calls == []


def test_world_metrics_over_no_sample_are_none():
    """With no reasoning sample, accuracy_reasoning was 0.0 and language consistency 1.0 (and with
    no bare one, accuracy_bare 0.0): numbers that read as results, in eval --json and results.json."""
    from r1lab.stages.sample_eval import world_metrics
    from r1lab.world import heldout_problems

    world = heldout_problems(2, seed=0)
    bare = {i: [f"<answer>{p.answer}</answer>", "<answer>-1</answer>"] for i, p in enumerate(world)}
    lengths = {i: [3, 3] for i in bare}
    metrics = world_metrics(world, bare, lengths)
    assert (metrics["reasoning_share"], metrics["accuracy_bare"]) == (0.0, 0.5)
    assert metrics["accuracy_reasoning"] is None and metrics["language_consistency"] is None
    steps = {0: [f"<think>{world[0].question.split()[-1]}={world[0].answer}</think><answer>{world[0].answer}</answer>"]}
    metrics = world_metrics(world, steps, {0: [9]})
    assert (metrics["reasoning_share"], metrics["accuracy_reasoning"], metrics["accuracy_bare"]) == (1.0, 1.0, None)


def test_world_metrics_length_mean_is_over_the_lengths_and_refuses_a_mismatch():
    """length_mean divided the lengths' sum by the number of texts: lengths short of a completion
    (or with one too many) gave a wrong mean with no error."""
    from r1lab.stages.sample_eval import world_metrics
    from r1lab.world import heldout_problems

    world = heldout_problems(2, seed=0)
    texts = {0: ["<answer>1</answer>"] * 2, 1: ["<answer>2</answer>"] * 2}
    assert world_metrics(world, texts, {0: [3, 5], 1: [1, 7]})["length_mean"] == (3 + 5 + 1 + 7) / 4
    with pytest.raises(ValueError, match="problem 1 has 2 completions but 1 lengths"):
        world_metrics(world, texts, {0: [3, 5], 1: [1]})
    with pytest.raises(ValueError, match="problem 1 has 2 completions but 0 lengths"):
        world_metrics(world, texts, {0: [3, 5]})


def test_a_benchmark_sample_cut_off_while_thinking_has_no_answer(tmp_path, monkeypatch):
    """Benchmark prompts end with "<think>\\n"; the opening is put back in front of each completion,
    so a draft \\boxed{} in reasoning cut off by max_new_tokens is not graded."""
    from r1lab.engine import Completion
    from r1lab.stages import sample_eval

    data = write_jsonl(tmp_path / "b.jsonl", [{"problem": "1 + 2?", "answer": "3"}, {"problem": "2 + 2?", "answer": "4"}])
    texts = ["Try \\boxed{3}? Wait, check", "1 + 2 = 3.\n</think>\nSo \\boxed{3}."]  # cut off; finished

    class FakeEngine:
        def __init__(self, *a, **k) -> None:
            pass

        def generate(self, prompts, params):
            return [[Completion(prompt_index=0, token_ids=[5], logprobs=[0.0], finish_reason="length", text=t)
                     for t in texts]]

    monkeypatch.setattr(sample_eval, "Engine", FakeEngine)
    base = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"
    result = sample_eval.evaluate_checkpoint(sample_eval.SampleEvalConfig(checkpoint=str(base), data=str(data),
                                                                          n_problems=1, k=2, template="chat"))
    assert result.problems[0].answers == [None, "3"] and result.summary()["pass@1"] == 0.5
    # n_data is the file's count (it was the n_problems sampled: a partial run read as the whole benchmark)
    assert (result.summary()["n_problems"], result.summary()["n_data"]) == (1, 2)


@pytest.mark.parametrize("saved", [b'{"template": "chat",', b"[]", b"\xff{}"])
def test_an_unreadable_checkpoint_config_is_one_line_naming_it(tmp_path, capsys, saved):
    """--template auto reads the checkpoint's r1lab_config.json: a JSON list was an AttributeError
    traceback, cut or non-UTF-8 JSON an error ("Expecting ',' delimiter ...") naming no file."""
    (tmp_path / "r1lab_config.json").write_bytes(saved)
    assert cli.main(["eval", "--data", "world", "--checkpoint", str(tmp_path), "--n-problems", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"r1lab eval: error: {tmp_path / 'r1lab_config.json'}: ") and err.count("\n") == 1
    assert "--template" in err


def test_countdown_samples_vote_as_expressions(monkeypatch):
    """A countdown answer is an expression: the world's check returned its last number, so cons@k
    counted '4*5+3' (wrong) and '5*(4+3)' (right) as one answer, 3, which outvoted '(3+4)*5'."""
    import dataclasses

    import r1lab.world
    from r1lab.engine import Completion
    from r1lab.stages import sample_eval

    countdown = r1lab.world.heldout_problems(1, kinds=(r1lab.world.COUNTDOWN,))[0]
    problem = dataclasses.replace(countdown, numbers=(3, 4, 5), answer=35, question="Use 3, 4, 5 once each to make 35")
    texts = ["<think>try</think> <answer>4*5+3</answer>", "<think>a</think> <answer>(3+4)*5</answer>",
             "<think>b</think> <answer>5*(4+3)</answer>", "<think>c</think> <answer>3+4+5</answer>"]

    class FakeEngine:
        def __init__(self, *a, **k) -> None:
            pass

        def generate(self, prompts, params):
            return [[Completion(prompt_index=0, token_ids=[5], logprobs=[0.0], finish_reason="stop", text=t)
                     for t in texts]]

    monkeypatch.setattr(sample_eval, "Engine", FakeEngine)
    monkeypatch.setattr(r1lab.world, "heldout_problems", lambda n, seed=0: [problem])
    base = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"
    config = sample_eval.SampleEvalConfig(checkpoint=str(base), n_problems=1, k=4)
    score = sample_eval.evaluate_checkpoint(config, k=3).problems[0]
    assert score.answers == ["4*5+3", "(3+4)*5", "5*(4+3)", "3+4+5"]
    assert score.correct == [False, True, True, False]
    assert (score.majority, score.cons_correct) == ("(3+4)*5", True)  # the two solutions vote together


@needs_data
def test_prompts_follow_r1_table_1_and_the_r1_readme(tmp_path):
    """World prompts under R1-Zero: BOS, then R1 Table 1's template word for word (as quoted in
    CONVENTIONS.md) around the question. Benchmark prompts: the chat turn with no system prompt, the
    question, a newline, the README's math instruction with \\boxed{}, and the output forced to "<think>\\n"."""
    import re

    from r1lab.prompts import CHAT, R1_ZERO, prompt_ids
    from r1lab.stages import sample_eval
    from r1lab.tokenizer import Tokenizer

    conventions = (DATA / "CONVENTIONS.md").read_text(encoding="utf-8")
    quoted = re.search(r'Training template \(R1 paper, Table 1\): "(.*?)"\n', conventions, re.DOTALL)[1]
    table_1 = re.sub(r"\s+", " ", quoted)
    base = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"
    tokenizer = Tokenizer.load(base)
    world_config = sample_eval.SampleEvalConfig(checkpoint=str(base), n_problems=2, k=1)
    assert world_config.template == R1_ZERO  # the shipped base model is prompted as R1-Zero was
    world_problems, ids, _ = sample_eval._prompts(world_config, tokenizer)
    for problem, prompt in zip(world_problems, ids):
        assert prompt[0] == tokenizer.bos_id
        assert tokenizer.decode(prompt[1:]) == table_1.replace("{prompt}", problem.prompt)
    assert tokenizer.decode(prompt_ids(tokenizer, "Compute 2+3", CHAT)) == "<|bos|><|user|>Compute 2+3<|assistant|>"

    data = write_jsonl(tmp_path / "b.jsonl", [{"problem": "What is $1+2$?", "answer": "3"}])
    bench_config = sample_eval.SampleEvalConfig(checkpoint=str(base), data=str(data), n_problems=1, k=1,
                                                template="chat")  # a chat-trained model's benchmark prompt
    _, (prompt,), _ = sample_eval._prompts(bench_config, tokenizer)
    assert tokenizer.decode(prompt) == ("<|bos|><|user|>What is $1+2$?\nPlease reason step by step, and put your "
                                        "final answer within \\boxed{}.<|assistant|><think>\n")


def test_eval_json_reads_back_and_renders_identically(hand_files, tmp_path, capsys):
    """eval.json holds every number of the report: rebuilt from it, the result writes the same
    eval.json and eval.md (the settings are the summary's keys beyond the computed ones)."""
    from r1lab.stages.evaluate import EvalResult, ProblemScore

    data, completions = hand_files
    out = tmp_path / "report"
    assert cli.main(["eval", "--data", str(data), "--completions", str(completions), "--k", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    document = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    computed = ("name", "k", "n_problems", "n_data", "n_samples", "pass@1", "pass@k", "cons@k", "no_answer", "problems")
    rebuilt = EvalResult(name=document["name"], k=document["k"], n_data=document["n_data"],
                         problems=[ProblemScore(**p) for p in document["problems"]],
                         settings={key: value for key, value in document.items() if key not in computed})
    assert rebuilt.settings == {"data": str(data), "completions": str(completions), "scoring_version": SCORING_VERSION}
    assert rebuilt.to_json() + "\n" == (out / "eval.json").read_text(encoding="utf-8")
    assert rebuilt.to_markdown() == (out / "eval.md").read_text(encoding="utf-8")
    assert "| pass@1 | pass@3 | cons@3 |" in rebuilt.to_markdown()


# The eval report table.
TWO_PROBLEMS = [Problem(id=str(i), prompt="q", answer=gold, source="hand") for i, gold in enumerate(["5", "7"])]


def test_a_k1_table_has_one_pass_at_1_column():
    """At k = 1 the unbiased pass@k is pass@1: the table had two columns headed 'pass@1'."""
    result = score_completions(TWO_PROBLEMS, {0: ["\\boxed{5}"], 1: ["\\boxed{8}"]})
    assert result.to_markdown() == (
        "| data | problems | samples | pass@1 | cons@1 | no answer |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| hand | 2 | 2 | 50.0 | 50.0 | 0.0 |\n"
        "\n"
        "pass@1: each problem's share of correct samples; cons@1: majority vote over its first 1 final answer; "
        "each averaged over problems. no answer: share of all samples. Values in %.\n")


def test_a_k2_table_keeps_its_pass_at_k_column():
    result = score_completions(TWO_PROBLEMS, {0: ["\\boxed{5}", "\\boxed{6}"], 1: ["\\boxed{8}", "\\boxed{7}"]})
    assert result.to_markdown() == (
        "| data | problems | samples | pass@1 | pass@2 | cons@2 | no answer |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| hand | 2 | 4 | 50.0 | 100.0 | 50.0 | 0.0 |\n"
        "\n"
        "pass@1: each problem's share of correct samples; pass@2: unbiased estimate from them; "
        "cons@2: majority vote over its first 2 final answers; each averaged over problems. "
        "no answer: share of all samples. Values in %.\n")


# Saved evaluations carry the scoring rule's version; the pipeline's cache is not reused across versions.
def test_the_eval_cache_scores_again_after_the_scoring_rule_changed(tmp_path, monkeypatch):
    from r1lab import pipeline
    from r1lab.stages import evaluate
    from r1lab.stages.evaluate import EvalResult

    base = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"
    metrics = {"format_rate": 1.0, "length_mean": 5.0, "reasoning_share": 0.0, "accuracy_reasoning": None,
               "accuracy_bare": 0.5, "language_consistency": None}
    calls = []

    def fake_evaluate(config):
        calls.append(config.checkpoint)
        return EvalResult(name="world/heldout", k=1, problems=[], n_data=0, settings=metrics)

    monkeypatch.setattr(pipeline, "evaluate_checkpoint", fake_evaluate)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), eval_problems=1, eval_samples=1)
    pipeline.evaluate("base", base, config, 0.0)
    pipeline.evaluate("base", base, config, 0.0)  # same rule: the cached row
    monkeypatch.setattr(evaluate, "SCORING_VERSION", SCORING_VERSION + 1)
    pipeline.evaluate("base", base, config, 0.0)  # the rule changed: scored again
    assert calls == [str(base), str(base)]


# The vote's merging of wrong answers written differently: same winners, checker asked only while it matters.
def _recording_checker(equal_pairs: set[tuple[str, str]], asked: list[tuple[str, str]]):
    def same(preds: list[str], golds: list[str]) -> list[bool]:
        asked.extend(zip(preds, golds))
        return [(p, g) in equal_pairs or (g, p) in equal_pairs for p, g in zip(preds, golds)]
    return same


@pytest.mark.parametrize("answers, correct, equal, winner", [
    # a, b, c are one wrong answer (3 votes) against 2 right: the wrong one wins at its first sample
    (["3", "a", "b", "3", "c"], [True, False, False, True, False], {("b", "a"), ("c", "a")}, 1),
    # c equals b, which joined a: c's vote goes to a's class too (3 against 2)
    (["3", "a", "b", "3", "c"], [True, False, False, True, False], {("b", "a"), ("c", "b")}, 1),
    # only b and c are equal: 2 wrong votes tie 2 right ones, and the right answer came first
    (["3", "a", "b", "3", "c"], [True, False, False, True, False], {("c", "b")}, 0),
    # the same tie with a wrong answer first: it wins the tie
    (["b", "a", "3", "3", "c"], [False, False, True, True, False], {("c", "b")}, 0),
    # merged, a and b only tie the right answer's 2 votes, but a came first: the tie goes to it
    (["a", "3", "b", "3"], [False, True, False, True], {("b", "a")}, 0),
    # two wrong groups are merged too: a and b (2 votes) outvote the right 3 (1 vote), which came first
    (["3", "a", "b"], [True, False, False], {("b", "a")}, 1),
    # c equals both a and b (the checker need not be transitive): it joins the earliest, a, which wins
    # 3 to 2; joined to b it would make a three-way tie of 2, won by the first, right, answer
    (["3", "a", "b", "a", "3", "c"], [True, False, False, False, True, False], {("c", "a"), ("c", "b")}, 1),
])
def test_the_vote_merges_equal_wrong_answers_by_hand(answers, correct, equal, winner):
    assert majority_vote(answers, correct, _recording_checker(equal, [])) == winner


def test_the_vote_stops_asking_the_checker_once_no_merge_can_change_the_winner(monkeypatch):
    """3 right votes against 4 distinct wrong ones: once a, b, c are known apart, d alone (1 vote)
    joining any of them makes 2 < 3, so d is compared with none: 3 of the 6 pairs are asked
    (one group's pairs per batch here; by default a batch holds several groups')."""
    import r1lab.stages.evaluate as evaluate

    monkeypatch.setattr(evaluate, "_PAIRS_PER_BATCH", 1, raising=False)
    asked: list[tuple[str, str]] = []
    answers = ["3", "a", "3", "b", "c", "3", "d"]
    correct = [True, False, True, False, False, True, False]
    assert majority_vote(answers, correct, _recording_checker(set(), asked)) == 0
    assert asked == [("b", "a"), ("c", "a"), ("c", "b")]


# The reported majority answer when no sample is right: the vote by normal form, the checker not asked.
def test_with_no_right_sample_the_reported_majority_is_the_vote_by_normal_form():
    """'0.5', '\\frac12', '\\frac{1}{2}' are one answer to the checker (3 votes) but three normal
    forms; with no right sample they are not merged, so '7' (2 votes) is reported; with a right
    sample among them the merge decides cons@k and the 1/2 class wins."""
    problem = Problem(id="p", prompt="?", answer="3", source="t")
    texts = [f"The answer is \\boxed{{{a}}}." for a in ("0.5", "\\frac12", "\\frac{1}{2}", "7", "7")]
    score = score_completions([problem], {0: texts}).problems[0]
    assert (score.majority, score.cons_correct, score.correct) == ("7", False, [False] * 5)
    asked: list[tuple[str, str]] = []
    answers = ["0.5", "\\frac12", "\\frac{1}{2}", "7", "7", "3"]
    equal = {("\\frac12", "0.5"), ("\\frac{1}{2}", "0.5")}
    assert majority_vote(answers[:5], [False] * 5, _recording_checker(equal, asked)) == 3 and asked == []
    assert majority_vote(answers, [False] * 5 + [True], _recording_checker(equal, asked)) == 0 and asked


# score_completions refuses a k that is not a whole count by name, before scoring.
@pytest.mark.parametrize("k", [2.0, 2.5, True])
def test_a_k_that_is_no_int_is_refused_by_name(k):
    """A float k passed the range check and failed later as "slice indices must be integers";
    True passed as k = 1 and was written to eval.json as "k": true."""
    with pytest.raises(ValueError, match=rf"k must be from 1 to 4 \(the fewest samples any problem has\), got {k}"):
        score_completions(PROBLEMS, SAMPLES, k=k)


# The report says how each figure is averaged when problems have different sample counts.
def test_the_table_note_names_each_figures_average_over_unequal_sample_counts():
    """pass@1 is each problem's share of correct samples averaged over problems (62.5, not the 4 of 6
    samples pooled, 66.7), while "no answer" is a share of all samples (1 of 6); the note said only
    "mean correctness over the samples", which reads as the pooled share."""
    result = score_completions(TWO_PROBLEMS, {0: ["\\boxed{5}", "\\boxed{6}"],
                                              1: ["\\boxed{7}", "\\boxed{7}", "\\boxed{7}", "no answer here"]})
    assert result.to_markdown() == (
        "| data | problems | samples | pass@1 | pass@2 | cons@2 | no answer |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| hand | 2 | 6 | 62.5 | 100.0 | 100.0 | 16.7 |\n"
        "\n"
        "pass@1: each problem's share of correct samples; pass@2: unbiased estimate from them; "
        "cons@2: majority vote over its first 2 final answers; each averaged over problems. "
        "no answer: share of all samples. Values in %.\n")
