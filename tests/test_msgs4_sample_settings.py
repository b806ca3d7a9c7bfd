"""A --checkpoint eval records its data, and world runs report prompts_too_long as benchmark runs do."""

from __future__ import annotations

import json
from pathlib import Path

import r1lab
from r1lab.stages import sample_eval

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"  # 512 positions


def test_a_benchmark_run_records_its_data_path(tmp_path):
    data = tmp_path / "b.jsonl"
    data.write_text(json.dumps({"problem": "What is $1+2$?", "answer": "3"}) + "\n", encoding="utf-8")
    # 510 new tokens leave no room for the prompt in 512 positions: nothing is sampled, so this is fast
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data=str(data), n_problems=1, k=1, max_new_tokens=510)
    summary = sample_eval.evaluate_checkpoint(config).summary()
    assert (summary["data"], summary["prompts_too_long"]) == (str(data), 1)


def test_a_world_run_reports_prompts_too_long_and_its_data():
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data="world", n_problems=2, k=1, max_new_tokens=510)
    summary = sample_eval.evaluate_checkpoint(config).summary()
    assert (summary["data"], summary["prompts_too_long"], summary["pass@1"]) == ("world", 2, 0.0)
