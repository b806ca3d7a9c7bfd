"""The `r1lab` command line on a Ctrl-C (found by a review helper; each test failed before its fix)."""

from __future__ import annotations

import argparse
import sys
import types

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
