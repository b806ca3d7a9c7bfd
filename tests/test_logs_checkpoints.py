"""Checkpoint discovery and pruning touch only the `step_<digits>` directories r1lab writes."""

from __future__ import annotations

from r1lab import training


def _ck(root, name, complete=True):
    d = root / name
    d.mkdir()
    (d / "model.safetensors").write_text("w")
    if complete:
        (d / "trainer_state.pt").write_text("s")
    return d


def test_prune_leaves_a_copy_the_user_made_beside_the_checkpoints(tmp_path):
    """step_000010_copy read as step -1: counted toward `keep` and then deleted as the oldest."""
    _ck(tmp_path, "step_000010_copy")
    _ck(tmp_path, "step_000020")
    _ck(tmp_path, "step_000030")
    training.prune_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000010_copy", "step_000020", "step_000030"]
    training.prune_checkpoints(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000010_copy", "step_000030"]


def test_a_copy_alone_is_not_a_checkpoint_to_resume(tmp_path):
    _ck(tmp_path, "step_backup")
    assert training.latest_checkpoint(tmp_path) is None
    _ck(tmp_path, "step_000005")
    assert training.latest_checkpoint(tmp_path).name == "step_000005"
