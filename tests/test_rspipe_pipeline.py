"""The pipeline's pretrained base keeps its final model, not its resume checkpoints (review helper rspipe)."""

from __future__ import annotations

from pathlib import Path

from r1lab import pipeline


def _fake_pretrain(config) -> Path:
    """A pretraining run that saved a resumable checkpoint, then its final model in out_dir/base."""
    out = Path(config.out_dir)
    step = out / "checkpoints" / "step_000500"
    step.mkdir(parents=True)
    (step / "trainer_state.pt").write_text("")
    (out / "base").mkdir()
    (out / "base" / "config.json").write_text("{}")
    return out / "base"


def test_a_finished_pretraining_leaves_its_model_not_its_resume_checkpoints(tmp_path, monkeypatch):
    """base/checkpoints stayed forever after the base finished (every other stage drops its own)."""
    monkeypatch.setattr(pipeline.pretrain, "run", _fake_pretrain)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), pretrain=True)
    base = pipeline.base_checkpoint(config)
    assert base == tmp_path / "base" / "base" and (base / "config.json").exists()
    assert not (tmp_path / "base" / "checkpoints").exists()


def test_checkpoints_left_next_to_a_finished_base_are_removed_when_it_is_reused(tmp_path, monkeypatch):
    """A run stopped between saving the base and dropping its checkpoints: the next run reuses the base."""
    monkeypatch.setattr(pipeline.pretrain, "run", _fake_pretrain)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), pretrain=True)
    _fake_pretrain(pipeline.pretrain.PretrainConfig(out_dir=str(tmp_path / "base")))
    assert pipeline.base_checkpoint(config) == tmp_path / "base" / "base"
    assert (tmp_path / "base" / "base" / "config.json").exists()
    assert not (tmp_path / "base" / "checkpoints").exists()
