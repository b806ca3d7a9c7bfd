"""Data parallelism (r1lab.parallel): FSDP2 over gloo on this machine's CPU, two processes.

The claim under test is the one the module makes: N processes each training on their share of a
step's rows compute the update one process computes on all of them, and their checkpoints are the
one-process format (resumable by any number of processes).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from r1lab import cli, parallel, training
from r1lab.losses import aggregate, aggregation_count
from r1lab.model import Transformer, from_pretrained, preset
from r1lab.stages import grpo

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "r1lab" / "assets" / "base-tiny"
WORKER = Path(__file__).with_name("distributed_worker.py")
PRECISION_WORKER = Path(__file__).with_name("precision_worker.py")
G_WORKER = 2  # its group size


def launch(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N ARGS` (1: plain python), one thread a process. gloo
    talks over the loopback device where there is one: a host name that resolves to an address
    other processes cannot reach would otherwise fail the rendezvous."""
    runner = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    done = subprocess.run([sys.executable, *runner, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    errors = "\n".join(line for line in done.stderr.splitlines() if "it/s" not in line)  # no progress bars
    # every process exits cleanly: an abort at exit (parallel.close not called) fails here too
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{errors[-6000:]}"
    return done


# ----------------------------------------------------------------------------- one process: no-ops


def test_a_plain_process_is_a_world_of_one_and_every_helper_leaves_things_as_they_are(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = parallel.init("cpu")
    assert world == parallel.World() and world.main and not world.distributed
    model = Transformer(preset("tiny").replace(vocab_size=64))
    assert parallel.parallelize(model, world) is model and not parallel.is_sharded(model)
    assert parallel.unsharded(model, world) is model and parallel.sampling_copy(model, world) is model
    assert parallel.shard([1, 2, 3], world) == [1, 2, 3] and parallel.all_sum([2, 3.5], world) == [2.0, 3.5]
    assert parallel.loss_weight(7, world) == 1.0 and parallel.gather({"a": 1}, world) == [{"a": 1}]


def test_close_destroys_the_process_group_and_does_nothing_without_one():
    parallel.close()  # no group: nothing to do
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        parallel.close()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("outcome,closed", [(0, True), (1, False), (ValueError("bad input"), False)])
def test_the_command_line_closes_the_group_and_ends_the_process_only_after_a_distributed_run_that_succeeded(outcome, closed,
                                                                                    monkeypatch):
    """An error leaves the group as it is: destroying it would wait on processes still in a collective."""
    calls = []

    def main(args):
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    stage = types.SimpleNamespace(add_arguments=lambda parser: None, main=main)
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: stage)
    monkeypatch.setattr(parallel, "close", lambda: calls.append("close"))
    monkeypatch.setattr(parallel, "end_process", lambda code: calls.append(("end", code)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["zero"]) == (2 if isinstance(outcome, Exception) else outcome)
    assert calls == (["close", ("end", 0)] if closed else [])
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no group to close, Python exits as usual
    assert cli.main(["zero"]) == (2 if isinstance(outcome, Exception) else outcome) and len(calls) == 2 * closed


def test_ending_a_process_runs_its_exit_handlers_and_flushes_what_it_printed():
    script = ("import atexit, sys; from r1lab import parallel; atexit.register(lambda: print('handled'));"
              "print('buffered', end=''); sys.stderr.write('err'); parallel.end_process(3); print('never')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (3, "bufferedhandled\n", "err")


def test_shares_of_a_batch_cover_it_once_with_sizes_within_one():
    items = list(range(7))
    shares = [parallel.shard(items, parallel.World(rank=r, size=3)) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]


def test_the_loss_weight_turns_local_means_into_the_global_mean():
    # two processes, 3 and 1 items with local mean losses 2.0 and 6.0: the global mean is
    # (3 * 2 + 1 * 6) / 4 = 3; FSDP averages the two weighted losses: (w0 * 2 + w1 * 6) / 2
    w0 = parallel.loss_weight(3, parallel.World(rank=0, size=2), total=4)
    w1 = parallel.loss_weight(1, parallel.World(rank=1, size=2), total=4)
    assert (w0, w1) == (1.5, 0.5) and (w0 * 2.0 + w1 * 6.0) / 2 == 3.0
    assert parallel.loss_weight(0, parallel.World(rank=1, size=2), total=0) == 0.0


@pytest.mark.parametrize("how", ["seq_mean", "token_mean", "constant"])
def test_aggregation_count_splits_every_aggregation_exactly(how):
    """aggregate over all rows == the count-weighted mean of aggregate over two halves."""
    torch.manual_seed(0)
    per_token = torch.randn(6, 5)
    mask = (torch.rand(6, 5) > 0.3).float()
    mask[1] = 0  # a fully masked row (overlong filtering): left out of seq_mean's count
    halves = [slice(0, 2), slice(2, 6)]
    counts = [aggregation_count(mask[h], how) for h in halves]
    assert aggregation_count(mask, how) == sum(counts)
    assert aggregation_count(mask, "seq_mean") == 5 and aggregation_count(mask, "constant") == 6
    split = sum(c * aggregate(per_token[h], mask[h], how, 5) for c, h in zip(counts, halves)) / sum(counts)
    torch.testing.assert_close(split, aggregate(per_token, mask, how, 5))


def test_an_optimizer_state_keyed_by_name_loads_like_one_keyed_by_position():
    """A distributed run saves the optimizer state by parameter name; one process resumes it."""
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64))
    optimizer = training.make_optimizer(model, 1e-3, 0.1)
    model.loss(torch.randint(3, 64, (2, 8)), torch.randint(3, 64, (2, 8))).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # as on resume: no gradient yet
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    named = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    assert all(isinstance(k, str) for k in named["state"])
    for state in (named, optimizer.state_dict()):
        fresh = training.make_optimizer(model, 1e-3, 0.1)
        parallel.load_optimizer_state(model, fresh, state)
        for p in model.parameters():
            torch.testing.assert_close(fresh.state[p]["exp_avg"], optimizer.state[p]["exp_avg"])


def test_grpo_refuses_shares_that_would_differ_between_processes():
    two = parallel.World(rank=0, size=2)
    with pytest.raises(ValueError, match="multiple of the 2 processes"):
        grpo.check_world(grpo.GRPOConfig(prompts_per_step=3, n_prompts=8), two)
    grpo.check_world(grpo.GRPOConfig(prompts_per_step=4, n_prompts=8, dynamic_sampling=True), two)
    grpo.check_world(grpo.GRPOConfig(prompts_per_step=3, n_prompts=8, dynamic_sampling=True), parallel.World())


def test_a_process_keeps_every_minibatch_step_even_an_empty_one():
    """Dynamic sampling leaves processes unequal rows: each still takes `minibatches` steps (a
    sharded model's forward and backward are collectives), one process alone skips empty pieces."""
    def sizes(n, keep_empty):
        return [len(r) for r in grpo.minibatch_rows(n, 3, torch.Generator().manual_seed(0), keep_empty)]

    assert sizes(2, keep_empty=True) == [1, 1, 0] and sizes(2, keep_empty=False) == [1, 1]
    assert sizes(0, keep_empty=True) == [0, 0, 0] and sizes(0, keep_empty=False) == []
    assert sizes(7, keep_empty=True) == sizes(7, keep_empty=False) == [3, 2, 2]


def test_expert_parallelism_refuses_experts_that_do_not_split_evenly_and_leaves_the_model_as_it_was():
    """8 routed experts over 3 processes: refused before any weight is touched, naming both counts."""
    from r1lab.expert_parallel import shard_experts
    from r1lab.model.moe import Experts

    model = Transformer(preset("tiny").replace(vocab_size=64))
    mesh = types.SimpleNamespace(size=lambda: 3)
    with pytest.raises(ValueError, match="multiple of 3 routed experts per layer; this model has 8"):
        shard_experts(model, mesh)
    assert all(type(m) is Experts and not hasattr(m.gate_up_proj, "device_mesh")
               for m in model.modules() if isinstance(m, Experts))


def test_the_filler_row_trains_nothing_and_counts_no_load():
    """A process without rows forwards `TrainBatch.filler`: finite log-probs (its queries see
    themselves), a zero loss and gradient at any weight, and no MoE load."""
    from r1lab.losses import grpo_loss
    from r1lab.stages.rollout import TrainBatch, completion_logprobs

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64)).train()
    filler = TrainBatch.filler("cpu")
    logp = completion_logprobs(model, filler, torch.zeros(1, dtype=torch.long), 1.0)
    assert logp.shape == (1, 2) and torch.isfinite(logp).all()
    loss = grpo_loss(logp, filler.old_logp, filler.advantages, filler.mask, kl_coef=0.1, ref_logp=logp.detach() - 1).loss
    (loss * 5.0).backward()
    # every parameter of the forward has a gradient (FSDP reduces those), all zero; MTP is not in RL
    grads = {name: p.grad for name, p in model.named_parameters() if not name.startswith("mtp")}
    assert loss.item() == 0.0 and all(g is not None and not g.any() for g in grads.values())
    assert all(not load.any() for load in model.expert_load())


def test_data_parallel_batches_are_two_completion_tokens_wide_at_least():
    """The filler's width: with one-token completions a process would otherwise skip the completion
    forward (its collectives) that a filler's or a wider batch's runs."""
    from r1lab.engine import Completion
    from r1lab.rewards import RubricResult
    from r1lab.stages.rollout import Rollout, build_batch

    comps = [Completion(prompt_index=0, token_ids=[5], logprobs=[-1.0], text="", finish_reason="length")] * 2
    roll = Rollout(prompts=[[1, 2]], completions=comps, examples=[None] * 2,
                   rewards=RubricResult(total=[0.0, 1.0], per_term={}), group_size=2)
    one, two = (build_batch(roll, torch.tensor([-1.0, 1.0]), 0, False, False, min_width=w) for w in (1, 2))
    assert one.tokens.shape == (2, 1) and two.tokens.shape == (2, 2)
    assert two.token_valid[:, 1].sum() == 0 and two.mask[:, 1].sum() == 0  # padding: no loss, no load


# ----------------------------------------------------------------------------- two processes


@pytest.mark.parametrize("how,experts", [("seq_mean", "fsdp"), ("token_mean", "fsdp"), ("constant", "fsdp"),
                                         ("seq_mean", "expert_parallel")])
def test_a_grpo_update_in_two_processes_is_the_one_process_update(tmp_path, how, experts):
    """Two epochs over a batch with masked truncated rows and rows of unequal lengths, a KL term,
    MoE balancing: each process holds two of the four groups (tests/distributed_worker.py). With
    expert parallelism each process also holds four of every layer's eight routed experts, and the
    tokens are exchanged (policy and reference); an expert's gradient gathers both processes' tokens."""
    ep = ["--expert-parallel"] if experts == "expert_parallel" else []
    launch([str(WORKER), str(tmp_path / "one"), how], tmp_path, processes=1)
    launch([str(WORKER), str(tmp_path / "two"), how, *ep], tmp_path, processes=2)
    one, two = (torch.load(tmp_path / d / "weights.pt") for d in ("one", "two"))
    start = Transformer(preset("tiny").replace(vocab_size=64)).state_dict()  # not the initial weights: a
    moved = max((one[k] - start[k]).abs().max().item() for k in one)  # different draw; checks only the scale
    assert moved > 0.01
    for k in one:  # the router biases (counts of routed tokens) included
        torch.testing.assert_close(two[k], one[k], atol=1e-6, rtol=1e-5, msg=k)
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert report["world"] == 2 and report["sampler_is_policy"] and report["reset_is_policy"]
    assert report["experts"] == ("ExpertParallelExperts" if ep else "Experts")
    solo = json.loads((tmp_path / "one" / "report.json").read_text())
    assert report["stats"]["grad_norm"] == pytest.approx(solo["stats"]["grad_norm"], rel=1e-5)  # the global norm


@pytest.mark.parametrize("how", ["seq_mean", "constant"])
def test_dynamic_sampling_in_two_processes_is_the_one_process_update_when_a_process_keeps_no_group(tmp_path, how):
    """Prompts 1 and 3 have equal rewards: one process drops them and trains on groups 0 and 2;
    in two, rank 1 keeps nothing and forwards the filler through the reference and each of the
    two epochs' updates, weighed 0 (also under Dr. GRPO's constant, which counts rows)."""
    launch([str(WORKER), str(tmp_path / "one"), how, "odd"], tmp_path, processes=1)
    launch([str(WORKER), str(tmp_path / "two"), how, "odd"], tmp_path, processes=2)
    one, two = (torch.load(tmp_path / d / "weights.pt") for d in ("one", "two"))
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-6, rtol=1e-5, msg=k)
    solo, report = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert solo["rows"] == 2 * G_WORKER and report["rows"] == 2 * G_WORKER  # rank 0's: both kept groups
    assert report["stats"]["grad_norm"] == pytest.approx(solo["stats"]["grad_norm"], rel=1e-5)
    assert report["sampler_is_policy"] and report["reset_is_policy"]


def test_dynamic_sampling_in_two_processes_with_an_empty_minibatch_on_one(tmp_path):
    """Three minibatches: rank 0 keeps groups 0 and 2 (4 rows: pieces of 2, 1, 1), rank 1 group 1
    alone (2 rows: 1, 1, 0). Rank 1's third step is the filler's. One process trained on the same
    global minibatches (`two_process_pieces`) gives the same weights."""
    launch([str(WORKER), str(tmp_path / "one"), "seq_mean", "last"], tmp_path, processes=1)
    launch([str(WORKER), str(tmp_path / "two"), "seq_mean", "last"], tmp_path, processes=2)
    one, two = (torch.load(tmp_path / d / "weights.pt") for d in ("one", "two"))
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-6, rtol=1e-5, msg=k)
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert report["rows"] == 2 * G_WORKER and report["sampler_is_policy"] and report["reset_is_policy"]
    assert len(report["every"]) == 2
    for stats in report["every"]:
        assert all(math.isfinite(v) for v in stats.values()) and stats["grad_norm"] > 0


def test_a_process_whose_rows_are_all_masked_reports_no_loss_statistics(tmp_path):
    """Rank 1's rows are all truncated and masked while rank 0's train: rank 1 takes the steps (its
    forward and backward are collectives) but its ratio / clip / loss statistics would be zeros of
    no token, which must not enter the step's means. The update is still the one-process update."""
    launch([str(WORKER), str(tmp_path / "one"), "seq_mean", "masked"], tmp_path, processes=1)
    launch([str(WORKER), str(tmp_path / "two"), "seq_mean", "masked"], tmp_path, processes=2)
    one, two = (torch.load(tmp_path / d / "weights.pt") for d in ("one", "two"))
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=1e-6, rtol=1e-5, msg=k)
    rank0, rank1 = json.loads((tmp_path / "two" / "report.json").read_text())["every"]
    assert {"loss", "ratio", "clip_fraction", "kl", "grad_norm"} <= set(rank0)
    assert set(rank1) == {"expert_load_max_mean", "train_tokens"} and rank1["train_tokens"] > 0


def _sft_args(data: Path, out: str, steps: int, resume: bool = False, *extra: str) -> list[str]:
    return ["-m", "r1lab", "sft", "--data", str(data), "--init", str(BASE), "--out-dir", out, "--seq-len", "128",
            "--batch-size", "3", "--lr", "3e-3", "--warmup-steps", "2", "--no-bf16", "--max-steps", str(steps),
            "--save-every", "2", *(["--resume"] if resume else []), *extra]


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sft_in_two_processes_trains_as_one_and_its_checkpoints_resume_in_either(tmp_path):
    """`torchrun -m r1lab sft`: the same losses, token counts and weights as one process (MTP and
    packing on; batches of 3 rows split 2 + 1, the last batch's 1 row leaving a process none), and a
    checkpoint of either resumed by the other continues alike, the two processes then with expert
    parallelism (the checkpoint's whole experts split between them, tokens exchanged)."""
    from tests.test_sft import write_jsonl

    data = write_jsonl(tmp_path / "train.jsonl", n=24)
    launch(_sft_args(data, "one", 5), tmp_path, processes=1)
    launch(_sft_args(data, "two", 5), tmp_path, processes=2)
    rows = [[json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
            for d in ("one", "two")]
    assert [r["tokens"] for r in rows[0]] == [r["tokens"] for r in rows[1]]
    for a, b in zip(*rows):
        for key in ("loss", "mtp_loss", "grad_norm", "expert_load_max_mean"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    assert len(json.loads((tmp_path / "one" / "sft_config.json").read_text())) > 5
    one, two = (from_pretrained(tmp_path / d / "model").state_dict() for d in ("one", "two"))
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=2e-4, rtol=1e-3, msg=k)
    assert not (tmp_path / "two" / "checkpoints" / "step_000004" / "trainer_state.pt.tmp").exists()
    # each run's step-4 checkpoint, continued to 7 steps by the other world
    launch(_sft_args(data, "two", 7, resume=True), tmp_path, processes=1)
    launch(_sft_args(data, "one", 7, True, "--expert-parallel"), tmp_path, processes=2)
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    assert len(_losses(tmp_path / "one")) == 7


def test_grpo_runs_in_two_processes_and_saves_a_resumable_policy(tmp_path):
    """`torchrun -m r1lab zero`: every metric of the step over both processes' groups, one metrics
    log, a checkpoint with its reference that a single process resumes."""
    args = ["-m", "r1lab", "zero", "--init", str(BASE), "--out-dir", "zero", "--n-prompts", "32",
            "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "16", "--kl-coef", "0.01",
            "--save-every", "2", "--no-bf16"]
    done = launch([*args, "--max-steps", "3"], tmp_path, processes=2)
    assert done.stdout.count("policy saved to") == 1  # rank 1 prints nothing
    rows = [json.loads(line) for line in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    # 4 prompts x 4 samples over the two processes: a share of 16 completions is a multiple of 1/16
    assert all((r["accuracy"] * 16) == pytest.approx(round(r["accuracy"] * 16)) for r in rows)
    assert all(r["length_max"] >= r["length_mean"] for r in rows)
    ck = tmp_path / "zero" / "checkpoints" / "step_000002"
    assert (ck / "reference" / "model.safetensors").exists() and (ck / "trainer_state.pt").exists()
    # resumed by two processes (two minibatches, bf16: shapes padded; experts split by expert), then by one
    launch([*args, "--max-steps", "5", "--resume", "--minibatches", "2", "--bf16", "--expert-parallel"], tmp_path,
           processes=2)
    assert (tmp_path / "zero" / "checkpoints" / "step_000004" / "trainer_state.pt").exists()
    launch([*args, "--max-steps", "6", "--resume"], tmp_path, processes=1)
    rows = [json.loads(line) for line in (tmp_path / "zero" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert from_pretrained(tmp_path / "zero" / "policy").config.vocab_size > 0


def test_bf16_processes_gather_bf16_weights_keep_float32_gates_and_train_as_autocast_does(tmp_path):
    """`parallelize(..., bf16=True)`: the blocks and the head compute with bf16 weights, the MoE
    gates and the reward model's head with float32 ones; shards and optimizer state stay float32,
    and the step is the one-process autocast step up to bf16 rounding (tests/precision_worker.py)."""
    launch([str(PRECISION_WORKER), str(tmp_path / "one")], tmp_path, processes=1)
    launch([str(PRECISION_WORKER), str(tmp_path / "two")], tmp_path, processes=2)
    one, two = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert one["seen"] == dict.fromkeys(("attention", "router", "head", "score"), "torch.float32")  # autocast
    assert two["seen"] == {"attention": "torch.bfloat16", "head": "torch.bfloat16", "router": "torch.float32",
                           "score": "torch.float32"}
    assert two["world"] == 2 and two["parameters"] == two["optimizer_state"] == ["torch.float32"]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-3)  # measured: 1.3e-4
    a, b = torch.tensor(one["grad"]), torch.tensor(two["grad"])
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999  # measured: 0.99996
    assert b.norm() == pytest.approx(a.norm().item(), rel=1e-2)
    assert two["grad_off_bf16"] > 0.1  # reduced in float32 (measured: 0.53; 0.002 reduced in bf16)
    assert two["scores"] == pytest.approx(one["scores"], abs=1e-2)  # measured: within 0.002


def test_pretraining_in_two_processes_takes_the_one_process_steps(tmp_path):
    """`torchrun -m r1lab pretrain`: each process draws its rows of the step's windows; the logged
    losses (the global batch's) and the held-out loss are one process's."""
    args = ["-m", "r1lab", "pretrain", "--n-docs", "500", "--max-steps", "3", "--batch-size", "3", "--seq-len", "32",
            "--eval-every", "3", "--warmup-steps", "1", "--no-bf16"]
    launch([*args, "--out-dir", "one"], tmp_path, processes=1)
    launch([*args, "--out-dir", "two"], tmp_path, processes=2)
    one, two = ([json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
                for d in ("one", "two"))
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "grad_norm", "mtp_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    assert two[-1]["heldout_loss"] == pytest.approx(one[-1]["heldout_loss"], rel=1e-4)


def test_rollout_parts_merge_into_the_step_s_rollout():
    """The step's metrics come from every process's groups: prompt indices shift past the earlier
    parts' prompts, and a reward term no prompt of a part had (a reward model's, on reasoning
    prompts only) is None there, left out of its mean."""
    from r1lab.engine import Completion
    from r1lab.rewards import RubricResult
    from r1lab.stages.rollout import Rollout

    def part(n_prompts: int, per_term: dict, seconds: float) -> Rollout:
        comps = [Completion(prompt_index=i // 2, token_ids=[3] * (i + 1), logprobs=[0.0] * (i + 1), finish_reason="stop")
                 for i in range(2 * n_prompts)]
        return Rollout(prompts=[[1]] * n_prompts, completions=comps, examples=list(range(2 * n_prompts)),
                       rewards=RubricResult(total=[1.0] * len(comps), per_term=per_term), group_size=2,
                       generate_s=seconds)

    a = part(1, {"accuracy": [1.0, 0.0]}, 2.0)
    b = part(2, {"accuracy": [None] * 4, "helpful": [0.5, 0.7, 0.1, 0.3]}, 3.0)
    whole = Rollout.merge([a, b])
    assert [c.prompt_index for c in whole.completions] == [0, 0, 1, 1, 2, 2]
    assert whole.rewards.per_term["helpful"] == [None, None, 0.5, 0.7, 0.1, 0.3]
    assert whole.rewards.means()["reward/accuracy"] == 0.5 and whole.rewards.means()["reward/helpful"] == pytest.approx(0.4)
    assert whole.generate_s == 3.0 and whole.examples == [0, 1, 0, 1, 2, 3] and Rollout.merge([a]) is a


def test_commands_that_cannot_split_their_work_refuse_torchrun(monkeypatch, capsys):
    from r1lab import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["eval", "--data", "world"]) == 2
    err = capsys.readouterr().err
    assert "not under torchrun" in err and "pretrain, sft, zero, all-scenario, reward-model" in err and err.count("\n") == 1


@pytest.mark.parametrize("objective", ["pairwise", "pointwise"])
def test_a_reward_model_in_two_processes_trains_as_one(tmp_path, objective):
    """`torchrun -m r1lab reward-model`: 33 training items in batches of 16, so each epoch ends with one
    item that leaves a process a stand-in; the same losses, accuracies and held-out result."""
    from tests.test_reward_model import _write

    data = _write(tmp_path / "data.jsonl", objective, 44)
    args = ["-m", "r1lab", "reward-model", "--data", str(data), "--objective", objective, "--init", str(BASE),
            "--batch-size", "16", "--lr", "3e-3", "--warmup-steps", "2", "--epochs", "2", "--eval-share", "0.25",
            "--no-bf16"]
    launch([*args, "--out-dir", "one"], tmp_path, processes=1)
    launch([*args, "--out-dir", "two"], tmp_path, processes=2)
    one, two = ([json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
                for d in ("one", "two"))
    assert [r["items"] for r in two] == [16, 16, 1] * 2
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "accuracy", "grad_norm", *(["margin"] * (objective == "pairwise"))):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    assert json.loads((tmp_path / "two" / "eval.json").read_text()) == json.loads((tmp_path / "one" / "eval.json").read_text())
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()


def test_all_scenario_rl_runs_in_two_processes_with_reward_terms_from_either(tmp_path):
    """`torchrun -m r1lab all-scenario`: reasoning and general prompts land on different processes,
    and a reward model's term applies to general ones only; the step's record holds every term
    (averaging per-process records mismatched when one process had no general prompt)."""
    from r1lab.model.reward import RewardModel, save_reward_model
    from r1lab.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(BASE)
    for name, seed in (("helpful", 0), ("safety", 1)):
        save_reward_model(RewardModel.from_policy(BASE, seed=seed), tmp_path / name, tokenizer)
    launch(["-m", "r1lab", "all-scenario", "--init", str(BASE), "--helpful-rm", "helpful", "--safety-rm", "safety",
            "--out-dir", "all", "--n-prompts", "32", "--n-general", "32", "--prompts-per-step", "4", "--group-size", "2",
            "--max-new-tokens", "16", "--max-steps", "3", "--no-bf16"], tmp_path, processes=2)
    rows = [json.loads(line) for line in (tmp_path / "all" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert any("reward/helpful" in r and "reward/accuracy" in r for r in rows)  # both kinds in one step
    assert (tmp_path / "all" / "policy" / "model.safetensors").is_file()
