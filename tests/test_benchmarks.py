"""Benchmark loaders (r1lab.benchmarks) on malformed records: which line, which field."""

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
