"""Benchmark loaders (r1lab.benchmarks) on malformed records: which line, which field."""

import gzip
import json

import pytest

from r1lab.benchmarks import load_problems


@pytest.mark.parametrize("answer, message", [
    (0.5, r"f.jsonl:1: needs a text \(or integer\) field 'answer'; got float 0.5$"),
    (None, r"f.jsonl:1: needs a text \(or integer\) field 'answer'; got NoneType None$"),
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
