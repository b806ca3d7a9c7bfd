"""Benchmark loaders (r1lab.benchmarks) on malformed records: which line, which field."""

import gzip
import json

import pytest

from r1lab.benchmarks import load_problems


@pytest.mark.parametrize("answer, message", [
    (0.5, r"f.jsonl:1: needs a text \(or integer\) field 'answer'; got float 0.5$"),
    (None, r"f.jsonl:1: needs a text \(or integer\) field 'answer'; got NoneType None$"),
    (True, r"f.jsonl:1: needs a text \(or integer\) field 'answer'; got bool True$"),  # not the gold "True"
])
def test_an_answer_of_the_wrong_type_is_named_not_reported_missing(tmp_path, answer, message):
    """It said "needs a text field 'answer'; fields are ['answer', 'prompt']": missing, yet listed."""
    (tmp_path / "f.jsonl").write_text(json.dumps({"prompt": "q", "answer": answer}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_problems(tmp_path / "f.jsonl")


def test_a_missing_answer_lists_the_fields(tmp_path):
    (tmp_path / "f.jsonl").write_text(json.dumps({"prompt": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"f.jsonl:1: needs a text \(or integer\) field 'answer'; fields are \['prompt'\]$"):
        load_problems(tmp_path / "f.jsonl")


# A gzip-compressed code benchmark (HumanEval's own .jsonl.gz) is refused as a code task, not sent to be decompressed.
def test_a_gzipped_code_task_file_is_refused_as_a_code_task(tmp_path):
    record = {"task_id": "HumanEval/0", "prompt": "def f():\n", "entry_point": "f", "canonical_solution": "  pass\n",
              "test": "def check(c): pass\n"}
    with gzip.open(tmp_path / "HumanEval.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"HumanEval.jsonl.gz \(gzip-compressed\), line 1: a code task .*r1lab.rewards.code\)$"):
        load_problems(tmp_path / "HumanEval.jsonl.gz")
    with gzip.open(tmp_path / "math.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(ValueError, match=r"math.jsonl.gz: gzip-compressed; give the decompressed JSONL file$"):
        load_problems(tmp_path / "math.jsonl.gz")


# GSM8K's gold is the text after the *last* "####" (CONVENTIONS.md), commas removed, whatever the rationale holds
def test_gsm8k_gold_is_after_the_last_marker(tmp_path):
    record = {"question": "How many?", "answer": "Marked ####3 in the text.\n3 * 500 = <<3*500=1500>>1500\n#### 1,500"}
    (tmp_path / "g.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    [problem] = load_problems(tmp_path / "g.jsonl")
    assert (problem.id, problem.prompt, problem.answer, problem.source) == ("0", "How many?", "1500", f"{tmp_path.name}/g")


# a record without its own id is named by its position among the records (eval's --completions "index"), blank lines not counted
def test_a_blank_line_does_not_shift_the_position_ids(tmp_path):
    (tmp_path / "f.jsonl").write_text('{"prompt": "1+1?", "answer": "2"}\n\n\n{"prompt": "2+2?", "answer": " 4 "}\n'
                                      '{"id": 9, "prompt": "3+3?", "answer": 6}\n', encoding="utf-8")
    assert [(p.id, p.prompt, p.answer) for p in load_problems(tmp_path / "f.jsonl")] == [
        ("0", "1+1?", "2"), ("1", "2+2?", "4"), ("9", "3+3?", "6")]


# a 'question' whose answer has no "#### N" is not GSM8K: its answer is no gold to strip commas from
def test_a_question_without_the_gsm8k_marker_is_an_unknown_format(tmp_path):
    (tmp_path / "f.jsonl").write_text(json.dumps({"question": "How many?", "answer": "1,000"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"f.jsonl:1: unknown format: fields \['answer', 'question'\]; expected"):
        load_problems(tmp_path / "f.jsonl")


def test_an_empty_gold_answer_is_refused_naming_the_line(tmp_path):
    (tmp_path / "f.jsonl").write_text('{"problem": "a", "answer": "1"}\n{"problem": "b", "answer": " \\t"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"f.jsonl:2: empty gold answer$"):
        load_problems(tmp_path / "f.jsonl")
