"""The demo pipeline end to end at toy size, from the shipped base model: every stage runs,
leaves its outputs in the run directory, and a rerun reuses what is finished."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1lab import pipeline, reuse
from r1lab.prompts import CHAT
from r1lab.stages import (all_scenario, cold_start, general_eval, grpo, preference_data, pretrain, rejection_sampling,
                          reward_model, sft)


def toy_config(out) -> pipeline.PipelineConfig:
    rl = dict(n_prompts=16, prompts_per_step=2, group_size=2, max_steps=2, max_new_tokens=16, save_every=100,
              log_samples_every=1)
    return pipeline.PipelineConfig(
        out_dir=str(out), eval_problems=4, eval_samples=2, zero=grpo.GRPOConfig(**rl),
        cold_start_data=cold_start.ColdStartConfig(n_prompts=4, samples_per_prompt=2, max_new_tokens=16, n_long_cot=12),
        cold_start_sft=pipeline._sft_defaults(epochs=1, batch_size=4, seq_len=256),
        reasoning_rl=grpo.GRPOConfig(**rl, template=CHAT, language_weight=1.0),
        rejection=rejection_sampling.RejectionSamplingConfig(checkpoint=pipeline.SET_HERE, n_prompts=4,
                                                             samples_per_prompt=2, max_new_tokens=24, n_chat=8),
        final_sft=pipeline._sft_defaults(epochs=1, batch_size=4, seq_len=256),
        student=pretrain.PretrainConfig(model="student", n_docs=300, seq_len=64, batch_size=4, max_steps=2,
                                        warmup_steps=1, eval_every=2, save_every=1),
        preference_data=preference_data.PreferenceDataConfig(checkpoint=pipeline.SET_HERE, n_written=8, n_sampled=4,
                                                             samples_per_prompt=2, max_new_tokens=16),
        helpful_rm=reward_model.RewardModelConfig(data=pipeline.SET_HERE, objective="pairwise", batch_size=4),
        safety_rm=reward_model.RewardModelConfig(data=pipeline.SET_HERE, objective="pointwise", batch_size=4),
        all_scenario=all_scenario.AllScenarioConfig(**rl, helpful_rm=pipeline.SET_HERE, safety_rm=pipeline.SET_HERE,
                                                    n_general=8),
        student_zero=grpo.GRPOConfig(**rl), distill_sft=pipeline._sft_defaults(epochs=1, batch_size=4, seq_len=256))


def test_pipeline_runs_every_stage_and_reuses_finished_ones(tmp_path):
    config = toy_config(tmp_path)
    rows = pipeline.run(config)
    assert [r.stage for r in rows] == ["base", "R1-Zero", "cold start (SFT)", "cold start + reasoning RL",
                                       "rejection-sampled SFT", "all-scenario RL", "student base",
                                       "student R1-Zero (RL only)", "distilled student (SFT on the RS set)"]
    assert all(0.0 <= r.pass_at_1 <= 1.0 for r in rows)
    # None: no sample reasoned (the toy student's, after two steps)
    assert all(r.language_consistency is None or 0.0 <= r.language_consistency <= 1.0 for r in rows)
    for path in ("zero/curves.png", "cold_start/data.jsonl", "cold_start/model/config.json",
                 "reasoning_rl/curves.png", "reasoning_rl/policy/config.json", "rejection/data.jsonl",
                 "rejection/stats.json", "rejection/model/config.json", "student/base/config.json",
                 "student_zero/policy/config.json", "distill/model/config.json", "results.md"):
        assert (tmp_path / path).stat().st_size > 0, path
    rl_config = json.loads((tmp_path / "reasoning_rl" / "policy" / "r1lab_config.json").read_text())
    assert rl_config["init"].endswith("cold_start/model") and rl_config["template"] == "chat"
    final_config = json.loads((tmp_path / "rejection" / "model" / "r1lab_config.json").read_text())
    assert final_config["init"] == str(pipeline.SHIPPED_BASE)  # the base model is fine-tuned, as in R1 §2.3.3
    # the student: pretrained here, dense, then RL alone from its base, or SFT of its base on the RS set (R1 §2.4)
    student = json.loads((tmp_path / "student" / "base" / "config.json").read_text())
    assert student["first_k_dense_replace"] == student["num_hidden_layers"] and student["hidden_size"] == 64
    for stage, data in (("student_zero/policy", None), ("distill/model", str(tmp_path / "rejection" / "data.jsonl"))):
        saved_config = json.loads((tmp_path / stage / "r1lab_config.json").read_text())
        assert saved_config["init"] == str(tmp_path / "student" / "base") and saved_config.get("data") == data
    # all-scenario RL (R1 §2.3.4): reward models from the RS-SFT model, GRPO from it with both models' scores
    rejection_model = str(tmp_path / "rejection" / "model")
    for name, objective in (("helpful_rm", "pairwise"), ("safety_rm", "pointwise")):
        rm = json.loads((tmp_path / "all_scenario" / name / "model" / "r1lab_config.json").read_text())
        assert rm["init"] == rejection_model and rm["objective"] == objective
        assert json.loads((tmp_path / "all_scenario" / name / "model" / "config.json").read_text())["architectures"] == [
            "DeepseekV3ForSequenceClassification"]
    policy = json.loads((tmp_path / "all_scenario" / "policy" / "r1lab_config.json").read_text())
    assert policy["init"] == rejection_model and policy["helpful_rm"] == str(tmp_path / "all_scenario" / "helpful_rm" / "model")
    steps = [json.loads(line) for line in (tmp_path / "all_scenario" / "metrics.jsonl").read_text().splitlines()]
    assert any({"reward/accuracy", "reward/helpful", "reward/safety", "reward/verdict"} <= set(s) for s in steps)
    general = json.loads((tmp_path / "results_general.json").read_text())
    assert [g["stage"] for g in general] == ["rejection-sampled SFT", "all-scenario RL"]
    assert all(0 <= g[k] <= 100 for g in general for k in ("helpful", "harmless", "over_refusal"))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["stage"] for r in saved] == [r.stage for r in rows]
    mtime = (tmp_path / "reasoning_rl" / "policy" / "model.safetensors").stat().st_mtime
    assert pipeline.run(config) == rows  # a rerun reuses the finished stages
    assert (tmp_path / "reasoning_rl" / "policy" / "model.safetensors").stat().st_mtime == mtime


def test_pipeline_can_stop_after_r1_zero(tmp_path):
    config = toy_config(tmp_path)
    config.stop_after = "zero"
    assert [r.stage for r in pipeline.run(config)] == ["base", "R1-Zero"]
    assert not (tmp_path / "cold_start").exists()


class Killed(Exception):
    pass


def test_interrupted_stages_continue_from_their_checkpoint(tmp_path, monkeypatch, capsys):
    """A GRPO or SFT stage killed after a checkpoint goes on from it when the demo is rerun."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} + 1?", "response": f"<think>{i} + 1 = {i + 1}"
                                        f"</think>{i + 1}"}) + "\n" for i in range(8)))
    rl = grpo.GRPOConfig(n_prompts=8, prompts_per_step=2, group_size=2, max_steps=3, max_new_tokens=4, save_every=2)
    sft_settings = sft.SFTConfig(data=pipeline.SET_HERE, max_steps=3, save_every=2, batch_size=2, seq_len=64,
                                 bf16=False)
    stages = {"rl": lambda: pipeline._rl(rl, pipeline.SHIPPED_BASE, tmp_path / "rl", 0),
              "sft": lambda: pipeline._sft(sft_settings, data, pipeline.SHIPPED_BASE, tmp_path / "sft", 0)}
    for name, stage in stages.items():
        monkeypatch.setattr(grpo.training, "prune_checkpoints", lambda *a, **k: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):  # killed right after its step-2 checkpoint
            stage()
        monkeypatch.undo()
        capsys.readouterr()
        stage()
        out = capsys.readouterr().out
        assert "an interrupted run left" in out and "at step 2" in out, name
        steps = [json.loads(line)["step"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3], name


def test_eval_cache_is_redone_for_a_retrained_checkpoint(tmp_path, monkeypatch):
    calls = []

    def fake_evaluate(settings):
        calls.append(settings.checkpoint)
        return SimpleNamespace(summary=lambda: dict.fromkeys(
            ("pass@1", "pass@k", "cons@k", "format_rate", "length_mean", "reasoning_share", "accuracy_reasoning",
             "accuracy_bare", "language_consistency"), float(len(calls))))

    monkeypatch.setattr(pipeline, "evaluate_checkpoint", fake_evaluate)
    checkpoint = tmp_path / "zero" / "policy"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), eval_problems=4, eval_samples=2)
    first = pipeline.evaluate("R1-Zero", checkpoint, config, 1.0)
    assert pipeline.evaluate("R1-Zero", checkpoint, config, 1.0) == first and len(calls) == 1  # cached
    os.utime(checkpoint / "model.safetensors", ns=(0, 10**9))  # the stage was trained again: new weights file
    again = pipeline.evaluate("R1-Zero", checkpoint, config, 1.0)
    assert len(calls) == 2 and again.pass_at_1 == 2.0
    config.eval_samples = 4  # other settings: another cache file, evaluated again
    pipeline.evaluate("R1-Zero", checkpoint, config, 1.0)
    assert len(calls) == 3


def test_eval_cache_is_kept_however_the_checkpoint_path_is_spelled(tmp_path, monkeypatch):
    """The cache held the checkpoint path as spelled: the same run directory given relative,
    absolute or through '..' evaluated the same weights again each time."""
    calls = []
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", lambda settings: calls.append(1) or _fake_evaluate(settings))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x" / "zero" / "policy").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "zero" / "policy" / "model.safetensors").write_bytes(b"weights")
    for out in ("runs/x", str(tmp_path / "runs" / "x"), "runs/../runs/x/"):
        config = pipeline.PipelineConfig(out_dir=out, eval_problems=4, eval_samples=2)
        pipeline.evaluate("R1-Zero", Path(out) / "zero" / "policy", config, 1.0)
    assert len(calls) == 1


def test_an_interrupted_pretraining_continues_from_its_checkpoint(tmp_path, monkeypatch):
    """`--pretrain` killed after a checkpoint: the rerun resumes it (it started afresh and deleted
    the checkpoints before)."""
    seen = []
    monkeypatch.setattr(pipeline.pretrain, "run", lambda config: seen.append(config.resume) or tmp_path)
    config = toy_config(tmp_path)
    config.pretrain = True
    pipeline.base_checkpoint(config)
    step = tmp_path / "base" / "checkpoints" / "step_000750"
    step.mkdir(parents=True)
    (step / "trainer_state.pt").write_text("")
    pipeline.base_checkpoint(config)
    assert seen == [False, True]


def test_an_interrupted_student_pretraining_continues_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    """Distillation's student (R1 §2.4) is pretrained in the run: killed after a checkpoint, the rerun
    resumes it, and once finished only its model is left, not its resume checkpoints."""
    _fake_chain(monkeypatch, tmp_path)
    resumed = []

    def killed_after_a_checkpoint(config):
        resumed.append(config.resume)
        step = Path(config.out_dir) / "checkpoints" / "step_000500"
        step.mkdir(parents=True)
        (step / "trainer_state.pt").write_text("")
        (step / "r1lab_config.json").write_text(_saved(config))
        raise Killed()

    def finished(config):
        resumed.append(config.resume)
        out = Path(config.out_dir) / "base"
        out.mkdir()
        (out / "r1lab_config.json").write_text(_saved(config))
        (out / "model.safetensors").write_text("weights")
        return out

    config = toy_config(tmp_path)
    monkeypatch.setattr(pipeline.pretrain, "run", killed_after_a_checkpoint)
    with pytest.raises(Killed):
        pipeline.run(config)
    monkeypatch.setattr(pipeline.pretrain, "run", finished)
    rows = pipeline.run(config)
    assert resumed == [False, True] and rows[-3].stage == "student base"
    assert not (tmp_path / "student" / "checkpoints").exists()


def test_the_shipped_student_base_is_used_only_for_the_settings_it_was_trained_with(tmp_path, monkeypatch):
    """The student's base ships pretrained with the demo's settings and seed 0; `--pretrain`, another
    seed or other pretraining settings pretrain it here, and one pretrained here is kept."""
    pretrained = []

    def fake_pretrain(config):
        pretrained.append(config.out_dir)
        out = Path(config.out_dir) / "base"
        out.mkdir(parents=True)
        (out / "r1lab_config.json").write_text(_saved(config))
        (out / "model.safetensors").write_text("weights")
        return out

    monkeypatch.setattr(pipeline.pretrain, "run", fake_pretrain)
    demo = pipeline.PipelineConfig(out_dir=str(tmp_path / "shipped"))
    assert pipeline._student_base(demo) == (pipeline.SHIPPED_STUDENT, 0.0) and not pretrained
    # on a CPU without bf16 in hardware the default is float32: the shipped (bf16) base is still these settings'
    for flag in (False, True):
        config = dataclasses.replace(demo, student=dataclasses.replace(demo.student, bf16=flag))
        assert pipeline._student_base(config) == (pipeline.SHIPPED_STUDENT, 0.0) and not pretrained
    for name, change in (("pretrain", dict(pretrain=True)), ("seed", dict(seed=1)),
                         ("steps", dict(student=dataclasses.replace(demo.student, max_steps=800)))):
        config = dataclasses.replace(demo, out_dir=str(tmp_path / name), **change)
        assert pipeline._student_base(config)[0] == tmp_path / name / "student" / "base"
        assert pretrained[-1] == str(tmp_path / name / "student")
    # pretrained here once: kept by a later run without --pretrain, not swapped for the shipped one
    again = dataclasses.replace(demo, out_dir=str(tmp_path / "pretrain"))
    assert pipeline._student_base(again)[0] == tmp_path / "pretrain" / "student" / "base" and len(pretrained) == 3


def _fake_evaluate(settings):
    return SimpleNamespace(summary=lambda: dict.fromkeys(
        ("pass@1", "pass@k", "cons@k", "format_rate", "length_mean", "reasoning_share", "accuracy_reasoning",
         "accuracy_bare", "language_consistency"), 0.0))


def test_a_finished_stage_built_with_other_settings_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", _fake_evaluate)
    config = toy_config(tmp_path)
    config.stop_after = "zero"
    pipeline.run(config)
    config.seed = 1  # the R1-Zero policy on disk was trained with seed 0
    with pytest.raises(ValueError, match="other settings.*seed 0 -> 1"):
        pipeline.run(config)


def test_a_cache_file_cut_short_by_a_crash_is_evaluated_again(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", _fake_evaluate)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), eval_problems=4, eval_samples=2)
    first = pipeline.evaluate("base", pipeline.SHIPPED_BASE, config, 1.0)
    cache = tmp_path / "eval" / "base-n4-k2-s0.json"
    cache.write_text(cache.read_text()[:40])  # what a kill during the write leaves
    assert pipeline.evaluate("base", pipeline.SHIPPED_BASE, config, 1.0) == first


def test_a_rebuilt_stage_rebuilds_what_was_built_from_it(tmp_path, capsys):
    """Deleting R1-Zero's policy to rebuild it (as the settings error advises) resumed from the
    finished run's left-over checkpoints, and the cold start built from the old policy was reused."""
    config = toy_config(tmp_path)
    config.stop_after, config.zero.save_every = "cold_start", 1
    pipeline.run(config)
    assert not (tmp_path / "zero" / "checkpoints").exists()  # they served only to resume the stage
    built = {p: (tmp_path / p).stat().st_mtime_ns for p in ("cold_start/data.jsonl", "cold_start/model/model.safetensors")}
    shutil.rmtree(tmp_path / "zero" / "policy")
    capsys.readouterr()
    pipeline.run(config)
    out = capsys.readouterr().out
    assert "interrupted run" not in out and "was built from an earlier version of" in out
    assert all((tmp_path / p).stat().st_mtime_ns != t for p, t in built.items())
    capsys.readouterr()
    pipeline.run(config)  # and now everything is current again
    assert "building it again" not in capsys.readouterr().out


def test_a_rerun_reuses_stages_however_the_run_directory_is_spelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = toy_config("run")
    config.stop_after = "cold_start"
    rows = pipeline.run(config)
    mtime = (tmp_path / "run" / "cold_start" / "model" / "model.safetensors").stat().st_mtime_ns
    again = toy_config(str(tmp_path / "." / "run"))
    again.stop_after = "cold_start"
    assert [r.pass_at_1 for r in pipeline.run(again)] == [r.pass_at_1 for r in rows]
    assert (tmp_path / "run" / "cold_start" / "model" / "model.safetensors").stat().st_mtime_ns == mtime


def test_a_cut_stats_file_is_named_in_one_error(tmp_path):
    config = toy_config(tmp_path)
    config.stop_after = "cold_start"
    pipeline.run(config)
    stats = tmp_path / "cold_start" / "data.stats.json"
    stats.write_text(stats.read_text()[:40])
    with pytest.raises(ValueError, match="data.stats.json is not readable JSON"):
        pipeline.run(config)


@pytest.mark.parametrize("bad", [dict(eval_samples=0), dict(eval_problems=0), dict(seed=2**32 - 1)])
def test_pipeline_settings_are_checked_before_any_stage_runs(bad):
    """eval settings failed only after the base model (with --pretrain, ~8 min); seed 2^32 - 1 made
    the evaluation's seed + 1 overflow, in an error naming a seed the user never gave."""
    with pytest.raises(ValueError, match="PipelineConfig"):
        pipeline.PipelineConfig(**bad)


def test_the_table_shows_no_accuracy_over_no_sample():
    """A stage whose samples all reason had "acc. bare 0.0": read as every bare answer wrong."""
    row = dict(checkpoint="x", pass_at_1=0.9, pass_at_k=1.0, cons_at_k=0.9, format_rate=1.0, length_mean=50.0,
               accuracy_reasoning=0.9, accuracy_bare=0.0, language_consistency=1.0, seconds=1.0)
    table = pipeline.markdown_table([pipeline.StageRow(stage="all reason", reasoning_share=1.0, **row),
                                     pipeline.StageRow(stage="half", reasoning_share=0.5, **row)], 8)
    assert "| 100% | 90.0 | – | 1 s |" in table and "| 50% | 90.0 | 0.0 | 1 s |" in table


def test_the_tables_legend_explains_every_column():
    """pass@k, acc. reasoning and acc. bare were columns the legend below the table never explained."""
    row = pipeline.StageRow(stage="s", checkpoint="x", pass_at_1=0.5, pass_at_k=1.0, cons_at_k=0.5, format_rate=1.0,
                            length_mean=5.0, reasoning_share=0.5, accuracy_reasoning=1.0, accuracy_bare=0.0,
                            language_consistency=1.0, seconds=1.0)
    head, _, _, _, legend = pipeline.markdown_table([row], 4).splitlines()[:5]
    columns = [c.strip() for c in head.strip("|").split("|")][1:]  # all but "stage"
    assert columns[:3] == ["pass@1", "cons@4", "pass@4"]
    assert [c for c in columns if c not in legend] == []


def test_results_store_null_for_a_mean_over_no_sample(tmp_path):
    """results.json stored accuracy 0.0 and language 1.0 for a stage none of whose samples reasoned."""
    row = pipeline.StageRow(stage="bare", checkpoint="x", pass_at_1=0.25, pass_at_k=0.5, cons_at_k=0.25,
                            format_rate=1.0, length_mean=5.0, reasoning_share=0.0, accuracy_reasoning=None,
                            accuracy_bare=0.25, language_consistency=None, seconds=1.0)
    pipeline._write_results([row], pipeline.PipelineConfig(out_dir=str(tmp_path), eval_problems=4, eval_samples=2))
    saved = json.loads((tmp_path / "results.json").read_text())[0]
    assert (saved["accuracy_reasoning"], saved["accuracy_bare"], saved["language_consistency"]) == (None, 0.25, None)
    assert "| bare | 25.0 | 25.0 | 50.0 | – | 5.0 | 100.0 | 0% | – | 25.0 | 1 s |" in (tmp_path / "results.md").read_text()


def test_a_reused_stage_keeps_its_time_when_evaluated_anew(tmp_path):
    """The table's time was 0 s for a finished stage evaluated again at other eval settings."""
    config = toy_config(tmp_path)
    config.stop_after = "zero"
    first = pipeline.run(config)[1].seconds
    config.eval_problems = 3  # another evaluation of the same, reused R1-Zero
    again = pipeline.run(config)[1]
    assert first > 0 and again.seconds == first


def test_an_interrupted_stage_is_not_resumed_after_its_input_was_rebuilt(tmp_path, monkeypatch, capsys):
    """Reasoning RL killed after a checkpoint, then the cold start rebuilt (its output deleted, as
    the README advises): the rerun resumed the old checkpoint, silently training on from a model
    of the old cold start."""
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", _fake_evaluate)
    config = toy_config(tmp_path)
    config.stop_after, config.reasoning_rl.save_every = "reasoning_rl", 1
    prune = pipeline.training.prune_checkpoints

    def killed_in_reasoning_rl(directory, keep):
        if "reasoning_rl" in str(directory):
            raise Killed()
        prune(directory, keep)

    monkeypatch.setattr(pipeline.training, "prune_checkpoints", killed_in_reasoning_rl)
    with pytest.raises(Killed):
        pipeline.run(config)
    monkeypatch.setattr(pipeline.training, "prune_checkpoints", prune)
    assert pipeline.training.latest_checkpoint(tmp_path / "reasoning_rl" / "checkpoints") is not None
    shutil.rmtree(tmp_path / "cold_start" / "model")
    capsys.readouterr()
    pipeline.run(config)
    out = capsys.readouterr().out
    assert "continuing from it" not in out and "starts afresh" in out
    assert json.loads((tmp_path / "reasoning_rl" / "policy" / "r1lab_config.json").read_text())["resume"] is False


def test_an_interrupted_rebuild_is_not_taken_for_a_finished_one(tmp_path):
    """A build records its inputs before it starts: killed while rebuilding, the old output still
    on disk must not pass for one built from the new inputs."""
    source, done = tmp_path / "source.txt", tmp_path / "output.txt"
    source.write_text("v1")

    def build(text):
        done.write_text(text)
        return done

    reuse.reuse_or_run(done, lambda: build("from v1"), inputs=[source])
    os.utime(source, ns=(0, 10**9))  # the input was rebuilt
    with pytest.raises(Killed):
        reuse.reuse_or_run(done, lambda: (_ for _ in ()).throw(Killed()), inputs=[source])
    reuse.reuse_or_run(done, lambda: build("from v2"), inputs=[source])
    assert done.read_text() == "from v2"


def test_an_interrupted_stage_of_other_settings_is_refused_in_the_demo_s_terms(tmp_path, monkeypatch):
    """A demo killed in R1-Zero with seed 0, rerun with --seed 1: the error told the user to "start
    afresh without --resume", a flag `r1lab demo` does not have."""
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", _fake_evaluate)
    config = toy_config(tmp_path)
    config.stop_after, config.seed = "zero", 1
    left = tmp_path / "zero" / "checkpoints" / "step_000001"
    left.mkdir(parents=True)
    (left / "trainer_state.pt").write_text("")
    (left / "r1lab_config.json").write_text(json.dumps({"init": str(pipeline.SHIPPED_BASE), "seed": 0}))
    with pytest.raises(ValueError, match=r"zero/checkpoints was built with other settings \(seed 0 -> 1\); "
                                         r"use another --out, or delete it") as err:
        pipeline.run(config)
    assert "--resume" not in str(err.value)


def test_an_interrupted_pretraining_of_another_seed_is_refused_in_the_demo_s_terms(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.pretrain, "run", lambda config: pytest.fail("pretrained with other settings"))
    config = toy_config(tmp_path)
    config.pretrain, config.seed = True, 1
    left = tmp_path / "base" / "checkpoints" / "step_000500"
    left.mkdir(parents=True)
    (left / "trainer_state.pt").write_text("")
    (left / "r1lab_config.json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(ValueError, match=r"base/checkpoints was built with other settings \(seed 0 -> 1\)"):
        pipeline.base_checkpoint(config)


def test_a_finished_pretraining_of_another_seed_is_refused_not_reused(tmp_path):
    """A base pretrained here with seed 0 was reused by a rerun with --seed 1 (every later stage
    checks its seed, the base did not), so a seed-1 R1-Zero trained from the seed-0 base."""
    config = toy_config(tmp_path)
    config.pretrain, config.seed = True, 1
    base = tmp_path / "base" / "base"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    (base / "r1lab_config.json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(ValueError, match=r"base/base was built with other settings \(seed 0 -> 1\)"):
        pipeline.base_checkpoint(config)
    config.seed = 0
    assert pipeline.base_checkpoint(config) == base


def test_every_readme_command_parses_into_its_stage_config():
    """Each `r1lab ...` line of the README's commands parses, and its flags reach the config."""
    import argparse
    import importlib
    import re
    import shlex

    from r1lab import cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [line for line in re.findall(r"^r1lab \S+.*$", readme, re.M) if line.split()[1] in cli.COMMANDS]
    assert len(lines) >= 10
    parsed = {}
    for line in lines:
        name, *rest = shlex.split(line.split("#")[0])[1:]
        parser = argparse.ArgumentParser()
        importlib.import_module(cli.COMMANDS[name][0]).add_arguments(parser)
        parsed.setdefault(name, []).append(parser.parse_args(rest))
    rl = cli.config_from_args(grpo.GRPOConfig, parsed["zero"][1])
    assert (rl.init, rl.template, rl.language_weight, rl.max_new_tokens, rl.max_steps, rl.lr, rl.out_dir) == \
        ("runs/cs/model", "chat", 1.0, 160, 160, 4e-5, "runs/rl")
    final = cli.config_from_args(sft.SFTConfig, parsed["sft"][1])
    assert (final.data, final.init, final.lr, final.epochs) == ("runs/rs/data.jsonl", "runs/base/base", 1e-3, 8)
    assert parsed["eval"][0].samples == 8 and parsed["demo"][0].out == "runs/demo"


# The pipeline's pretrained base keeps its final model, not its resume checkpoints.
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


# A finished R1-Zero of another base is refused before a base model is pretrained (minutes), not after.
def test_pretraining_waits_for_no_r1_zero_of_another_base(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.pretrain, "run", lambda config: pytest.fail("pretrained before the refusal"))
    policy = tmp_path / "zero" / "policy"
    policy.mkdir(parents=True)
    (policy / "r1lab_config.json").write_text(json.dumps({"init": str(pipeline.SHIPPED_BASE), "seed": 0}))
    config = toy_config(tmp_path)
    config.pretrain = True
    with pytest.raises(ValueError, match=r"zero/policy was built with other settings \(init '.*base-tiny' -> "
                                         r"'.*base/base'\)"):
        pipeline.run(config)
    assert not (tmp_path / "base").exists()


# ... and so is one of other GRPO settings, before the base model is evaluated (8 samples x 200 problems).
def test_an_r1_zero_of_other_grpo_settings_is_refused_before_the_base_is_evaluated(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: pytest.fail("evaluated the base before the refusal"))
    config = toy_config(tmp_path)
    policy = tmp_path / "zero" / "policy"
    policy.mkdir(parents=True)
    saved = {"init": str(pipeline.SHIPPED_BASE), "seed": 0, "max_steps": config.zero.max_steps + 5}
    (policy / "r1lab_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=rf"zero/policy was built with other settings \(max_steps "
                                         rf"{config.zero.max_steps + 5} -> {config.zero.max_steps}\)"):
        pipeline.run(config)


# Two demos in one run directory: the second is refused at once, before any stage or evaluation.
def test_a_second_demo_in_the_same_run_directory_is_refused(tmp_path, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", lambda settings: pytest.fail("ran beside another demo"))
    config = toy_config(tmp_path)
    config.stop_after = "zero"
    with (tmp_path / ".demo.lock").open("a") as other:  # what a running demo holds
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="in use by another demo"):
            pipeline.run(config)
    assert not (tmp_path / "eval").exists()
    with pipeline._only_run_in(tmp_path):  # the finished (refused) run holds nothing
        pass


# A base pretrained here keeps its pretraining time in the table when a rerun evaluates it anew.
def test_a_reused_pretrained_base_keeps_its_time(tmp_path, monkeypatch):
    clock = [0.0]

    def pretrain_for_100_s(config) -> Path:
        clock[0] += 100.0
        base = _fake_pretrain(config)
        (base / "model.safetensors").write_bytes(b"weights")
        return base

    def evaluate_base_then_stop(stage, checkpoint, config, seconds):
        seen.append(seconds)
        raise Killed()  # the base row is all this test needs

    seen = []
    monkeypatch.setattr(reuse, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(pipeline.pretrain, "run", pretrain_for_100_s)
    monkeypatch.setattr(pipeline, "evaluate", evaluate_base_then_stop)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), pretrain=True)
    for _ in range(2):  # pretrained, then reused
        with pytest.raises(Killed):
            pipeline.run(config)
    assert seen == [100.0, 100.0]


# A stage resumed from its checkpoint reports its whole time: its earlier runs' up to the checkpoint, then the rest.
def test_a_resumed_stage_counts_its_time_before_the_interruption(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(reuse, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    done, checkpoints = tmp_path / "policy", tmp_path / "checkpoints"

    def killed_30_s_after_its_start_with_a_checkpoint():
        step = checkpoints / "step_000002"
        step.mkdir(parents=True)
        (step / "trainer_state.pt").write_text("")
        started = (step / "trainer_state.pt").stat().st_mtime_ns - 30 * 10**9
        os.utime(reuse.stamp_path(done), ns=(started, started))
        raise Killed()

    def resumed_for_20_s():
        clock[0] += 20.0
        done.write_text("model")
        return done

    with pytest.raises(Killed):
        reuse.reuse_or_run(done, killed_30_s_after_its_start_with_a_checkpoint, checkpoints=checkpoints)
    with pytest.raises(Killed):  # killed again before any new checkpoint: the first 30 s still count
        reuse.reuse_or_run(done, lambda: (_ for _ in ()).throw(Killed()), checkpoints=checkpoints)
    assert reuse.reuse_or_run(done, resumed_for_20_s, checkpoints=checkpoints) == (done, 50.0)
    assert reuse.reuse_or_run(done, lambda: pytest.fail("built again"), checkpoints=checkpoints) == (done, 50.0)


# A stage killed after writing its output, before its stamp: the output is reused, not built again.
def test_a_stage_killed_after_writing_its_output_is_not_built_again(tmp_path):
    done, checkpoints = tmp_path / "model", tmp_path / "checkpoints"
    saved = done / "r1lab_config.json"

    def finished_40_s_after_its_start_then_killed():
        (checkpoints / "step_000002").mkdir(parents=True)
        (checkpoints / "step_000002" / "trainer_state.pt").write_text("")
        done.mkdir()
        saved.write_text(json.dumps({"seed": 0}))
        started = saved.stat().st_mtime_ns - 40 * 10**9
        os.utime(reuse.stamp_path(done), ns=(started, started))
        raise Killed()  # before the pipeline drops the checkpoints and stamps the output

    with pytest.raises(Killed):
        reuse.reuse_or_run(done, finished_40_s_after_its_start_then_killed, saved, [], checkpoints, seed=0)
    again = reuse.reuse_or_run(done, lambda: pytest.fail("built again"), saved, [], checkpoints, seed=0)
    assert again == (done, 40.0) and not checkpoints.exists()
    assert reuse.reuse_or_run(done, lambda: pytest.fail("built again"), saved, [], checkpoints, seed=0) == again


# A resumed build killed after writing its output, before its stamp: its time before the resume counts too.
def test_a_resumed_stage_killed_after_writing_its_output_counts_its_earlier_runs(tmp_path):
    done, checkpoints = tmp_path / "policy", tmp_path / "checkpoints"

    def killed_30_s_after_its_start_with_a_checkpoint():
        (checkpoints / "step_000002").mkdir(parents=True)
        (checkpoints / "step_000002" / "trainer_state.pt").write_text("")
        started = (checkpoints / "step_000002" / "trainer_state.pt").stat().st_mtime_ns - 30 * 10**9
        os.utime(reuse.stamp_path(done), ns=(started, started))
        raise Killed()

    def resumed_finished_40_s_after_its_start_then_killed():
        done.write_text("model")
        started = done.stat().st_mtime_ns - 40 * 10**9
        os.utime(reuse.stamp_path(done), ns=(started, started))
        raise Killed()

    for fn in (killed_30_s_after_its_start_with_a_checkpoint, resumed_finished_40_s_after_its_start_then_killed):
        with pytest.raises(Killed):
            reuse.reuse_or_run(done, fn, checkpoints=checkpoints)
    # 30 s up to the checkpoint, then 40 s of the resumed run: 70, not only the last run's 40
    assert reuse.reuse_or_run(done, lambda: pytest.fail("built again"), checkpoints=checkpoints) == (done, 70.0)
    assert reuse.reuse_or_run(done, lambda: pytest.fail("built again"), checkpoints=checkpoints) == (done, 70.0)


# A pretraining killed after saving the base, before its stamp: the rerun reuses the base and keeps its time.
def test_a_base_killed_after_it_was_saved_keeps_its_time(tmp_path, monkeypatch):
    def pretrained_in_70_s_then_killed(config) -> Path:
        base = _fake_pretrain(config)
        (base / "r1lab_config.json").write_text(json.dumps({"seed": 0}))
        started = (base / "r1lab_config.json").stat().st_mtime_ns - 70 * 10**9
        os.utime(reuse.stamp_path(base), ns=(started, started))
        raise Killed()  # before the stamp says it is finished

    def evaluate_base_then_stop(stage, checkpoint, config, seconds):
        seen.append(seconds)
        raise Killed()

    seen = []
    monkeypatch.setattr(pipeline.pretrain, "run", pretrained_in_70_s_then_killed)
    config = pipeline.PipelineConfig(out_dir=str(tmp_path), pretrain=True)
    with pytest.raises(Killed):
        pipeline.base_checkpoint(config)
    monkeypatch.setattr(pipeline.pretrain, "run", lambda config: pytest.fail("pretrained again"))
    monkeypatch.setattr(pipeline, "evaluate", evaluate_base_then_stop)
    for _ in range(2):  # the stamp is finished on the first rerun, then read as it is
        with pytest.raises(Killed):
            pipeline.run(config)
    assert seen == [70.0, 70.0]
    assert not (tmp_path / "base" / "checkpoints").exists()


# the evaluation settings are checked when the pipeline is configured, not at its first evaluation
# (after the R1-Zero run): a float or bool from a config file too
@pytest.mark.parametrize("field, value", [("eval_samples", 2.5), ("eval_problems", True), ("eval_samples", 0)])
def test_pipeline_refuses_a_bad_evaluation_setting_at_once(field, value):
    with pytest.raises(ValueError, match=rf"PipelineConfig\.{field} must be an integer >= 1, got {value!r}"):
        pipeline.PipelineConfig(**{field: value})


# A finished stage trained with other stage settings (its steps, lr...) is refused, not reused as this configuration's.
def test_a_finished_stage_of_other_stage_settings_is_not_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", _fake_evaluate)
    config = toy_config(tmp_path)
    config.stop_after = "zero"
    pipeline.run(config)
    config.zero.save_every = 50  # bookkeeping only: still the same R1-Zero
    pipeline.run(config)
    config.zero.max_steps = 3  # the policy on disk was trained for 2 steps
    with pytest.raises(ValueError, match=r"other settings \(max_steps 2 -> 3\)"):
        pipeline.run(config)


def test_a_rebuild_names_only_the_inputs_that_changed(tmp_path, capsys):
    """The cold-start model rebuilt after only its data was: the message blamed the unchanged
    shipped base too ("an earlier version of data.jsonl, base-tiny")."""
    data, base, done = tmp_path / "data.jsonl", tmp_path / "base.txt", tmp_path / "model.txt"
    data.write_text("v1")
    base.write_text("base")
    checkpoints = tmp_path / "checkpoints"

    def build():
        done.write_text("model")
        return done

    reuse.reuse_or_run(done, build, inputs=[data, base], checkpoints=checkpoints)
    os.utime(data, ns=(0, 10**9))  # the data was rebuilt, the base was not
    capsys.readouterr()
    reuse.reuse_or_run(done, build, inputs=[data, base], checkpoints=checkpoints)
    assert f"{done} was built from an earlier version of {data}: building it again" in capsys.readouterr().out
    done.unlink()  # and an interrupted build's checkpoints, left before the data changed again
    (checkpoints / "step_000001").mkdir(parents=True)
    (checkpoints / "step_000001" / "trainer_state.pt").write_text("s")
    os.utime(data, ns=(0, 2 * 10**9))
    reuse.reuse_or_run(done, build, inputs=[data, base], checkpoints=checkpoints)
    assert f"{checkpoints}: left by a build from an earlier version of {data}; removing" in capsys.readouterr().out


# The chain of stages with fake stages (seconds, not minutes): each writes what the real one leaves
# (its output, its config as saved), advances a fake clock by its own time and records its call.
STAGE_SECONDS = {"zero": 1.0, "cold_start_data": 2.0, "cold_start_sft": 4.0, "reasoning_rl": 8.0, "rejection": 16.0,
                 "final_sft": 32.0, "preference_data": 64.0, "helpful_rm": 128.0, "safety_rm": 256.0,
                 "all_scenario": 512.0, "student": 1024.0, "student_zero": 2048.0, "distill_sft": 4096.0}
ALL_SCENARIO = ["preference_data", "helpful_rm", "safety_rm", "all_scenario"]  # built from the RS-SFT model
RL_STAGES = {"zero": "zero", "reasoning_rl": "reasoning_rl", "student_zero": "student_zero",
             "all_scenario": "all_scenario"}
SFT_STAGES = {"cold_start": "cold_start_sft", "rejection": "final_sft", "distill": "distill_sft"}


def _saved(config) -> str:
    return json.dumps(dataclasses.asdict(config), default=str)


def _fake_chain(monkeypatch, tmp_path):
    """Fake stages and evaluation; returns the list of stages run (by config name) and the eval settings."""
    calls, evaluated, clock = [], [], [0.0]

    def ran(name, weights):
        calls.append(name)
        clock[0] += STAGE_SECONDS[name]
        weights.write_text(f"{name} {len(calls)}")

    def model(config, subdir, name):
        out = Path(config.out_dir) / subdir
        out.mkdir(parents=True, exist_ok=True)
        (out / "r1lab_config.json").write_text(_saved(config))
        ran(name, out / "model.safetensors")
        return out

    def grpo_run(config):
        return model(config, "policy", RL_STAGES[Path(config.out_dir).name])

    def sft_run(config):
        return model(config, "model", SFT_STAGES[Path(config.out_dir).name])

    def pretrain_run(config):
        return model(config, "base", "student")

    def cold_start_run(config):
        out = Path(config.out)
        ran("cold_start_data", out)
        out.with_name("data.stats.json").write_text(json.dumps({"config": json.loads(_saved(config))}))
        return out

    def rejection_run(config):
        out = Path(config.out_dir) / "data.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        ran("rejection", out)
        (out.parent / "stats.json").write_text(json.dumps({"config": json.loads(_saved(config))}))
        return out

    def preference_data_run(config):
        out = Path(config.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "safety.jsonl").write_text(f"safety {len(calls)}")
        ran("preference_data", out / "helpful.jsonl")
        (out / "stats.json").write_text(json.dumps({"config": json.loads(_saved(config))}))
        return out

    def reward_model_run(config):
        return model(config, "model", Path(config.out_dir).name)

    monkeypatch.setattr(pipeline.grpo, "run", grpo_run)
    monkeypatch.setattr(pipeline.all_scenario, "run", grpo_run)
    monkeypatch.setattr(pipeline.preference_data, "run", preference_data_run)
    monkeypatch.setattr(pipeline.reward_model, "run", reward_model_run)
    monkeypatch.setattr(pipeline.general_eval, "evaluate_general", lambda checkpoint, **kw: general_eval.GeneralEval(
        helpful=10.0, harmless=50.0, over_refusal=1.0, n_prompts=kw["n_prompts"], k=kw["k"]))
    monkeypatch.setattr(pipeline.sft, "run", sft_run)
    monkeypatch.setattr(pipeline.pretrain, "run", pretrain_run)
    monkeypatch.setattr(pipeline.cold_start, "run", cold_start_run)
    monkeypatch.setattr(pipeline.rejection_sampling, "run", rejection_run)
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", lambda settings: evaluated.append(settings) or
                        _fake_evaluate(settings))
    monkeypatch.setattr(reuse, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    return calls, evaluated


def _touch(path: Path, second: int) -> None:
    """What rebuilding a stage does to its output's file: a new modification time."""
    os.utime(path, ns=(second * 10**9, second * 10**9))


@pytest.mark.parametrize("stop_after, stages", [
    ("zero", ["zero"]),
    ("cold_start", ["zero", "cold_start_data", "cold_start_sft"]),
    ("reasoning_rl", ["zero", "cold_start_data", "cold_start_sft", "reasoning_rl"]),
    ("rejection", list(STAGE_SECONDS)[:6]),
    ("all_scenario", list(STAGE_SECONDS)[:10]),
    ("distill", list(STAGE_SECONDS)),
    ("", list(STAGE_SECONDS))])
def test_the_chain_stops_after_the_stage_asked_and_times_each_row(stop_after, stages, tmp_path, monkeypatch):
    calls, evaluated = _fake_chain(monkeypatch, tmp_path)
    config = toy_config(tmp_path)
    config.stop_after, config.seed = stop_after, 3
    rows = pipeline.run(config)
    assert calls == stages
    # a row's time is its stage's: the cold start's and the final SFT's include building their data
    seconds = {"base": 0.0, "R1-Zero": 1.0, "cold start (SFT)": 2.0 + 4.0, "cold start + reasoning RL": 8.0,
               "rejection-sampled SFT": 16.0 + 32.0, "all-scenario RL": 64.0 + 128.0 + 256.0 + 512.0,
               "student base": 1024.0, "student R1-Zero (RL only)": 2048.0, "distilled student (SFT on the RS set)": 4096.0}
    assert [(r.stage, r.seconds) for r in rows] == [(s, seconds[s]) for s in list(seconds)[:len(rows)]]
    assert {s.seed for s in evaluated} == {4}  # evaluations sample with seed + 1, apart from training's
    assert pipeline.run(config) == rows and calls == stages  # all reused, none built again
    general = tmp_path / "results_general.json"  # the chat models before and after all-scenario RL, on general prompts
    assert general.exists() == ("all_scenario" in stages)
    if general.exists():
        assert [r["stage"] for r in json.loads(general.read_text())] == ["rejection-sampled SFT", "all-scenario RL"]
        assert "| all-scenario RL | 10.0 | 50.0 | 1.0 |" in (tmp_path / "results.md").read_text()


# A rebuilt stage's output (a new weights or data file) rebuilds exactly the stages built from it.
@pytest.mark.parametrize("rebuilt, again", [
    ("zero/policy/model.safetensors", list(STAGE_SECONDS)[1:10] + ["distill_sft"]),
    ("cold_start/data.jsonl", ["cold_start_sft", "reasoning_rl", "rejection", "final_sft", *ALL_SCENARIO, "distill_sft"]),
    ("cold_start/model/model.safetensors", ["reasoning_rl", "rejection", "final_sft", *ALL_SCENARIO, "distill_sft"]),
    ("reasoning_rl/policy/model.safetensors", ["rejection", "final_sft", *ALL_SCENARIO, "distill_sft"]),
    ("rejection/data.jsonl", ["final_sft", *ALL_SCENARIO, "distill_sft"]),
    ("rejection/model/model.safetensors", ALL_SCENARIO),
    ("all_scenario/data/helpful.jsonl", ["helpful_rm", "all_scenario"]),
    ("all_scenario/data/safety.jsonl", ["safety_rm", "all_scenario"]),
    ("all_scenario/helpful_rm/model/model.safetensors", ["all_scenario"]),
    ("all_scenario/safety_rm/model/model.safetensors", ["all_scenario"]),
    ("all_scenario/policy/model.safetensors", []),
    ("student/base/model.safetensors", ["student_zero", "distill_sft"]),
    ("student_zero/policy/model.safetensors", [])])
def test_a_changed_output_rebuilds_every_stage_built_from_it(rebuilt, again, tmp_path, monkeypatch):
    calls, _ = _fake_chain(monkeypatch, tmp_path)
    config = toy_config(tmp_path)
    pipeline.run(config)
    _touch(tmp_path / rebuilt, 1)
    calls.clear()
    pipeline.run(config)
    assert calls == again


# A finished stage of other settings than now is refused (not reused as this configuration's), at every stage.
@pytest.mark.parametrize("stage, field, value", [
    ("zero", "max_steps", 3), ("cold_start_data", "n_prompts", 5), ("cold_start_sft", "epochs", 2),
    ("reasoning_rl", "lr", 1e-4), ("rejection", "n_prompts", 5), ("final_sft", "epochs", 2),
    ("preference_data", "n_written", 5), ("helpful_rm", "epochs", 3), ("safety_rm", "lr", 1e-3),
    ("all_scenario", "n_general", 5),
    ("student", "max_steps", 3), ("student_zero", "lr", 1e-4), ("distill_sft", "epochs", 2)])
def test_every_finished_stage_of_other_settings_is_refused(stage, field, value, tmp_path, monkeypatch):
    calls, _ = _fake_chain(monkeypatch, tmp_path)
    config = toy_config(tmp_path)
    pipeline.run(config)
    before = getattr(getattr(config, stage), field)
    setattr(getattr(config, stage), field, value)
    with pytest.raises(ValueError, match=rf"was built with other settings \({field} {before!r} -> {value!r}\)"):
        pipeline.run(config)
    assert calls == list(STAGE_SECONDS)  # nothing built again


# A rebuild killed after writing its output, before its stats: the stats on disk are the old build's,
# so the output is built again, not finished with them.
def test_a_rebuild_killed_before_its_new_stats_is_built_again(tmp_path):
    source, done, stats = tmp_path / "source.txt", tmp_path / "data.jsonl", tmp_path / "data.stats.json"
    source.write_text("v1")
    builds = []

    def build():
        builds.append(source.read_text())
        done.write_text(f"from {source.read_text()}")
        stats.write_text(json.dumps({"config": {"seed": 0}}))
        return done

    reuse.reuse_or_run(done, build, stats, [source], seed=0)
    old = stats.stat().st_mtime_ns
    source.write_text("v2")

    def killed_after_the_output():
        done.write_text("from v2")
        os.utime(reuse.stamp_path(done), ns=(old + 1, old + 1))  # the build started after the old stats,
        os.utime(done, ns=(old + 10**9, old + 10**9))  # and wrote its output a second later
        raise Killed()

    with pytest.raises(Killed):
        reuse.reuse_or_run(done, killed_after_the_output, stats, [source], seed=0)
    reuse.reuse_or_run(done, build, stats, [source], seed=0)
    assert builds == ["v1", "v2"]


# A record of inputs cut short (unreadable) says nothing of what the output was built from: built again.
def test_an_unreadable_record_of_inputs_rebuilds_the_output(tmp_path):
    source, done = tmp_path / "source.txt", tmp_path / "output.txt"
    source.write_text("v1")
    builds = []

    def build():
        builds.append(1)
        done.write_text("out")
        return done

    reuse.reuse_or_run(done, build, inputs=[source])
    stamp = reuse.stamp_path(done)
    stamp.write_text(stamp.read_text()[:10])
    reuse.reuse_or_run(done, build, inputs=[source])
    assert len(builds) == 2 and json.loads(stamp.read_text())["inputs"] == reuse._stamp([source])


# Each column of the table holds its own number, in percent with one decimal.
def test_each_table_column_holds_its_own_number():
    row = pipeline.StageRow(stage="s", checkpoint="x", pass_at_1=0.125, pass_at_k=0.75, cons_at_k=0.3125,
                            format_rate=0.875, length_mean=41.25, reasoning_share=0.625, accuracy_reasoning=0.4,
                            accuracy_bare=0.2, language_consistency=0.9375, seconds=61.6)
    line = pipeline.markdown_table([row], 8).splitlines()[2]
    assert line == "| s | 12.5 | 31.2 | 75.0 | 93.8 | 41.2 | 87.5 | 62% | 40.0 | 20.0 | 62 s |"


# A row cached before "no sample reasoned" was None holds 0.0 accuracy and 1.0 language there: shown as "–".
def test_a_cached_row_of_no_reasoning_shows_no_reasoning_numbers():
    row = pipeline.StageRow(stage="s", checkpoint="x", pass_at_1=0.5, pass_at_k=0.5, cons_at_k=0.5, format_rate=1.0,
                            length_mean=5.0, reasoning_share=0.0, accuracy_reasoning=0.0, accuracy_bare=0.5,
                            language_consistency=1.0, seconds=1.0)
    assert pipeline.markdown_table([row], 2).splitlines()[2] == \
        "| s | 50.0 | 50.0 | 50.0 | – | 5.0 | 100.0 | 0% | – | 50.0 | 1 s |"
