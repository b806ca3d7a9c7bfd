"""`r1lab eval` as a user meets it (found by a review helper; each test failed before its fix)."""

from __future__ import annotations

import json

import pytest

from r1lab import cli


@pytest.mark.parametrize("out", ["", " "])
def test_eval_with_a_blank_out_writes_nothing_in_the_working_directory(out, tmp_path, monkeypatch, capsys):
    # --out "" was Path("") == ".": eval.json and eval.md landed in the working directory unannounced
    data, completions = tmp_path / "d.jsonl", tmp_path / "c.jsonl"
    data.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    completions.write_text(json.dumps({"index": 0, "completion": "<answer>2</answer>"}) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert cli.main(["eval", "--data", str(data), "--completions", str(completions), "--out", out]) == 2
    assert capsys.readouterr().err.strip() == f"r1lab eval: error: --out must name a path, got {out!r}"
    assert list(work.iterdir()) == []
