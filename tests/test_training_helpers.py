"""Training helpers, the CLI's config flags, curve smoothing and benchmark loading on odd input."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from dataclasses import dataclass

import pytest

from r1lab import cli, runtime, training
from r1lab.benchmarks import load_problems
from r1lab.plots import _smooth


def _named_checkpoint(root, name, complete=True):
    d = root / name
    d.mkdir()
    (d / "model.safetensors").write_text("w")
    if complete:
        (d / "trainer_state.pt").write_text("s")
    return d


def _ck(root, step, complete=True):
    return _named_checkpoint(root, f"step_{step:06d}", complete)


def test_prune_counts_only_complete_checkpoints(tmp_path):
    """A half-saved newer checkpoint counted toward `keep`, and the only resumable one was deleted."""
    _ck(tmp_path, 10)
    _ck(tmp_path, 20, complete=False)  # a crash after the weights, before trainer_state.pt
    _ck(tmp_path, 15)  # the resumed run (another --save-every) saves step 15, then prunes
    training.prune_checkpoints(tmp_path, 1)
    assert training.latest_checkpoint(tmp_path).name == "step_000015"


def test_checkpoints_ordered_by_number_past_six_digits(tmp_path):
    _ck(tmp_path, 999_999)
    _ck(tmp_path, 1_000_000)
    assert training.latest_checkpoint(tmp_path).name == "step_1000000"
    training.prune_checkpoints(tmp_path, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["step_1000000"]


@pytest.mark.parametrize("field", ["lr", "grad_clip", "weight_decay"])
def test_nan_optimizer_settings_rejected(field):
    ok = dict(lr=1e-3, grad_clip=1.0, weight_decay=0.1, warmup_steps=0, min_lr_ratio=0.1)
    with pytest.raises(ValueError):
        training.check_optimizer_settings(argparse.Namespace(**{**ok, field: float("nan")}))


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("grad_clip", -1.0), ("weight_decay", float("inf")),
                                          ("warmup_steps", -5), ("min_lr_ratio", 1.5)])
def test_a_bad_optimizer_setting_is_named_with_its_value(field, value):
    """`--weight-decay -1` said "lr and grad_clip must be > 0, weight_decay and warmup_steps >= 0":
    neither which flag was wrong nor its value."""
    from r1lab.stages.sft import SFTConfig

    with pytest.raises(ValueError, match=rf"^SFTConfig\.{field} must be .*, got {value}$"):
        SFTConfig(data="d.jsonl", **{field: value})


@pytest.mark.parametrize("field, value", [("lr", "3e-3"), ("grad_clip", None), ("weight_decay", "0.1"),
                                          ("min_lr_ratio", True), ("lr", True)])
def test_an_optimizer_setting_that_is_not_a_number_is_named(field, value):
    """A str (YAML reads 3e-3 as "3e-3") or None failed as "'<' not supported between instances of
    'int' and 'str'", naming neither field nor value; lr=True ran as an LR of 1.0."""
    from r1lab.stages.pretrain import PretrainConfig

    with pytest.raises(TypeError, match=rf"^PretrainConfig\.{field} must be a number, got {re.escape(repr(value))}$"):
        PretrainConfig(**{field: value})
    np = pytest.importorskip("numpy")
    assert PretrainConfig(lr=np.float32(1e-3), weight_decay=np.float64(0.1)).lr == pytest.approx(1e-3)


def test_smooth_survives_a_missing_value():
    out = _smooth([1.0, float("nan"), 1.0, 1.0, 1.0], 2)
    assert out[0] == 1.0 and all(v == 1.0 for v in out[2:])


def test_load_problems_accepts_a_utf8_bom(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"problem": "1+1?", "answer": "2"}\r\n')
    assert [(p.id, p.prompt, p.answer) for p in load_problems(path)] == [("0", "1+1?", "2")]


def test_bool_flags_show_their_default():
    @dataclasses.dataclass
    class C:
        bf16: bool = False
        resume: bool = True
    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser, C)
    help_text = " ".join(parser.format_help().split())
    assert "--bf16, --no-bf16 (default: False)" in help_text and "(default: True)" in help_text


@pytest.mark.parametrize("text", ['{"seed": 1', "[]", "\udcff"])
def test_resume_names_an_unreadable_saved_config(tmp_path, text):
    @dataclasses.dataclass
    class Config:
        seed: int = 0

    (tmp_path / "r1lab_config.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match="r1lab_config.json"):
        training.check_same_run(tmp_path, Config(), ("seed",))


def test_a_gpu_runs_trainer_state_resumes_on_a_cpu(tmp_path, monkeypatch):
    """A checkpoint saved by a --device cuda run failed to resume on a machine without CUDA, with
    a RuntimeError traceback from torch.load (its optimizer state is stored on the GPU)."""
    import random

    import torch
    import torch.serialization

    model = torch.nn.Linear(2, 2)
    optimizer = training.make_optimizer(model, 1e-3, 0.0)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    state = {"step": 3, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
             "python_rng": random.getstate()}
    with monkeypatch.context() as m:  # every tensor stored as a GPU run's would be
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, tmp_path / "trainer_state.pt")
    resumed = training.make_optimizer(model, 1e-3, 0.0)
    assert training.load_training_state(tmp_path, resumed)["step"] == 3
    assert all(v.device.type == "cpu" for s in resumed.state.values() for v in s.values())


def test_a_resumed_optimizer_takes_this_runs_weight_decay_not_the_checkpoints(tmp_path):
    """torch's load_state_dict restored the saved groups' settings: a run resumed with
    --weight-decay 0.5 trained on with the checkpoint's 0.1, in silence."""
    import random

    import torch

    model = torch.nn.Linear(2, 2)
    optimizer = training.make_optimizer(model, 1e-3, 0.1)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    torch.save({"step": 1, "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate()}, tmp_path / "trainer_state.pt")
    resumed = training.make_optimizer(model, 1e-3, 0.5, betas=(0.8, 0.99))
    training.load_training_state(tmp_path, resumed)
    assert [(g["weight_decay"], g["betas"]) for g in resumed.param_groups] == [(0.5, (0.8, 0.99)), (0.0, (0.8, 0.99))]
    saved = optimizer.state[model.weight]["exp_avg"]  # the moments are the checkpoint's
    assert torch.equal(resumed.state[model.weight]["exp_avg"], saved) and saved.abs().sum() > 0


def test_resume_accepts_the_same_path_spelled_otherwise(tmp_path, monkeypatch):
    """A demo killed in its cold-start SFT and rerun with --out spelled otherwise (run vs /abs/run)
    stopped with "changed since it was saved: data 'run/cold_start/data.jsonl' -> '/abs/...'"."""
    import json

    @dataclasses.dataclass
    class Config:
        data: str

    monkeypatch.chdir(tmp_path)
    (tmp_path / "r1lab_config.json").write_text(json.dumps({"data": "run/cold_start/data.jsonl"}))
    training.check_same_run(tmp_path, Config(data=str(tmp_path / "run" / "." / "cold_start" / "data.jsonl")),
                            ("data",))
    with pytest.raises(ValueError, match="data 'run/cold_start/data.jsonl' -> 'run/other.jsonl'"):
        training.check_same_run(tmp_path, Config(data="run/other.jsonl"), ("data",))


def test_plots_skip_what_they_cannot_draw(tmp_path, capsys):
    """An empty log raised, a null metric crashed the smoothing (TypeError): a run's end must not."""
    from r1lab.plots import plot_rl_curves

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert plot_rl_curves(empty, tmp_path / "empty.png").stat().st_size > 0
    assert "no metrics to plot" in capsys.readouterr().out

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "accuracy": null, "format_rate": 0.5, "length_mean": 10}\n'
                   '{"step": 2, "accuracy": 0.25, "format_rate": null, "length_mean": 12}\n'
                   '{"accuracy": 1.0}\n[1, 2]\n{"step": 3, "accura')
    assert plot_rl_curves(log, tmp_path / "c.png").stat().st_size > 0
    assert capsys.readouterr().out.splitlines() == [
        f"plots: skipped 3 line(s) of {log} without a readable record and step",
        f"plots: no values of 'reward/total' in {log}; not plotted"]


@pytest.mark.parametrize("device", [None, 1.5])
def test_a_device_that_is_not_a_device_string_is_named(device):
    """None (an unset setting) raised torch's TypeError, a multi-line list of device() signatures
    that named neither the config nor the field."""
    with pytest.raises(ValueError, match=rf"^SFTConfig\.device: {device!r} is not a torch device \(cpu, cuda, cuda:1, \.\.\.\)$"):
        runtime.check_device(device, "SFTConfig")


@pytest.mark.parametrize("device", ["mps", "meta", "xpu:0"])
def test_a_device_this_machine_lacks_is_named(device):
    """Only cuda was checked: --device mps on this CPU-only machine failed deep in the model load
    (NotImplementedError), and meta ran on tensors without data."""
    import torch

    backend = getattr(torch, device.split(":")[0], None)
    if backend is not None and backend.is_available():
        pytest.skip(f"this machine has a {device} device")
    with pytest.raises(ValueError, match=rf"SFTConfig.device is '{device}' but no {device.split(':')[0]} device is available"):
        runtime.check_device(device, "SFTConfig")
    runtime.check_device("cpu", "SFTConfig")  # what this machine has still passes


# Checkpoint discovery and pruning touch only the `step_<digits>` directories r1lab writes.
def test_prune_leaves_a_copy_the_user_made_beside_the_checkpoints(tmp_path):
    """step_000010_copy read as step -1: counted toward `keep` and then deleted as the oldest."""
    _named_checkpoint(tmp_path, "step_000010_copy")
    _named_checkpoint(tmp_path, "step_000020")
    _named_checkpoint(tmp_path, "step_000030")
    training.prune_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000010_copy", "step_000020", "step_000030"]
    training.prune_checkpoints(tmp_path, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000010_copy", "step_000030"]


def test_a_copy_alone_is_not_a_checkpoint_to_resume(tmp_path):
    _named_checkpoint(tmp_path, "step_backup")
    assert training.latest_checkpoint(tmp_path) is None
    _named_checkpoint(tmp_path, "step_000005")
    assert training.latest_checkpoint(tmp_path).name == "step_000005"


# MetricsLog on resume: lines a crash or a hand edit leaves must give a clear error, not a TypeError.
def test_a_line_that_is_not_a_json_object_is_named(tmp_path):
    """A JSON list or number parsed as a "record": truncate_after then died in AttributeError
    ('list' object has no attribute 'get')."""
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    log.path.write_text('{"step": 1}\n[1, 2]\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON record \(a JSON list"):
        log.read()
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON record"):
        training.open_log(log.path, 1)
    assert log.path.read_text() == '{"step": 1}\n[1, 2]\n{"step": 3}\n'  # left as it was


@pytest.mark.parametrize("bad", ["null", '"3"', "true"])
def test_a_record_whose_step_is_not_a_number_is_named_on_resume(tmp_path, bad):
    """`step: null` raised TypeError ('<=' not supported between NoneType and int) mid-resume;
    "3" the same; true counted as step 1 and was kept."""
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    text = f'{{"step": 1}}\n{{"step": {bad}, "loss": 0.5}}\n{{"step": 3}}\n'
    log.path.write_text(text)
    with pytest.raises(ValueError, match=r"metrics\.jsonl: the record .* has step .*not a number"):
        log.truncate_after(2)
    assert log.path.read_text() == text


def test_truncate_after_keeps_records_up_to_the_step_and_those_without_one(tmp_path):
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    log.path.write_text('{"step": 1}\n{"note": "x"}\n{"step": 2.0}\n{"step": 3}\n{"step": 4, "lo')
    training.open_log(log.path, 2)
    assert log.read() == [{"step": 1}, {"note": "x"}, {"step": 2.0}]
    log.write({"step": 3})  # the redone step appends on a clean line
    assert log.path.read_text() == '{"step": 1}\n{"note": "x"}\n{"step": 2.0}\n{"step": 3}\n'


# start_run on an --out-dir that is a file says so, as rejection-sample does.
@dataclass
class _Config:
    out_dir: str
    seed: int = 0


def test_an_out_dir_that_is_a_file_is_named_as_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=f"^cannot use {tmp_path / 'afile'} as a directory: it is a file$"):
        training.start_run(_Config(out_dir=str(tmp_path / "afile")), "sft", fresh=True)
    with pytest.raises(ValueError, match=f"{tmp_path / 'afile'} is a file, not a directory$"):
        training.start_run(_Config(out_dir=str(tmp_path / "afile" / "run")), "sft", fresh=True)
    assert (tmp_path / "afile").read_text() == "x"


# the learning-rate schedule: linear warmup from lr/warmup, the peak on the warmup's last step and the
# decay's first, cosine to lr * min_lr_ratio reached at total_steps (one past the last step)
@pytest.mark.parametrize("step, expected", [(0, 0.25), (3, 1.0), (4, 1.0), (9, 0.55),
                                            (13, 0.1 + 0.9 * 0.5 * (1 - 0.9510565163)), (14, 0.1), (20, 0.1)])
def test_lr_schedule_at_hand_computed_steps(step, expected):
    lr = training.lr_at(step, lr=1.0, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    assert lr == pytest.approx(expected, abs=1e-9)
    assert training.lr_at(0, lr=2e-3, warmup_steps=0, total_steps=10, min_lr_ratio=0.1) == 2e-3


# a run no longer than its warmup only ramps the learning rate up, and says so
@pytest.mark.parametrize("warmup, total, said", [(10, 4, "40%"), (4, 4, "100%"), (3, 4, None), (0, 0, None)])
def test_a_run_that_is_all_warmup_is_warned_about(capsys, warmup, total, said):
    training.warn_if_all_warmup(warmup, total)
    out = capsys.readouterr().out
    if said is None:
        assert out == ""
    else:
        assert f"warmup_steps {warmup} >= the run's {total} steps" in out and f"to {said} of --lr" in out
    lrs = [training.lr_at(s, lr=1.0, warmup_steps=warmup, total_steps=total, min_lr_ratio=0.1) for s in range(total)]
    if said is not None:  # by hand: step s of the warmup is (s + 1) / warmup of the peak, rising to the end
        assert lrs == pytest.approx([(s + 1) / warmup for s in range(total)])


# An SFT example's meta cannot hold its own fields: written as top-level fields, they would replace them.
@pytest.mark.parametrize("name", ["prompt", "response", "system"])
def test_meta_naming_an_example_field_is_refused(tmp_path, name):
    """meta={"prompt": ...} silently replaced the example's prompt in the written file."""
    from r1lab.data import SFTExample, read_sft_jsonl, write_sft_jsonl

    with pytest.raises(ValueError, match=rf"meta must not hold the example's own fields \['{name}'\]"):
        SFTExample(prompt="2+2?", response="4", meta={name: "other", "kind": "add"})
    kept = SFTExample(prompt="2+2?", response="4", meta={"kind": "add"})
    assert read_sft_jsonl(write_sft_jsonl(tmp_path / "d.jsonl", [kept])) == [kept]


# pretraining logs its throughput every 10 steps and on the last one, so a run of fewer than 10 steps has one
def test_a_short_pretrain_run_logs_its_throughput_on_the_last_step(tmp_path):
    import json

    from r1lab.stages import pretrain

    config = pretrain.PretrainConfig(out_dir=str(tmp_path), n_docs=100, seq_len=32, batch_size=2, max_steps=3,
                                     warmup_steps=1, eval_every=10, save_every=10, bf16=False)
    pretrain.run(config)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert ["tokens_per_s" in r for r in rows] == [False, False, True] and rows[-1]["tokens_per_s"] > 0


# tokens/s is training speed: a held-out evaluation or a checkpoint save inside an interval is not counted
def test_pretrain_throughput_leaves_out_evaluation_and_checkpoint_time(tmp_path, monkeypatch):
    import json
    import types

    from r1lab import metrics, training
    from r1lab.stages import pretrain

    clock = [0.0]  # a fake clock: each training step takes 1 s, each evaluation and each save 100 s
    monkeypatch.setattr(metrics, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    balance = pretrain.max_mean_load_ratio
    monkeypatch.setattr(pretrain, "max_mean_load_ratio", lambda load: clock.__setitem__(0, clock[0] + 1) or balance(load))
    monkeypatch.setattr(pretrain, "heldout_loss", lambda *a, **k: clock.__setitem__(0, clock[0] + 100) or 0.0)
    save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint",
                        lambda *a, **k: clock.__setitem__(0, clock[0] + 100) or save(*a, **k))
    config = pretrain.PretrainConfig(out_dir=str(tmp_path), n_docs=100, seq_len=32, batch_size=2, max_steps=20,
                                     warmup_steps=1, eval_every=10, save_every=10, bf16=False)
    pretrain.run(config)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # 10 steps of 2 x 32 tokens in 10 s each interval; the evaluation and save at step 10 counted in the
    # second one made it 640 / 210 s
    assert [rows[9]["tokens_per_s"], rows[19]["tokens_per_s"]] == [64.0, 64.0]


# Every stage config refuses a non-integer in a field declared int, by name, before anything runs.
def _stage_configs() -> list[tuple[type, dict]]:
    from r1lab import pipeline
    from r1lab.stages import cold_start, grpo, pretrain, rejection_sampling, sample_eval, sft

    return [(grpo.GRPOConfig, {}), (pretrain.PretrainConfig, {}), (cold_start.ColdStartConfig, {}),
            (rejection_sampling.RejectionSamplingConfig, {"checkpoint": "ck"}), (sft.SFTConfig, {"data": "d.jsonl"}),
            (sample_eval.SampleEvalConfig, {"checkpoint": "ck"}), (pipeline.PipelineConfig, {})]


@pytest.mark.parametrize("cls, required", _stage_configs(), ids=lambda c: getattr(c, "__name__", ""))
def test_stage_configs_refuse_non_integer_counts_by_name(cls, required):
    ints = [f.name for f in dataclasses.fields(cls) if f.type == "int"]
    assert len(ints) >= 3  # seed, a step or sample count, threads or an eval size
    for name in ints:
        default = getattr(cls(**required), name)
        for bad in (default + 0.5, float(default), True):  # 2.5 ran as 3 or failed mid-run; True ran as 1
            with pytest.raises(ValueError, match=rf"{cls.__name__}\.{name} must be an integer( >= 1)?, got {bad!r}"):
                cls(**required, **{name: bad})


@pytest.mark.parametrize("cls, required", _stage_configs(), ids=lambda c: getattr(c, "__name__", ""))
def test_stage_configs_refuse_a_bool_setting_that_is_not_a_bool(cls, required):
    """bf16="false" (a str from an environment variable) is true: it trained in bf16, in silence."""
    flags = [f.name for f in dataclasses.fields(cls) if f.type == "bool"]
    assert flags  # bf16, resume or a pipeline switch
    for name in flags:
        assert isinstance(getattr(cls(**required), name), bool)
        for bad in ("false", None, 0):
            with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{name} must be True or False, got {bad!r}$"):
                cls(**required, **{name: bad})


def test_a_step_folder_with_a_non_ascii_digit_is_not_a_checkpoint(tmp_path):
    for name in ("step_2", "step_\u00b2", "step_\u0663"):  # "²" passed isdigit() and then failed int()
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.pt").write_bytes(b"")
    assert [p.name for p in training._complete_checkpoints(tmp_path)] == ["step_2"]


# AdamW's decoupled decay on a zero gradient is p <- p * (1 - lr * wd) exactly (Adam's own step is 0):
# matrices (embeddings and head too) shrink by it, norm weights not at all; set_lr reaches both groups
def test_weight_decay_shrinks_matrices_not_norms_at_the_lr_set_on_every_group():
    import torch

    from r1lab.model import Transformer, preset

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0))
    optimizer = training.make_optimizer(model, 1.0, 0.1)
    training.set_lr(optimizer, 0.5)  # each step sets the schedule's LR: the norms' group kept the peak
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 0.5]
    held = sorted(id(p) for g in optimizer.param_groups for p in g["params"])  # every parameter, once
    assert held == sorted(id(p) for p in model.parameters())
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    names = [name for name, _ in model.named_parameters()]
    assert "lm_head.weight" in names and "model.embed_tokens.weight" in names and "model.norm.weight" in names
    for name, p in model.named_parameters():
        factor = 1.0 if name.endswith("norm.weight") else 1 - 0.5 * 0.1
        torch.testing.assert_close(p.detach(), before[name] * factor, rtol=1e-6, atol=0, msg=name)


# a checkpoint at exactly the run's last step resumes (to nothing left to do); one step past it is refused
def test_resume_from_the_last_step_is_allowed_and_one_past_it_refused(tmp_path):
    training.check_resume_step(tmp_path / "step_000004", 4)
    training.check_resume_step(None, 0)
    with pytest.raises(ValueError, match=r"step_000004: past this run's 3 steps"):
        training.check_resume_step(tmp_path / "step_000004", 3)


# Each training stage's resume refuses a change of any setting that decides its data or their order
# (the step count would index another plan). Hand-listed per stage, so a field dropped from a stage's
# list is caught.
@pytest.mark.parametrize("stage, field, value", [
    ("pretrain", "model", "student"), ("pretrain", "seed", 1), ("pretrain", "n_docs", 999),
    ("pretrain", "vocab_size", 512), ("pretrain", "seq_len", 128), ("pretrain", "batch_size", 8),
    ("grpo", "init", "other/policy"), ("grpo", "seed", 1), ("grpo", "n_prompts", 99),
    ("grpo", "prompts_per_step", 4), ("grpo", "group_size", 4), ("grpo", "template", "chat"),
    ("sft", "data", "other.jsonl"), ("sft", "init", "other/base"), ("sft", "seed", 1), ("sft", "seq_len", 128),
    ("sft", "batch_size", 2), ("sft", "packing", False),
    ("all_scenario", "n_prompts", 99), ("all_scenario", "n_general", 9), ("all_scenario", "harmful_share", 0.5),
    ("all_scenario", "seed", 1)])
def test_a_resume_with_a_setting_of_the_data_plan_changed_is_refused(stage, field, value, tmp_path):
    from r1lab.stages import all_scenario, grpo, pretrain, sft

    make, load = {"pretrain": (pretrain.PretrainConfig, pretrain.run),
                  "grpo": (grpo.GRPOConfig, lambda c: grpo._load(c, grpo.SAME_RUN_FIELDS)),
                  "all_scenario": (lambda **kw: all_scenario.AllScenarioConfig(helpful_rm="h", safety_rm="s", **kw),
                                   lambda c: grpo._load(c, all_scenario.SAME_RUN_FIELDS)),
                  "sft": (lambda **kw: sft.SFTConfig(data="train.jsonl", **kw), lambda c: sft._load(c, "digest"))}[stage]
    config = make(out_dir=str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    step = _named_checkpoint(tmp_path / "checkpoints", "step_000001")
    (step / "r1lab_config.json").write_text(json.dumps(dataclasses.asdict(config), default=str))
    with pytest.raises(ValueError, match=rf"changed since it was saved: {field} "):
        load(dataclasses.replace(config, resume=True, **{field: value}))


@pytest.mark.parametrize("avx512_bf16,amx", [(False, False), (True, False), (False, True)])
def test_stages_default_to_bf16_only_where_the_cpu_computes_it_in_hardware(monkeypatch, avx512_bf16, amx):
    """On a CPU that emulates bf16 (AVX2 only) bf16 training was 10-14x slower than float32: the stages
    whose default was bf16 now default to it only on AVX-512 BF16 or AMX CPUs (or a GPU)."""
    import warnings

    import torch

    from r1lab.stages import preference_data, pretrain, reward_model, sft

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    native = avx512_bf16 or amx
    assert runtime.native_bf16("cpu") is native and runtime.default_bf16() is native
    for config in (pretrain.PretrainConfig, sft.SFTConfig, reward_model.RewardModelConfig,
                   preference_data.PreferenceDataConfig):
        bf16 = {f.name: f for f in dataclasses.fields(config)}["bf16"]
        assert bf16.default_factory() is native, config.__name__
        parser = argparse.ArgumentParser()
        cli.add_config_arguments(parser, config)
        assert parser.parse_args([]).bf16 is native  # what `--help` shows and a run takes
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with runtime.autocast(True, "cpu"):
            pass
    assert [str(w.message) for w in seen] == ([] if native else [
        "bf16 on a CPU without AVX-512 BF16 or AMX is emulated and many times slower than float32 here "
        "(pass --no-bf16)"])


def test_bf16_is_the_default_beside_a_gpu_without_starting_cuda(monkeypatch):
    """With a GPU, bf16 stays the default, decided without asking the device (which would start a CUDA
    context on GPU 0 in every torchrun process, before each sets its own)."""
    import torch

    def refuse() -> bool:
        raise AssertionError("asked the GPU")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", refuse)
    monkeypatch.setattr(torch.cuda, "get_device_properties", refuse)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert runtime.default_bf16() is True and runtime.native_bf16("cpu") is False
