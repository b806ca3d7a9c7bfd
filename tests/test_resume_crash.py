"""Crash safety of checkpoints: what a save writes is on disk before the rename publishes it, and
the temporaries of a save killed outright (SIGKILL, power cut: no `except` runs) do not pile up."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from r1lab import training
from r1lab.model import Transformer, preset


@dataclass
class Cfg:
    seed: int = 0


def tiny_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(preset("tiny").replace(vocab_size=64, hidden_size=32, intermediate_size=48,
                                              moe_intermediate_size=16, num_hidden_layers=2, kv_lora_rank=16,
                                              qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
                                              max_position_embeddings=32))


def save(model: Transformer, checkpoints: Path, step: int, **kwargs) -> Path:
    return training.save_checkpoint(model, checkpoints / f"step_{step:06d}", step=step, config=Cfg(),
                                    optimizer=training.make_optimizer(model, 1e-3, 0.0), **kwargs)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")
def test_every_checkpoint_file_is_fsynced_under_its_temporary_name(tmp_path, monkeypatch):
    """Without fsync a rename can reach the disk before the data: after a power cut the newest
    checkpoint has its trainer_state.pt (so --resume picks it) but empty or cut weights."""
    synced, real_fsync = [], os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))  # the file's name at the time of the fsync
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    model = tiny_model()
    ck = save(model, tmp_path, 1, extra_models={"reference": tiny_model()})
    tmp_dir = str(tmp_path / ".step_000001.")
    before_rename = {Path(p).name for p in synced if p.startswith(tmp_dir) and not p.endswith(tmp_dir)}
    assert {"model.safetensors", "config.json", "r1lab_config.json"} <= before_rename
    assert any(p.startswith(str(ck / ".reference.")) and p.endswith("/model.safetensors") for p in synced)
    assert str(ck / "trainer_state.pt.tmp") in synced  # then renamed to trainer_state.pt
    assert str(tmp_path) in synced  # the directory entry of the renamed checkpoint itself


def test_a_save_killed_outright_leaves_no_temporaries_behind(tmp_path):
    """A kill mid-write leaves `.step_N.XXXXXXXX` (mkdtemp's name): never resumed from, but nothing
    removed it, so each crash left another copy of the weights on disk for ever."""
    model = tiny_model()
    killed = [tmp_path / ".step_000001.k1ll3d_1", tmp_path / ".step_000002.k1ll3d_2"]
    for d in killed:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
    mine = tmp_path / ".step_000001.old"  # a kill mid-swap: the only copy of that checkpoint, kept
    mine.mkdir()
    save(model, tmp_path, 1)  # saving step 1 again: its own leftover goes
    assert not killed[0].exists() and killed[1].exists() and mine.exists()
    assert training.latest_checkpoint(tmp_path).name == "step_000001"
    for step in (3, 4):  # step 2 is not saved again (a resumed run given other --save-every / --max-steps)
        save(model, tmp_path, step)
        training.prune_checkpoints(tmp_path, 2)  # leftovers older than the checkpoints kept go with them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000003", "step_000004"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")
def test_a_resumed_runs_truncated_metrics_log_is_fsynced_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    """open_log on resume rewrites metrics.jsonl through a temporary file; renamed over the log
    unsynced, a power cut could leave an empty log: the rows of the steps kept would be gone."""
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(f'{{"step": {s}}}\n' for s in (1, 2, 3)))
    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    training.open_log(log, 2)
    assert str(tmp_path / "metrics.jsonl.tmp") in synced
    assert [r["step"] for r in training.MetricsLog(log).read()] == [1, 2]


# Datasets and stamp files written atomically are on disk under their temporary name before the rename.
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")
def test_a_file_written_atomically_is_fsynced_before_it_is_renamed(tmp_path, monkeypatch):
    from r1lab.data import SFTExample, write_sft_jsonl

    synced, real_fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    out = write_sft_jsonl(tmp_path / "data.jsonl", [SFTExample(prompt="q", response="r")])
    assert synced == [str(tmp_path / "data.jsonl.tmp"), str(tmp_path)]  # the data, then the rename
    assert out.read_text() == '{"prompt": "q", "response": "r"}\n'


# The RNG states a checkpoint stores and restores: the CUDA generators' too where a run uses CUDA.
def _fake_cuda(monkeypatch, *, devices: int, states: list[torch.Tensor] | None = None) -> list:
    """torch.cuda as on a machine with `devices` GPUs in use; returns the states restored into it."""
    restored: list = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: devices > 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(states or []))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    return restored


def test_a_gpu_runs_cuda_rng_states_are_saved_and_restored(tmp_path, monkeypatch):
    """Only the CPU and Python RNGs were stored: a resumed GPU run sampled other completions than
    the uninterrupted one would have."""
    gpu_states = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([4, 5], dtype=torch.uint8)]
    _fake_cuda(monkeypatch, devices=2, states=gpu_states)
    path = save(tiny_model(), tmp_path, 5)
    restored = _fake_cuda(monkeypatch, devices=2)
    model = tiny_model()
    state = training.load_training_state(path, training.make_optimizer(model, 1e-3, 0.0))
    assert [t.tolist() for t in restored] == [[1, 2, 3], [4, 5]]
    assert [t.tolist() for t in state["cuda_rng"]] == [[1, 2, 3], [4, 5]]


@pytest.mark.parametrize("devices", [0, 1])
def test_cuda_rng_states_of_another_machine_are_not_restored(tmp_path, monkeypatch, devices):
    """Two GPUs' states resume on a CPU, or on one GPU, without touching the CUDA generators."""
    _fake_cuda(monkeypatch, devices=2, states=[torch.zeros(3, dtype=torch.uint8)] * 2)
    path = save(tiny_model(), tmp_path, 5)
    restored = _fake_cuda(monkeypatch, devices=devices)
    model = tiny_model()
    assert training.load_training_state(path, training.make_optimizer(model, 1e-3, 0.0))["step"] == 5
    assert restored == []


def test_a_cpu_runs_checkpoint_stores_no_cuda_rng_state(tmp_path, monkeypatch):
    """A run that never used CUDA stores what it always did; a GPU machine resumes it with its own seeds."""
    _fake_cuda(monkeypatch, devices=0)
    path = save(tiny_model(), tmp_path, 5)
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    assert sorted(state) == ["optimizer", "python_rng", "step", "torch_rng"]
    restored = _fake_cuda(monkeypatch, devices=1)
    model = tiny_model()
    training.load_training_state(path, training.make_optimizer(model, 1e-3, 0.0))
    assert restored == []


# A trainer state that cannot be written (disk full, quota) is an OSError naming the file, and leaves no partial file.
@contextmanager
def files_limited_to(size: int) -> Iterator[None]:
    """What a full disk does to a write, for real: past `size` bytes it fails with EFBIG (RLIMIT_FSIZE)."""
    import resource  # POSIX only

    handler, limit = signal.signal(signal.SIGXFSZ, signal.SIG_IGN), resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="limits file sizes with RLIMIT_FSIZE (POSIX)")
def test_a_trainer_state_the_disk_cannot_hold_is_an_os_error_naming_it(tmp_path):
    model = tiny_model()
    optimizer = training.make_optimizer(model, 1e-3, 0.0)
    model.loss(torch.randint(0, 64, (1, 8)), torch.randint(0, 64, (1, 8))).loss.backward()
    optimizer.step()  # Adam's moments: a trainer state (~175 kB) larger than any weights file (~130 kB)
    with files_limited_to(150_000), pytest.raises(OSError) as err:
        training.save_checkpoint(model, tmp_path / "step_000001", step=1, config=Cfg(), optimizer=optimizer)
    assert err.value.errno == errno.EFBIG and err.value.filename == str(tmp_path / "step_000001" / "trainer_state.pt.tmp")
    assert sorted(p.name for p in (tmp_path / "step_000001").iterdir()) == [
        "config.json", "model.safetensors", "mtp.safetensors", "r1lab_config.json"]
    assert training.latest_checkpoint(tmp_path) is None


# Weights the disk cannot hold: an OSError naming the file (the CLI's one line), and no checkpoint or temporary left.
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="limits file sizes with RLIMIT_FSIZE (POSIX)")
def test_weights_the_disk_cannot_hold_are_an_os_error_naming_the_file(tmp_path):
    model = tiny_model()  # its model.safetensors: ~130 kB
    with files_limited_to(100_000), pytest.raises(OSError) as err:
        save(model, tmp_path, 1)
    assert err.value.errno == errno.EFBIG and Path(err.value.filename).name == "model.safetensors"
    assert list(tmp_path.iterdir()) == []
