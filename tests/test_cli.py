"""The `r1lab` command line on a Ctrl-C ."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

from r1lab import cli


def _fake_stage(monkeypatch, *, out_dir: str | None) -> None:
    """A command `fake` whose stage is interrupted (as Ctrl-C raises KeyboardInterrupt mid-step)."""
    module = types.ModuleType("fake_stage")

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        if out_dir is not None:  # a training stage: --out-dir and --resume/--no-resume
            parser.add_argument("--out-dir", default=out_dir)
            parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=False)
        parser.add_argument("--seed", type=int, default=0)

    def main(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    module.add_arguments, module.main = add_arguments, main
    monkeypatch.setitem(sys.modules, "fake_stage", module)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_stage", "an interrupted stage"))


def test_ctrl_c_names_the_checkpoint_and_the_resume_command(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    for step in (50, 100):
        (run / "checkpoints" / f"step_{step:06d}").mkdir(parents=True)
        (run / "checkpoints" / f"step_{step:06d}" / "trainer_state.pt").write_text("s")
    (run / "checkpoints" / "step_000150").mkdir()  # half saved when Ctrl-C came: not resumable
    _fake_stage(monkeypatch, out_dir=str(run))
    assert cli.main(["fake", "--seed", "3"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"r1lab fake: interrupted; the newest checkpoint is {run / 'checkpoints' / 'step_000100'} "
        "(steps after it are redone); resume with: r1lab fake --seed 3 --resume"]


def test_ctrl_c_before_any_checkpoint_says_start_again(tmp_path, monkeypatch, capsys):
    _fake_stage(monkeypatch, out_dir=str(tmp_path / "run"))
    assert cli.main(["fake", "--resume"]) == 130
    assert capsys.readouterr().err.strip() == (
        f"r1lab fake: interrupted before the first checkpoint in {tmp_path / 'run'}; "
        "start again with: r1lab fake --resume")


def test_ctrl_c_in_a_command_without_checkpoints(monkeypatch, capsys):
    _fake_stage(monkeypatch, out_dir=None)
    assert cli.main(["fake", "--seed", "1"]) == 130
    assert capsys.readouterr().err.strip() == "r1lab fake: interrupted; run again with: r1lab fake --seed 1"


def test_ctrl_c_in_the_demo_says_rerun_it(monkeypatch, capsys):
    import r1lab.demo

    monkeypatch.setattr(r1lab.demo, "run", lambda config: (_ for _ in ()).throw(KeyboardInterrupt))
    assert cli.main(["demo", "--out", "runs/x y"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("r1lab demo: interrupted; finished stages are kept")
    assert err.endswith("resume with the same command: r1lab demo --out 'runs/x y'")


def test_ctrl_c_while_the_command_imports_its_module(monkeypatch, capsys):
    """Importing a stage imports torch (seconds on a cold start): a Ctrl-C then printed a traceback."""
    def interrupted_import(name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted_import)
    assert cli.main(["zero", "--max-steps", "3"]) == 130
    assert capsys.readouterr().err.strip() == "r1lab zero: interrupted; run again with: r1lab zero --max-steps 3"



def test_ctrl_c_after_resume_names_resume_once(tmp_path, monkeypatch, capsys):
    # given --resume, the command is repeated as it was; after --resume --no-resume (the last wins) it is added
    (tmp_path / "run" / "checkpoints" / "step_000050").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "step_000050" / "trainer_state.pt").write_text("s")
    _fake_stage(monkeypatch, out_dir=str(tmp_path / "run"))
    assert cli.main(["fake", "--resume"]) == 130
    assert capsys.readouterr().err.strip().endswith("resume with: r1lab fake --resume")
    assert cli.main(["fake", "--resume", "--no-resume"]) == 130
    assert capsys.readouterr().err.strip().endswith("resume with: r1lab fake --resume --no-resume --resume")


def test_an_os_error_in_a_command_is_one_line_and_exit_2(monkeypatch, capsys):
    # a path that cannot be written (no permission, disk full) is bad input, not a traceback
    _fake_stage(monkeypatch, out_dir=None)
    monkeypatch.setattr(sys.modules["fake_stage"], "main",
                        lambda args: (_ for _ in ()).throw(PermissionError(13, "Permission denied", "runs/x")))
    assert cli.main(["fake"]) == 2
    assert capsys.readouterr().err == "r1lab fake: error: Permission denied: runs/x\n"


def test_a_config_field_without_a_flag_type_is_refused():
    # a field of a type argparse cannot convert would silently keep its default on every command line
    @dataclasses.dataclass
    class Config:
        seed: int = 0
        layers: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match=r"^Config\.layers: no command-line flag for type list\[int\]$"):
        cli.add_config_arguments(argparse.ArgumentParser(), Config)


def test_config_flags_convert_to_their_field_types():
    # a float given as "1e-3" stays a float, an int as int; a bool flag turns off as well as on
    @dataclasses.dataclass
    class Config:
        lr: float = 1.0
        steps: int = 2
        bf16: bool = True
        name: str = "x"

    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser, Config)
    config = cli.config_from_args(Config, parser.parse_args(["--lr", "3", "--steps", "7", "--no-bf16", "--name", "7"]))
    assert config == Config(lr=3.0, steps=7, bf16=False, name="7")
    assert type(config.lr) is float and type(config.name) is str
    assert cli.config_from_args(Config, parser.parse_args(["--bf16"])).bf16 is True

# `r1lab demo` as a user meets it .
@pytest.mark.parametrize("out", ["", "  "])
def test_demo_with_a_blank_out_is_refused_before_running(out, monkeypatch, capsys):
    # Path("") is the working directory: the demo used to start and write eval/ and zero/ there
    import r1lab.demo

    ran = []
    monkeypatch.setattr(r1lab.demo, "run", ran.append)
    assert cli.main(["demo", "--out", out]) == 2
    assert ran == []
    assert capsys.readouterr().err.strip() == f"r1lab demo: error: --out must name a path, got {out!r}"


# `r1lab eval` as a user meets it .
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


# A training command given another training stage's run directory : it used to overwrite that run's
# metrics.jsonl and delete its checkpoints/.
BASE = str(Path(__file__).resolve().parents[1] / "r1lab" / "assets" / "base-tiny")


def _stage_run(directory: Path, name: str) -> None:
    """What a finished-or-stopped run of stage `name` leaves: its config, metrics and a checkpoint."""
    (directory / "checkpoints" / "step_000001").mkdir(parents=True)
    (directory / "checkpoints" / "step_000001" / "trainer_state.pt").write_text("s")
    (directory / f"{name}_config.json").write_text("{}\n")
    (directory / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.5}) + "\n")


def _argv(command: str, out_dir: Path, data: Path) -> list[str]:
    tiny = {"zero": ["--init", BASE, "--max-steps", "1", "--prompts-per-step", "1", "--group-size", "2",
                     "--max-new-tokens", "4"],
            "sft": ["--data", str(data), "--init", BASE, "--max-steps", "1", "--batch-size", "1", "--seq-len", "64"],
            "pretrain": ["--n-docs", "50", "--seq-len", "32", "--batch-size", "2", "--max-steps", "1"]}[command]
    return [command, *tiny, "--out-dir", str(out_dir)]


@pytest.mark.parametrize("command, other", [("zero", "sft"), ("sft", "grpo"), ("pretrain", "sft")])
@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_another_stages_run_directory_is_refused_and_kept(command, other, resume, tmp_path, capsys):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"prompt": "Hello", "response": "Hi."}) + "\n")
    run = tmp_path / "run"
    _stage_run(run, other)
    assert cli.main([*_argv(command, run, data), *resume]) == 2
    assert capsys.readouterr().err.strip() == (f"r1lab {command}: error: --out-dir {run} holds another stage's run "
                                               f"({run / f'{other}_config.json'}); give another --out-dir")
    assert (run / "checkpoints" / "step_000001" / "trainer_state.pt").read_text() == "s"
    assert (run / "metrics.jsonl").read_text() == json.dumps({"step": 1, "loss": 1.5}) + "\n"
    assert sorted(p.name for p in run.iterdir()) == sorted(["checkpoints", f"{other}_config.json", "metrics.jsonl"])


# r1lab eval --out: where the report went is said on stderr; an unusable --out fails before any work.
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
    afile = tmp_path / "afile"
    assert err == f"r1lab eval: error: cannot write {afile / 'report'}: {afile} is a file, not a directory\n"


# `r1lab demo --help` shows each flag's default, and the defaults are PipelineConfig's.
def test_demo_help_shows_the_pipeline_defaults(capsys):
    import r1lab.demo
    from r1lab.pipeline import PipelineConfig

    parser = argparse.ArgumentParser(prog="r1lab demo")
    r1lab.demo.add_arguments(parser)
    defaults = parser.parse_args([])
    config = PipelineConfig()
    assert (defaults.out, defaults.seed, defaults.eval_problems, defaults.eval_samples, defaults.stop_after,
            defaults.device) == (config.out_dir, config.seed, config.eval_problems, config.eval_samples,
                                 config.stop_after, config.device) == ("runs/demo", 0, 200, 8, "", "cpu")
    help_text = " ".join(parser.format_help().split())
    assert "held-out problems per evaluation (default: 200)" in help_text
    assert "samples per problem, k (default: 8)" in help_text


# `r1lab --version` prints the version and exits 0 (it was refused as a missing COMMAND).
def test_version_prints_the_package_version(capsys):
    import r1lab

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"r1lab {r1lab.__version__}\n"


# Every command line in the README parses, and the files and names the docs point to exist.
ROOT = Path(__file__).resolve().parents[1]


def test_every_readme_command_line_names_a_command_and_parses():
    import importlib
    import re
    import shlex

    readme = (ROOT / "README.md").read_text()
    lines = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S) for line in block.splitlines()
             if line.startswith("r1lab ")]
    assert len(lines) >= 10
    for line in lines:
        name, *rest = shlex.split(line, comments=True)[1:]
        assert name in cli.COMMANDS, line
        parser = argparse.ArgumentParser(prog=f"r1lab {name}", exit_on_error=False)
        importlib.import_module(cli.COMMANDS[name][0]).add_arguments(parser)
        parser.parse_args(rest)  # an unknown flag or bad value exits: the test fails on that line


def test_files_and_names_the_docs_point_to_exist():
    import importlib
    import re

    from r1lab.model import Transformer

    files = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}
    for doc in ("README.md", "docs/architecture.md"):
        for ref in re.findall(r"`([\w./*-]+\.(?:py|sh|md)|(?:r1lab|benchmarks|docs|tests)/[\w./*-]*)[` ]",
                              (ROOT / doc).read_text()):
            assert (list(ROOT.glob(ref)) if "/" in ref else ref in files), f"{doc}: {ref}"
    modules = {"cli": "r1lab.cli", "training": "r1lab.training", "runtime": "r1lab.runtime",
               "evaluate": "r1lab.stages.evaluate"}
    names = [(owner, name) for owner, name in re.findall(r"`(\w+)\.(\w+)", (ROOT / "docs" / "architecture.md").read_text())
             if name not in ("py", "md", "json", "sh")]  # file names, checked above
    assert ("training", "start_run") in names
    for owner, name in names:
        if owner == "model":  # `model.update_router_bias()`: a method of the model
            assert hasattr(Transformer, name), name
        elif owner in modules:
            assert hasattr(importlib.import_module(modules[owner]), name), f"{owner}.{name}"
