"""Every stage takes a `device`: a bad one is refused before anything is loaded or written, and a
stage run there trains the same model as on the CPU.

R1LAB_TEST_DEVICE=cuda runs the `on_device` tests with the model on a GPU (benchmarks/gpu_checks.sh);
by default they run on the CPU, where they check the plumbing (batches, autocast, checkpoints)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch

from r1lab import cli, pipeline
from r1lab.model import from_pretrained
from r1lab.stages import cold_start, grpo, pretrain, rejection_sampling, sample_eval, sft

DEVICE = os.environ.get("R1LAB_TEST_DEVICE", "cpu")
BASE = Path(sft.__file__).resolve().parents[1] / "assets" / "base-tiny"  # the shipped pretrained tiny model

CONFIGS = {
    "GRPOConfig": lambda **kw: grpo.GRPOConfig(**kw),
    "SFTConfig": lambda **kw: sft.SFTConfig(data="x.jsonl", **kw),
    "PretrainConfig": lambda **kw: pretrain.PretrainConfig(**kw),
    "SampleEvalConfig": lambda **kw: sample_eval.SampleEvalConfig(checkpoint=str(BASE), template="chat", **kw),
    "ColdStartConfig": lambda **kw: cold_start.ColdStartConfig(**kw),
    "RejectionSamplingConfig": lambda **kw: rejection_sampling.RejectionSamplingConfig(checkpoint=str(BASE), **kw),
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_reject_cuda_without_cuda(name):
    with pytest.raises(ValueError, match=f"{name}.device is 'cuda' but CUDA is not available"):
        CONFIGS[name](device="cuda")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_reject_a_string_that_is_no_device(name):
    with pytest.raises(ValueError, match=f"{name}.device: 'gpu0' is not a torch device"):
        CONFIGS[name](device="gpu0")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_reject_seeds_that_overflow_the_derived_step_seeds(name):
    """seed * 1,000,003 + step must stay a 64-bit integer: a seed of 2^45 failed after loading."""
    for seed in (-1, 2**32, 2**45):
        with pytest.raises(ValueError, match=rf"{name}.seed must be in \[0, 2\^32\)"):
            CONFIGS[name](seed=seed)


@pytest.mark.parametrize("name", sorted(n for n in CONFIGS if n != "SampleEvalConfig"))
def test_configs_reject_negative_threads(name):
    with pytest.raises(ValueError, match=f"{name}.threads must be >= 0"):
        CONFIGS[name](threads=-2)


def test_sample_eval_refuses_zero_new_tokens_before_loading():
    with pytest.raises(ValueError, match="max_new_tokens"):
        sample_eval.SampleEvalConfig(checkpoint="no-such-checkpoint", template="chat", max_new_tokens=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [["sft", "--data", "d.jsonl"], ["pretrain"], ["zero"],
                                  ["eval", "--data", "world", "--checkpoint", str(BASE)],
                                  ["cold-start", "--zero-checkpoint", str(BASE)],
                                  ["rejection-sample", "--checkpoint", str(BASE)], ["demo"]])
def test_cli_device_without_cuda_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "Hi?", "response": "Hello."}) + "\n")
    assert cli.main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA is not available" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_eval_device_without_checkpoint_is_refused(capsys):
    """--device and --bf16 say how a --checkpoint is sampled; with --completions they would be ignored."""
    assert cli.main(["eval", "--data", "world", "--device", "cpu"]) == 2
    assert "--device" in capsys.readouterr().err


def _sft_data(path: Path) -> Path:
    rng = random.Random(0)
    path.write_text("".join(json.dumps({"prompt": f"What is {rng.randint(1, 50)} + {rng.randint(1, 50)}?",
                                        "response": "<think>Add.</think>Done."}) + "\n" for _ in range(12)))
    return path


def _close_weights(a: Path, b: Path, atol: float) -> None:
    x, y = from_pretrained(a).state_dict(), from_pretrained(b).state_dict()  # both read back onto the CPU
    assert x.keys() == y.keys()
    worst = max((x[k].float() - y[k].float()).abs().max().item() for k in x)
    assert worst <= atol, worst


def test_sft_on_device_trains_the_cpu_model(tmp_path):
    """Two float32 SFT steps on DEVICE give the CPU run's weights (equal on the CPU; on a GPU up to
    matmul rounding), and the checkpoint written there loads on the CPU."""
    data = _sft_data(tmp_path / "d.jsonl")
    runs = {}
    for device in dict.fromkeys(("cpu", DEVICE)):
        runs[device] = sft.run(sft.SFTConfig(data=str(data), init=str(BASE), out_dir=str(tmp_path / device),
                                             seq_len=64, batch_size=4, max_steps=2, warmup_steps=1, bf16=False,
                                             device=device))
    _close_weights(runs["cpu"], runs[DEVICE], 0.0 if DEVICE == "cpu" else 1e-4)
    rows = [json.loads(line) for line in (tmp_path / DEVICE / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)


class Killed(Exception):
    pass


def test_pretrain_on_device_matches_the_cpu_and_resumes(tmp_path, capsys, monkeypatch):
    """The model is initialised on the CPU and moved: the same start anywhere; three float32 steps
    on DEVICE end at the CPU run's weights, also when killed after the step-2 checkpoint and resumed."""
    def config(out: Path, device: str, steps: int, resume: bool = False) -> pretrain.PretrainConfig:
        return pretrain.PretrainConfig(out_dir=str(out), n_docs=300, seq_len=32, batch_size=4, max_steps=steps,
                                       eval_every=3, save_every=2, warmup_steps=1, bf16=False, device=device,
                                       resume=resume)

    cpu = pretrain.run(config(tmp_path / "cpu", "cpu", 3))
    monkeypatch.setattr(pretrain.training, "prune_checkpoints", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        pretrain.run(config(tmp_path / "dev", DEVICE, 3))
    monkeypatch.undo()
    dev = pretrain.run(config(tmp_path / "dev", DEVICE, 3, resume=True))
    assert "at step 2" in capsys.readouterr().out
    _close_weights(cpu, dev, 0.0 if DEVICE == "cpu" else 1e-4)


def test_rejection_sampling_on_device_writes_verified_data(tmp_path):
    """The generative judge samples on the same device as the model it judges."""
    config = rejection_sampling.RejectionSamplingConfig(checkpoint=str(BASE), out_dir=str(tmp_path / "rs"), n_prompts=2,
                                                        samples_per_prompt=2, max_new_tokens=16, n_chat=4,
                                                        judge=str(BASE), judge_max_new_tokens=4, device=DEVICE)
    out = rejection_sampling.run(config)
    stats = json.loads((tmp_path / "rs" / "stats.json").read_text())
    assert out.exists() and stats["config"]["device"] == DEVICE


def test_sampling_eval_on_device_scores_the_held_out_split():
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), n_problems=4, k=2, max_new_tokens=24,
                                          template="r1_zero", device=DEVICE, bf16=DEVICE != "cpu")
    result = sample_eval.evaluate_checkpoint(config)
    summary = result.summary()
    assert summary["n_problems"] == 4 and summary["n_samples"] == 8 and 0.0 <= summary["pass@1"] <= 100.0


def test_the_pipelines_device_is_every_stages():
    config = pipeline.PipelineConfig(device=DEVICE)
    assert {getattr(config, name).device for name in pipeline.STAGE_CONFIGS} == {DEVICE}
