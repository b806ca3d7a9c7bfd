"""Stages end to end at toy size: pretraining resumes exactly; GRPO runs, logs, checkpoints, resumes;
the shared training helpers (metrics log, checkpoints) survive crashes."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from r1lab import cli, training
from r1lab.model import from_pretrained
from r1lab.stages import cold_start, grpo, pretrain, rejection_sampling
from r1lab.tokenizer import Tokenizer


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
    # a fresh run into a directory an earlier run left a (later) checkpoint in: removed, not resumed from
    stale(tmp_path / "checkpoints")
    # the run dies right after writing its step-3 checkpoint; resumed to 6: the straight run's weights
    monkeypatch.setattr(pretrain.training, "prune_checkpoints", lambda *a, **k: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        pretrain.run(tiny_pretrain(tmp_path, 6))
    monkeypatch.undo()
    assert "removing" in capsys.readouterr().out and not (tmp_path / "checkpoints" / "step_000009").exists()
    resumed = pretrain.run(tiny_pretrain(tmp_path, 6, resume=True))
    assert "at step 3" in capsys.readouterr().out
    a, b = from_pretrained(base).state_dict(), from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(keep_checkpoints=0), dict(keep_checkpoints=-1),
                                 dict(lr=0.0), dict(grad_clip=-1.0), dict(weight_decay=-0.1), dict(warmup_steps=-5),
                                 dict(model="tinyy"), dict(threads=-2), dict(seed=-1), dict(seed=2**32)])
def test_pretrain_rejects_bad_config(bad):
    """keep_checkpoints -1 deleted each checkpoint as it was written; grad_clip <= 0 zeroed or
    flipped every gradient; a negative warmup started the schedule down the cosine; an unknown
    model was found only after an earlier run's checkpoints were removed."""
    with pytest.raises(ValueError, match="preset" if bad.get("model") else next(iter(bad))):
        pretrain.PretrainConfig(**bad)


def test_pruning_keeps_at_least_the_newest_checkpoint(tmp_path):
    for step in (1, 2, 3):
        (tmp_path / f"step_00000{step}").mkdir()
        (tmp_path / f"step_00000{step}" / "trainer_state.pt").write_bytes(b"")  # complete: counted
    training.prune_checkpoints(tmp_path, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["step_000003"]
    with pytest.raises(ValueError, match="keep"):
        training.prune_checkpoints(tmp_path, 0)


def test_pretrain_on_a_corpus_shorter_than_a_window_is_a_clear_error(tmp_path):
    config = tiny_pretrain(tmp_path / "run", 2)
    config.n_docs = 1  # ~50 tokens for windows of 64 + 1
    with pytest.raises(ValueError, match="--n-docs"):
        pretrain.run(config)
    assert not (tmp_path / "run").exists()  # checked before the run directory is made


def test_pretrain_heldout_documents_are_not_training_documents(tmp_path):
    config = tiny_pretrain(tmp_path, 1)
    config.n_docs = 2000
    train, held_out = pretrain.corpus_documents(config)
    assert 400 < len(held_out) < 500  # the world's short documents repeat: some of the 500 drawn are left out
    assert not set(held_out) & set(train)


def test_pretrain_resume_past_its_end_is_refused(base, tmp_path):
    """The base run saved step 3 of 6; resumed with 2 steps in all it did nothing and saved that
    3-step model as the 2-step one."""
    run = tmp_path / "run"
    shutil.copytree(Path(base).parent, run)
    with pytest.raises(ValueError, match="past this run's 2 steps"):
        pretrain.run(tiny_pretrain(run, 2, resume=True))


def stale(checkpoints):
    """What an earlier run leaves: a complete-looking checkpoint whose step sorts after the new ones."""
    (checkpoints / "step_000009").mkdir(parents=True)
    (checkpoints / "step_000009" / "trainer_state.pt").write_text("an earlier run's")


def test_grpo_runs_logs_and_resumes(base, tmp_path, capsys):
    cfg = dict(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=32, prompts_per_step=2, group_size=4,
               max_new_tokens=12, save_every=2, log_samples_every=1, bf16=False, kl_coef=0.01)
    stale(tmp_path / "zero" / "checkpoints")
    (tmp_path / "zero" / "reference").mkdir()  # where the KL reference used to be saved, for every step
    grpo.run(grpo.GRPOConfig(**cfg, max_steps=3))
    assert capsys.readouterr().out.count("removing") == 2  # a fresh run: the earlier run's are gone
    assert not (tmp_path / "zero" / "reference").exists()
    assert training.latest_checkpoint(tmp_path / "zero" / "checkpoints").name == "step_000002"
    rows = [json.loads(l) for l in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward/accuracy", "reward/format", "accuracy", "format_rate", "length_mean", "length_max",
                "truncation_rate", "zero_variance_groups", "kl", "clip_fraction", "entropy",
                "rollout_tokens_per_s", "train_tokens_per_s", "expert_load_max_mean"):
        assert key in rows[-1], key
    assert all(r["step_s"] >= r["rollout_s"] + r["train_s"] for r in rows)  # the whole step covers its parts
    assert all(r["rollout_s"] >= r["generate_s"] + r["reward_s"] for r in rows)
    assert (tmp_path / "zero" / "samples.jsonl").read_text().count("\n") >= 3
    curves = tmp_path / "zero" / "curves.png"  # issue 4: the curves as PNG next to the metrics
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = tmp_path / "zero" / "checkpoints" / "step_000002"
    assert (ck / "trainer_state.pt").exists() and (ck / "reference" / "model.safetensors").exists()
    # the reference of step 2 is loaded on resume: the start policy (no reset yet), not the trained one
    _, ref, _, _, state = grpo._load(grpo.GRPOConfig(**cfg, max_steps=4, resume=True), grpo.SAME_RUN_FIELDS)
    start, trained = from_pretrained(base).state_dict(), from_pretrained(ck).state_dict()
    assert state["step"] == 2 and all(torch.equal(v, start[k]) for k, v in ref.state_dict().items() if k in start)
    assert not torch.equal(start["lm_head.weight"], trained["lm_head.weight"])
    with (tmp_path / "zero" / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "lr": 0.0')  # a crash mid-line: the resume warns and goes on
    grpo.run(grpo.GRPOConfig(**cfg, max_steps=4, resume=True))
    assert "skipping an unreadable last line" in capsys.readouterr().out
    rows = [json.loads(l) for l in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # steps after the checkpoint were redone, not duplicated
    shutil.rmtree(ck / "reference")  # a checkpoint without its reference cannot be resumed with a KL term
    with pytest.raises(ValueError, match=r"step_000002 has no reference/"):
        grpo.run(grpo.GRPOConfig(**cfg, max_steps=5, resume=True))


def test_grpo_resume_restores_rng_and_logs_no_extra_samples(base, tmp_path, monkeypatch):
    cfg = dict(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=8, prompts_per_step=2, group_size=2,
               max_new_tokens=4, save_every=2, log_samples_every=100, bf16=False, kl_coef=0.0)
    grpo.run(grpo.GRPOConfig(**cfg, max_steps=3))
    state_file = tmp_path / "zero" / "checkpoints" / "step_000002" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=False)
    torch.manual_seed(1234)  # RNG states no fresh start has: the resumed run must continue from them
    state["torch_rng"], state["python_rng"] = torch.get_rng_state(), random.Random(1234).getstate()
    torch.save(state, state_file)
    seen, collect = [], grpo.Rollout.collect
    monkeypatch.setattr(grpo.Rollout, "collect", classmethod(
        lambda cls, *a, **k: seen.append((torch.get_rng_state(), random.getstate())) or collect(*a, **k)))
    grpo.run(grpo.GRPOConfig(**cfg, max_steps=4, resume=True))
    assert torch.equal(seen[0][0], state["torch_rng"]) and seen[0][1] == state["python_rng"]
    samples = [json.loads(l)["step"] for l in (tmp_path / "zero" / "samples.jsonl").read_text().splitlines()]
    assert set(samples) == {1}  # the first step of the fresh run only, not the first resumed one


def test_minibatches_split_evenly_and_skip_empty_pieces():
    g = torch.Generator().manual_seed(0)
    pieces = list(grpo.minibatch_rows(6, 4, g))
    assert [len(p) for p in pieces] == [2, 2, 1, 1]  # chunk(4) would take 3 steps of 3
    assert sorted(torch.cat(pieces).tolist()) == list(range(6))
    assert [len(p) for p in grpo.minibatch_rows(2, 4, g)] == [1, 1]  # fewer rows than minibatches: no empty step
    assert [len(p) for p in grpo.minibatch_rows(16, 1, g)] == [16]


def test_policy_update_takes_one_step_per_nonempty_minibatch():
    from r1lab.engine import Completion
    from r1lab.model import Transformer, preset
    from r1lab.rewards import RubricResult
    from r1lab.stages.rollout import Rollout, build_batch

    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0)).train()
    comps = [Completion(prompt_index=i // 2, token_ids=[3 + i, 4], logprobs=[-1.0, -1.0], text="",
                        finish_reason="stop") for i in range(6)]
    rollout = Rollout(prompts=[[1, 5], [1, 6], [1, 7]], completions=comps, examples=[None] * 6,
                      rewards=RubricResult(total=[1.0, 0.0] * 3, per_term={}), group_size=2)
    batch = build_batch(rollout, torch.tensor([1.0, -1.0] * 3), pad_id=0, drop_equal_groups=False,
                        mask_truncated=False)

    class Counting(torch.optim.SGD):
        steps = 0

        def step(self, closure=None):
            Counting.steps += 1
            return super().step(closure)

    for minibatches, steps in ((4, 4), (8, 6)):
        Counting.steps = 0
        config = grpo.GRPOConfig(minibatches=minibatches, kl_coef=0.0, group_size=2)
        stats = grpo.policy_update(model, None, Counting(model.parameters(), lr=1e-3), batch, config)
        assert Counting.steps == steps and all(v == v for v in stats.values())  # no NaN from an empty piece


def test_policy_update_moves_the_router_bias_after_every_optimizer_step(monkeypatch):
    """V3 §2.1.2 updates the balancing bias at the end of each training step; GRPO moved it once
    per rollout however many optimizer steps the rollout gave (minibatches > 1, ppo_epochs > 1)."""
    from r1lab.model import Transformer, preset
    from r1lab.stages.rollout import TrainBatch

    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0)).train()
    loads = []
    monkeypatch.setattr(type(model), "update_router_bias",
                        lambda self: loads.append(sum(float(l.sum()) for l in self.expert_load())) or
                        [m.gate.expert_load.zero_() for m in self.moe_layers()])
    n, T = 4, 3
    batch = TrainBatch(prompt_ids=torch.tensor([[1, 5]]), prompt_mask=torch.ones(1, 2, dtype=torch.bool),
                       prompt_of=torch.zeros(n, dtype=torch.long), tokens=torch.randint(3, 64, (n, T)),
                       token_valid=torch.ones(n, T, dtype=torch.bool), mask=torch.ones(n, T),
                       old_logp=torch.full((n, T), -4.0), advantages=torch.tensor([1.0, -1.0, 0.5, -0.5]))
    config = grpo.GRPOConfig(minibatches=2, ppo_epochs=2, kl_coef=0.0, group_size=4)
    stats = grpo.policy_update(model, None, torch.optim.SGD(model.parameters(), lr=1e-3), batch, config)
    # four optimizer steps, each balancing the tokens of its own forward: 3 MoE layers x (2 prompt + 2 x 2
    # completion positions) x 2 experts a token
    assert loads == [3 * (2 + 2 * 2) * 2] * 4
    assert stats["expert_load_max_mean"] >= 1.0


def test_grpo_with_more_prompts_than_the_split_holds_leaves_an_earlier_run_alone(base, tmp_path):
    """The prompt pool was drawn after the run directory was reset: the earlier run's checkpoints
    were gone and nothing was trained."""
    out = tmp_path / "zero"
    stale(out / "checkpoints")
    with pytest.raises(ValueError, match="distinct problems"):
        grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(out), n_prompts=10**8, prompts_per_step=2,
                                 group_size=2, max_steps=1))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]


def test_grpo_with_too_many_new_tokens_leaves_an_earlier_run_alone(base, tmp_path):
    """max_new_tokens past the model's positions failed at the first rollout, after the run
    directory was reset: the earlier run's checkpoints were gone."""
    out = tmp_path / "zero"
    stale(out / "checkpoints")
    with pytest.raises(ValueError, match="max_new_tokens 100000 .* max_position_embeddings"):
        grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(out), n_prompts=4, prompts_per_step=2,
                                 group_size=2, max_steps=1, max_new_tokens=100_000))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints"]


def test_grpo_from_a_checkpoint_of_the_run_it_replaces_is_refused(base, tmp_path):
    """--init out/checkpoints/step_N on a fresh run in out: the checkpoint was loaded, then removed
    with the earlier run's checkpoints, and the saved config named a deleted init."""
    import shutil

    out = tmp_path / "zero"
    init = out / "checkpoints" / "step_000004"
    shutil.copytree(base, init)
    with pytest.raises(ValueError, match="lies in .*checkpoints, which a fresh run"):
        grpo.run(grpo.GRPOConfig(init=str(init), out_dir=str(out), n_prompts=4, prompts_per_step=2,
                                 group_size=2, max_steps=1))
    assert (init / "config.json").exists()


BAD_GRPO = {"save_every": 0, "log_samples_every": 0, "ref_reset_every": -1, "min_lr_ratio": 1.5,
            "clip_eps_low": float("nan"), "clip_eps_high": -0.1, "language": "fr", "device": "gpu0", "lr": 0.0,
            "threads": -1, "seed": 2**40, "accuracy_weight": float("nan"), "format_weight": float("inf"),
            "language_weight": -1.0, "kl_coef": float("inf"), "temperature": 1e-7, "group_size": 1,
            "loss_aggregation": "average"}


@pytest.mark.parametrize("field", BAD_GRPO)
def test_grpo_config_rejects_bad_values(field):
    """An inf / NaN weight or kl_coef trained an all-NaN policy and exited 0; a negative language
    weight was silently dropped; a temperature below 1e-6 failed at step 0, after the run's reset.
    The message names the value given (group_size, loss_aggregation, kl_coef and temperature did not)."""
    with pytest.raises(ValueError, match=field) as err:
        grpo.GRPOConfig(**{field: BAD_GRPO[field]})
    assert str(BAD_GRPO[field]) in str(err.value)


@pytest.mark.parametrize("argv, message", [
    (["--prompts-per-step", "8", "--n-prompts", "4"], "--prompts-per-step (8) must be <= --n-prompts (4)"),
    (["--init", "no-such-checkpoint"], "checkpoint not found: no directory no-such-checkpoint"),
    (["--init", __file__], f"checkpoint not found: {__file__} is not a directory"),
    (["--init", str(Path(__file__).parent)], f"no config.json in {Path(__file__).parent}")])
def test_grpo_cli_bad_input_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys, argv, message):
    assert cli.main(["zero", "--out-dir", str(tmp_path / "zero"), "--threads", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "zero").exists()


def test_metrics_log_skips_a_cut_last_line_and_names_a_bad_one(tmp_path, capsys, monkeypatch):
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    log.path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')  # the process died writing step 3
    assert log.read() == [{"step": 1}, {"step": 2}]
    assert "metrics.jsonl:3: skipping an unreadable last line" in capsys.readouterr().out
    log.truncate_after(1)
    assert log.path.read_text() == '{"step": 1}\n'
    log.path.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON record"):
        log.read()
    # truncate_after writes a temporary file and renames it: dying before the rename leaves the log whole
    log.path.write_text('{"step": 1}\n{"step": 2}\n')
    monkeypatch.setattr(training.os, "replace", lambda *a: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        log.truncate_after(1)
    assert log.path.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_checkpoint_directory_never_exists_without_its_tokenizer(base, tmp_path, monkeypatch):
    """The tokenizer goes into the atomic save of the weights, not after the rename."""
    seen, save = [], training.save_pretrained

    def spy(*args, **kwargs):
        path = save(*args, **kwargs)
        seen.append({p.name for p in path.iterdir()})  # what the directory holds the moment it appears
        return path

    monkeypatch.setattr(training, "save_pretrained", spy)
    tokenizer = Tokenizer.load(base)
    final = training.save_checkpoint(from_pretrained(base), tmp_path / "policy", step=1,
                                     config=tiny_pretrain(tmp_path, 1), tokenizer=tokenizer)
    assert {"tokenizer.json", "tokenizer_config.json", "model.safetensors"} <= seen[0]
    tokenizer.save(tmp_path / "direct")
    for name in ("tokenizer.json", "tokenizer_config.json"):  # byte for byte what Tokenizer.save writes
        assert (final / name).read_bytes() == (tmp_path / "direct" / name).read_bytes()


def test_grpo_rejects_group_of_one():
    with pytest.raises(ValueError, match="group_size"):
        grpo.GRPOConfig(group_size=1)


@pytest.mark.parametrize("logits_chunk", [1 << 22, 1])
def test_shared_prompt_logprobs_equal_full_rows(logits_chunk, monkeypatch):
    """completion_logprobs runs each prompt once and lets its completions attend to the recorded
    latents; log-probs and gradients must equal those of full [prompt | completion] rows, also
    when the log-probs are taken one token at a time (`LOGITS_CHUNK`: chunks across batch rows)."""
    from r1lab.engine import Completion
    from r1lab.losses import token_logprobs
    from r1lab.model import Transformer, preset
    from r1lab.rewards import RubricResult
    from r1lab.stages import rollout as rollout_module
    from r1lab.stages.rollout import Rollout, build_batch, completion_logprobs

    monkeypatch.setattr(rollout_module, "LOGITS_CHUNK", logits_chunk)
    monkeypatch.setattr(rollout_module, "LOGITS_CHUNK_MIN_ROWS", 1)

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0)).train()
    prompts = [[1, 5, 6, 7, 8], [1, 9, 10]]  # ragged: left padding in the batch
    lengths = [4, 1, 6, 3]  # ragged completions, two per prompt; one of a single token
    comps = [Completion(prompt_index=i // 2, token_ids=torch.randint(2, 64, (n,)).tolist(), logprobs=[0.0] * n,
                        text="", finish_reason="stop") for i, n in enumerate(lengths)]
    rollout = Rollout(prompts=prompts, completions=comps, examples=[None] * 4,
                      rewards=RubricResult(total=[1.0, 0.0, 1.0, 0.0], per_term={}), group_size=2)
    batch = build_batch(rollout, torch.tensor([1.0, -1.0, 1.0, -1.0]), pad_id=0, drop_equal_groups=False,
                        mask_truncated=False)
    rows = torch.tensor([3, 0, 2])
    logp = completion_logprobs(model, batch, rows, temperature=0.7)
    (logp * batch.mask[rows]).sum().backward()
    shared_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    total = 0.0
    for i, r in enumerate(rows.tolist()):  # reference: each row alone, prompt + completion, no padding
        p, c = prompts[comps[r].prompt_index], comps[r].token_ids
        full = model(torch.tensor([p + c]))[:, len(p) - 1:-1]  # (1, T, V)
        ref = token_logprobs(full, torch.tensor([c]), 0.7)[0]
        torch.testing.assert_close(logp[i, :len(c)], ref, atol=1e-5, rtol=1e-5)
        total = total + ref.sum()
    total.backward()
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            torch.testing.assert_close(shared_grads[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_rollout_show_gives_distinct_samples_with_fewer_groups_than_asked():
    """Two groups and k = 4: the samples log had each group's first sample twice."""
    from types import SimpleNamespace

    from r1lab.engine import Completion
    from r1lab.rewards import RubricResult
    from r1lab.stages.rollout import Rollout

    comps = [Completion(prompt_index=i // 3, token_ids=[3], logprobs=[0.0], text=f"c{i}", finish_reason="stop")
             for i in range(6)]
    rollout = Rollout(prompts=[[1], [1]], completions=comps,
                      examples=[SimpleNamespace(question=f"q{i // 3}", answer=1) for i in range(6)],
                      rewards=RubricResult(total=[float(i) for i in range(6)], per_term={}), group_size=3)
    assert [(s["question"], s["completion"]) for s in rollout.show(4)] == \
        [("q0", "c0"), ("q1", "c3"), ("q0", "c1"), ("q1", "c4")]
    assert [s["completion"] for s in rollout.show(9)] == ["c0", "c3", "c1", "c4", "c2", "c5"]
    assert [s["completion"] for s in rollout.show(1)] == ["c0"]


def test_completion_logprobs_forwards_only_the_prompts_of_its_rows():
    """A minibatch forwarded every prompt of the step (and dynamic sampling's dropped groups' too):
    wasted work, and their tokens counted toward the MoE balancing load once per minibatch."""
    from r1lab.engine import Completion
    from r1lab.model import Transformer, preset
    from r1lab.rewards import RubricResult
    from r1lab.stages.rollout import Rollout, build_batch, completion_logprobs

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0)).train()
    prompts = [[1, 5, 6, 7, 8], [1, 9, 10], [1, 11, 12, 13]]
    comps = [Completion(prompt_index=i // 2, token_ids=[3, 4, 5, 6][:2 + i % 2], logprobs=[0.0] * (2 + i % 2),
                        text="", finish_reason="stop") for i in range(6)]
    rollout = Rollout(prompts=prompts, completions=comps, examples=[None] * 6,
                      rewards=RubricResult(total=[1.0, 0.0, 1.0, 1.0, 0.0, 1.0], per_term={}), group_size=2)
    batch = build_batch(rollout, torch.zeros(6), pad_id=0, drop_equal_groups=True, mask_truncated=False)
    assert batch.prompt_of.tolist() == [0, 0, 2, 2]  # the second group is dropped
    everything = completion_logprobs(model, batch, torch.arange(4), temperature=1.0).detach()
    for m in model.moe_layers():
        m.gate.expert_load.zero_()
    logp = completion_logprobs(model, batch, torch.tensor([3, 2]), temperature=1.0)  # prompt 2 only
    torch.testing.assert_close(logp, everything[[3, 2]])
    K = model.config.num_experts_per_tok
    # prompt 2, then each row's completion tokens that predict a real one: 2 of the 3-token row, 1 of the
    # 2-token row (its last token predicts nothing; counting it, as padding-dependent code did, gave 2)
    counted = 4 + 2 + 1
    assert [float(load.sum()) for load in model.expert_load()] == [K * counted] * len(model.moe_layers())


def test_minibatch_split_changes_from_step_to_step_and_repeats_for_the_same_step(monkeypatch):
    """The shuffle generator was seeded with config.seed at every step: with minibatches > 1 every
    rollout was split the same way. Now the split depends on (seed, step), reproducibly."""
    from r1lab.model import Transformer, preset
    from r1lab.stages.rollout import TrainBatch

    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0)).train()
    n, T = 8, 2
    batch = TrainBatch(prompt_ids=torch.tensor([[1, 5]]), prompt_mask=torch.ones(1, 2, dtype=torch.bool),
                       prompt_of=torch.zeros(n, dtype=torch.long), tokens=torch.randint(3, 64, (n, T)),
                       token_valid=torch.ones(n, T, dtype=torch.bool), mask=torch.ones(n, T),
                       old_logp=torch.full((n, T), -4.0), advantages=torch.linspace(-1, 1, n))
    seen = []
    real = grpo.completion_logprobs
    monkeypatch.setattr(grpo, "completion_logprobs",
                        lambda m, b, rows, t: seen.append(sorted(rows.tolist())) or real(m, b, rows, t))

    def split(step, minibatches=2):
        seen.clear()
        config = grpo.GRPOConfig(minibatches=minibatches, kl_coef=0.0, group_size=8)
        grpo.policy_update(model, None, torch.optim.SGD(model.parameters(), lr=0.0), batch, config, step)
        return tuple(tuple(rows) for rows in seen)

    splits = [split(step) for step in range(4)]
    assert len(set(splits)) > 1  # not one split for every step
    assert split(2) == splits[2]  # the same step (a resumed run) splits alike
    assert split(0, 1) == split(5, 1) == (tuple(range(n)),)  # one minibatch: every row each step


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_reward_term_returning_nan_or_inf_is_a_clear_error_naming_it(bad):
    """A user's reward function returning NaN made the advantages, loss and then every weight of
    the policy NaN while the run went on; now the rollout names the term, value and completion."""
    from types import SimpleNamespace

    from r1lab.engine import Completion, SamplingParams
    from r1lab.pipeline import SHIPPED_BASE
    from r1lab.rewards import RewardTerm, Rubric
    from r1lab.stages.rollout import Rollout

    class Engine:
        def generate(self, prompts, params):
            return [[Completion(prompt_index=p, token_ids=[3], logprobs=[0.0], text=f"c{p}{j}", finish_reason="stop")
                     for j in range(params.n)] for p in range(len(prompts))]

    rubric = Rubric([RewardTerm("ok", lambda c, e: 1.0),
                     RewardTerm("mine", lambda c, e: bad if c == "c11" else 0.5, weight=0.0)])
    problems = [SimpleNamespace(question="1 + 1"), SimpleNamespace(question="2 + 2")]
    tokenizer = Tokenizer.load(SHIPPED_BASE)
    with pytest.raises(ValueError, match=rf"reward 'mine' is {bad} for completion 3 \('c11'\)"):
        Rollout.collect(Engine(), tokenizer, problems, rubric, SamplingParams(n=2))
    rubric = Rubric([RewardTerm("ok", lambda c, e: 1.0)])  # finite rewards pass
    assert Rollout.collect(Engine(), tokenizer, problems, rubric, SamplingParams(n=2)).rewards.total == [1.0] * 4


# The world's rubric reads a reply as far as the world does: its format and accuracy terms agree on a reply too long to read
def rubric_config(**overrides):
    return grpo.GRPOConfig(**{"init": "unused", **overrides})


def test_world_rubric_format_matches_the_strict_reward_within_the_read_limit_and_stops_past_it():
    from r1lab.rewards import strict_format_reward
    from r1lab.stages.rollout import world_rubric
    from r1lab.world import rl_prompts
    from r1lab.world.answers import READ_CHARS

    problem = rl_prompts(1)[0]
    rng = random.Random(0)
    parts = ["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "2+3=5", str(problem.answer), "User:",
             "<|eos|>", "\n\nQ:", "Tuka", "So the answer is"]
    texts = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    texts += [f"<think> 2+3=5 </think> <answer> {problem.answer} </answer>"]
    rubric = world_rubric(rubric_config())
    scores = rubric(texts, [problem] * len(texts)).per_term["format"]
    assert scores == [strict_format_reward(t) for t in texts] and 1.0 in scores and 0.0 in scores
    long = f"<think> {'2+3=5 ' * (READ_CHARS // 6)} </think> <answer> {problem.answer} </answer>"  # > READ_CHARS
    assert rubric([long], [problem]).per_term == {"accuracy": [0.0], "format": [0.0]}


def test_world_rubric_refuses_a_lenient_format_with_the_chat_template():
    from r1lab.stages.rollout import world_rubric

    with pytest.raises(ValueError, match="strict_format=False .* template 'chat'"):
        world_rubric(rubric_config(template="chat", strict_format=False))


# an --out-dir that is a file is refused before the corpus is built (and before --resume's "starting afresh")
@pytest.mark.parametrize("resume", [False, True])
def test_pretrain_refuses_a_file_out_dir_before_any_work(tmp_path, capsys, resume):
    out = tmp_path / "base.txt"
    out.write_text("not a run")
    config = pretrain.PretrainConfig(out_dir=str(out), n_docs=400, seq_len=64, batch_size=4, max_steps=1,
                                     threads=1, resume=resume)
    with pytest.raises(ValueError, match="it is a file"):
        pretrain.run(config)
    assert capsys.readouterr().out == ""


# sampling stages refuse a temperature that overflows logits / T when the config is built, naming it
@pytest.mark.parametrize("make", [lambda t: cold_start.ColdStartConfig(temperature=t),
                                  lambda t: rejection_sampling.RejectionSamplingConfig(checkpoint="ck", temperature=t)])
def test_sampling_stage_configs_refuse_a_temperature_below_the_engines_minimum(make):
    with pytest.raises(ValueError, match=r"Config\.temperature .* got 1e-09 .*>= 1e-06"):
        make(1e-9)
    assert make(0.0).temperature == 0.0 and make(1e-6).temperature == 1e-6  # greedy and the smallest T stay


# a vocabulary too small for the tokenizer's bytes and reserved tokens is refused when the config is built
def test_pretrain_config_refuses_a_vocabulary_smaller_than_bytes_and_reserved_tokens():
    with pytest.raises(ValueError, match=r"PretrainConfig\.vocab_size must be >= 265 .* got 264"):
        pretrain.PretrainConfig(vocab_size=264)
    assert pretrain.PretrainConfig(vocab_size=265).vocab_size == 265


# a GRPO run killed after a checkpoint and resumed ends as an uninterrupted run: the same per-step
# metrics (timings aside) and bit-identical weights, through epochs, minibatches and reference resets
def test_a_resumed_grpo_run_equals_an_uninterrupted_one(base, tmp_path, monkeypatch):
    cfg = dict(init=str(base), n_prompts=16, prompts_per_step=2, group_size=4, max_new_tokens=12, save_every=2,
               log_samples_every=100, bf16=False, kl_coef=0.05, ref_reset_every=3, lr=1e-3, max_steps=5,
               ppo_epochs=2, minibatches=2, min_lr_ratio=0.1, warmup_steps=2)
    whole = grpo.run(grpo.GRPOConfig(**cfg, out_dir=str(tmp_path / "whole")))
    prune = training.prune_checkpoints

    def killed_after_step_2(*args, **kwargs):  # the first prune follows the step-2 checkpoint
        prune(*args, **kwargs)
        raise Killed()

    monkeypatch.setattr(training, "prune_checkpoints", killed_after_step_2)
    with pytest.raises(Killed):
        grpo.run(grpo.GRPOConfig(**cfg, out_dir=str(tmp_path / "cut")))
    monkeypatch.setattr(training, "prune_checkpoints", prune)
    resumed = grpo.run(grpo.GRPOConfig(**cfg, out_dir=str(tmp_path / "cut"), resume=True))

    def rows(run):
        timing = {"rollout_s", "generate_s", "reward_s", "train_s", "step_s", "rollout_tokens_per_s",
                  "train_tokens_per_s"}
        lines = (run.parent / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]

    assert [r["step"] for r in rows(resumed)] == [1, 2, 3, 4, 5] and rows(resumed) == rows(whole)
    a, b = from_pretrained(whole).state_dict(), from_pretrained(resumed).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_grpo_rollout_tokens_per_s_leaves_out_the_reward_time(base, tmp_path, monkeypatch):
    """rollout_tokens_per_s was over sampling and scoring together: a slow reward (the code reward's
    sandbox) read as a slow engine. Now over the engine's seconds; the rubric's are reward_s."""
    import time

    from r1lab.rewards import RewardTerm

    world_rubric = grpo.world_rubric

    def slow_rubric(config):
        rubric = world_rubric(config)

        def slow(completion, problem):
            time.sleep(0.1)
            return 0.0

        rubric.terms.append(RewardTerm("slow", slow, 0.0))
        return rubric

    monkeypatch.setattr(grpo, "world_rubric", slow_rubric)
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=2, prompts_per_step=1,
                             group_size=2, max_new_tokens=4, max_steps=1, kl_coef=0.0, bf16=False))
    (row,) = [json.loads(l) for l in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert row["reward_s"] >= 2 * 0.1 and row["rollout_s"] >= row["generate_s"] + row["reward_s"]
    assert row["rollout_tokens_per_s"] == pytest.approx(2 * row["length_mean"] / row["generate_s"])


def test_a_grpo_run_that_is_all_warmup_is_warned_about(base, tmp_path, capsys):
    # 2 steps with the default 5 warmup steps: the LR only reaches 40% of --lr, as pretrain and sft say
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=2, prompts_per_step=1,
                             group_size=2, max_new_tokens=4, max_steps=2, kl_coef=0.0, bf16=False))
    assert "warmup_steps 5 >= the run's 2 steps" in capsys.readouterr().out
    rows = [json.loads(l) for l in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([2e-5 / 5, 2 * 2e-5 / 5])


# the KL reference is reset to the policy after every `ref_reset_every`-th step (R1-Zero: every 400
# updates), and never with 0; each update here nudges the policy so that it differs from a stale reference
@pytest.mark.parametrize("every, same", [(2, [True, False, True, False, True]), (0, [True, False, False, False, False])])
def test_the_reference_is_reset_to_the_policy_every_n_steps(base, tmp_path, monkeypatch, every, same):
    seen = []

    def update(model, ref, optimizer, batch, config, step, world):
        seen.append(all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values())))
        with torch.no_grad():
            model.lm_head.weight.add_(1e-2)
        return {}

    monkeypatch.setattr(grpo, "policy_update", lambda *a: update(*a) or {"train_tokens": 0})
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=4, prompts_per_step=2,
                             group_size=2, max_new_tokens=2, max_steps=5, kl_coef=0.05, ref_reset_every=every,
                             save_every=100, bf16=False))
    assert seen == same


# --dynamic-sampling drops equal-reward groups and --mask-truncated masks cut completions: each flag
# reaches its own argument of build_batch
@pytest.mark.parametrize("dynamic, masked", [(True, False), (False, True)])
def test_grpo_passes_dynamic_sampling_and_truncation_masking_to_the_batch(base, tmp_path, monkeypatch, dynamic, masked):
    import inspect

    from r1lab.stages import rollout

    seen = []

    def build(*a, **k):
        args = inspect.signature(rollout.build_batch).bind(*a, **k).arguments
        seen.append((args["drop_equal_groups"], args["mask_truncated"]))
        return rollout.build_batch(*a, **k)

    monkeypatch.setattr(grpo, "build_batch", build)
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=4, prompts_per_step=2,
                             group_size=2, max_new_tokens=2, max_steps=1, dynamic_sampling=dynamic,
                             mask_truncated=masked, bf16=False))
    assert seen == [(dynamic, masked)]


# the policy trains at the schedule's LR, not only logs it: warmup 2, then cosine to 0.1 of it over 4 steps
def test_grpo_updates_at_the_scheduled_learning_rate(base, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(grpo, "policy_update", lambda model, ref, optimizer, *a: seen.append(
        [g["lr"] for g in optimizer.param_groups]) or {"train_tokens": 0})
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=4, prompts_per_step=2,
                             group_size=2, max_new_tokens=2, max_steps=4, lr=1e-3, warmup_steps=2, min_lr_ratio=0.1,
                             save_every=100, bf16=False))
    # by hand: (0 + 1) / 2, (1 + 1) / 2, the peak again, then 0.1 + 0.9 * (1 + cos(pi / 2)) / 2 = 0.55
    assert seen == [[pytest.approx(v * 1e-3)] * 2 for v in (0.5, 1.0, 1.0, 0.55)]
