"""The command line as a user meets it: bad input gives one line on stderr and exit status 2."""

from __future__ import annotations

import json

import pytest

from r1lab.cli import main


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    return path


def test_eval_data_that_is_a_directory_is_named_as_one(tmp_path, data_file, capsys):
    completions = tmp_path / "c.jsonl"
    completions.write_text(json.dumps({"index": 0, "completion": "\\boxed{2}"}) + "\n")
    (tmp_path / "run dir").mkdir()
    assert main(["eval", "--data", str(tmp_path / "run dir"), "--completions", str(completions)]) == 2
    err = capsys.readouterr().err
    assert err == f"r1lab eval: error: --data {tmp_path / 'run dir'} is a directory, not a JSONL file\n"


def test_eval_completions_that_are_a_directory_are_named_as_one(tmp_path, data_file, capsys):
    assert main(["eval", "--data", str(data_file), "--completions", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"r1lab eval: error: --completions {tmp_path} is a directory, not a JSONL file\n"


def test_eval_data_directory_with_checkpoint_is_refused_before_loading(tmp_path, capsys):
    # the checkpoint does not exist: the directory check must come first and name --data
    assert main(["eval", "--data", str(tmp_path), "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["pretrain", "--out-dir", ""], ["zero", "--out-dir", " "], ["sft", "--out-dir", ""],
                                  ["rejection-sample", "--out-dir", ""], ["cold-start", "--out", ""]])
def test_an_empty_output_path_is_refused_not_the_working_directory(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    flag = argv[1]
    assert capsys.readouterr().err == f"r1lab {argv[0]}: error: {flag} must name a path, got {argv[2]!r}\n"
    assert list(tmp_path.iterdir()) == []  # nothing written in the working directory


# `r1lab demo --out` naming a file (or a path under one) is refused in one line that says so.
@pytest.mark.parametrize("under", [False, True])
def test_demo_out_that_is_a_file_is_named_as_one(tmp_path, capsys, under):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = afile / "run" if under else afile
    assert main(["demo", "--out", str(out)]) == 2
    expected = (f"cannot write {out}: {afile} is a file, not a directory" if under
                else f"cannot use {afile} as a directory: it is a file")
    assert capsys.readouterr().err == f"r1lab demo: error: {expected}\n"
    assert afile.read_text() == "x"
