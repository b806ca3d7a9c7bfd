"""The demo pipeline end to end at toy size, from the shipped base model."""

from __future__ import annotations

import json

from r1lab import pipeline
from r1lab.stages import grpo


def test_pipeline_runs_base_eval_zero_eval_and_reuses_finished_stages(tmp_path):
    zero = grpo.GRPOConfig(n_prompts=16, prompts_per_step=2, group_size=2, max_steps=2, max_new_tokens=16,
                           save_every=100, log_samples_every=1)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), eval_problems=4, eval_samples=2, zero=zero)
    rows = pipeline.run(config)
    assert [r.stage for r in rows] == ["base", "R1-Zero"]
    assert all(0.0 <= r.pass_at_1 <= 1.0 and r.length_mean > 0 for r in rows)
    assert (tmp_path / "zero" / "curves.png").stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved[1]["checkpoint"].endswith("policy")
    mtime = (tmp_path / "zero" / "policy" / "model.safetensors").stat().st_mtime
    assert pipeline.run(config) == rows  # a rerun reuses the finished stages
    assert (tmp_path / "zero" / "policy" / "model.safetensors").stat().st_mtime == mtime
