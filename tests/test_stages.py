"""Stages end to end at toy size: pretraining resumes exactly; GRPO runs, logs, checkpoints, resumes."""

from __future__ import annotations

import json

import pytest
import torch

from r1lab.model import from_pretrained
from r1lab.stages import grpo, pretrain


def tiny_pretrain(out, steps, resume=False):
    return pretrain.PretrainConfig(out_dir=str(out), n_docs=400, seq_len=64, batch_size=4, max_steps=steps,
                                   eval_every=3, save_every=3, warmup_steps=2, resume=resume, bf16=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    return pretrain.run(tiny_pretrain(out, 6))


class Killed(Exception):
    pass


def test_pretrain_writes_hf_checkpoint_metrics_and_resumes_exactly(base, tmp_path, monkeypatch, capsys):
    assert {"config.json", "model.safetensors", "tokenizer.json", "r1lab_config.json"} <= {p.name for p in base.iterdir()}
    rows = [json.loads(l) for l in (base.parent / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and "heldout_loss" in rows[-1]
    # the run dies right after writing its step-3 checkpoint; resumed to 6: the straight run's weights
    monkeypatch.setattr(pretrain.training, "prune_checkpoints", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        pretrain.run(tiny_pretrain(tmp_path, 6))
    monkeypatch.undo()
    resumed = pretrain.run(tiny_pretrain(tmp_path, 6, resume=True))
    assert "at step 3" in capsys.readouterr().out
    a, b = from_pretrained(base).state_dict(), from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_rejects_bad_config():
    with pytest.raises(ValueError, match="batch_size"):
        pretrain.PretrainConfig(batch_size=0)


def test_grpo_runs_logs_and_resumes(base, tmp_path):
    cfg = dict(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=32, prompts_per_step=2, group_size=4,
               max_new_tokens=12, save_every=2, log_samples_every=1, bf16=False, kl_coef=0.01)
    grpo.run(grpo.GRPOConfig(**cfg, max_steps=3))
    rows = [json.loads(l) for l in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward/accuracy", "reward/format", "accuracy", "format_rate", "length_mean", "length_max",
                "truncation_rate", "zero_variance_groups", "kl", "clip_fraction", "entropy",
                "rollout_tokens_per_s", "train_tokens_per_s", "expert_load_max_mean"):
        assert key in rows[-1], key
    assert (tmp_path / "zero" / "samples.jsonl").read_text().count("\n") >= 3
    assert (tmp_path / "zero" / "checkpoints" / "step_000002" / "trainer_state.pt").exists()
    grpo.run(grpo.GRPOConfig(**cfg, max_steps=4, resume=True))
    rows = [json.loads(l) for l in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # steps after the checkpoint were redone, not duplicated


def test_grpo_rejects_group_of_one():
    with pytest.raises(ValueError, match="group_size"):
        grpo.GRPOConfig(group_size=1)
