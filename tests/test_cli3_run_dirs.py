"""A training command given another training stage's run directory (found by a review helper; each
test failed before its fix): it used to overwrite that run's metrics.jsonl and delete its checkpoints/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1lab import cli

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
