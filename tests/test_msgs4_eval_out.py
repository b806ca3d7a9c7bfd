"""r1lab eval --out: where the report went is said on stderr; an unusable --out fails before any work."""

from __future__ import annotations

import json

from r1lab import cli


def _files(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    completions = tmp_path / "completions.jsonl"
    completions.write_text(json.dumps({"index": 0, "completion": "\\boxed{2}"}) + "\n")
    return data, completions


def test_out_files_are_named_on_stderr_and_json_stdout_stays_one_object(tmp_path, capsys):
    data, completions = _files(tmp_path)
    out = tmp_path / "report"
    assert cli.main(["eval", "--data", str(data), "--completions", str(completions), "--json", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pass@1"] == 1.0  # stdout: the summary only
    assert captured.err == f"r1lab eval: wrote {out / 'eval.json'} and {out / 'eval.md'}\n"


def test_out_under_a_file_fails_before_scoring(tmp_path, capsys, monkeypatch):
    """`--out afile/report` passed the check and failed at the write ("Not a directory"), after sampling."""
    from r1lab.stages import evaluate

    data, completions = _files(tmp_path)
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(evaluate, "collect_completions", lambda *a: (_ for _ in ()).throw(AssertionError("scored")))
    argv = ["eval", "--data", str(data), "--completions", str(completions), "--out", str(tmp_path / "afile" / "report")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"r1lab eval: error: cannot write {tmp_path / 'afile' / 'report'}: {tmp_path / 'afile'} is a file, not a directory\n"
