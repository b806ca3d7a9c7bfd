"""The GRPO stage (r1lab.stages.grpo).

Updates on batches whose loss mask is empty (DAPO overlong filtering masks every token of a
truncated completion): no loss token means no optimizer step and no statistics."""

from __future__ import annotations

import json

import pytest
import torch

from r1lab import training
from r1lab.engine import Completion
from r1lab.losses import grpo_loss
from r1lab.model import Transformer, preset
from r1lab.rewards import RubricResult
from r1lab.stages import grpo
from r1lab.stages.rollout import Rollout, build_batch, completion_logprobs


def _model_and_batch(finish: list[str]) -> tuple[Transformer, object]:
    """Two prompts, two completions each, old log-probs the model's own (ratio exactly 1)."""
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=64, num_nextn_predict_layers=0)).train()
    comps = [Completion(prompt_index=i // 2, token_ids=[3 + i, 4, 5], logprobs=[0.0] * 3, text="",
                        finish_reason=f) for i, f in enumerate(finish)]
    rollout = Rollout(prompts=[[1, 5], [1, 6]], completions=comps, examples=[None] * 4,
                      rewards=RubricResult(total=[1.0, 0.0] * 2, per_term={}), group_size=2)
    batch = build_batch(rollout, torch.tensor([1.0, -1.0] * 2), pad_id=0, drop_equal_groups=False,
                        mask_truncated=True)
    model.eval()  # no expert-load bookkeeping for this read
    with torch.no_grad():
        batch.old_logp = completion_logprobs(model, batch, torch.arange(4), temperature=1.0)
    return model.train(), batch


class Counting(torch.optim.AdamW):
    steps = 0

    def step(self, closure=None):
        Counting.steps += 1
        return super().step(closure)


def test_a_minibatch_without_loss_tokens_takes_no_step_and_does_not_drag_the_ratio_to_zero():
    # prompt 0's completions were cut by the length limit: fully masked; prompt 1's stopped
    model, batch = _model_and_batch(["length", "length", "stop", "stop"])
    Counting.steps = 0
    config = grpo.GRPOConfig(minibatches=4, ppo_epochs=2, kl_coef=0.0, group_size=2)
    stats = grpo.policy_update(model, None, Counting(model.parameters(), lr=0.0), batch, config)
    # one row a minibatch: only the two rows with loss tokens step, in each of 2 passes; before, eight
    # steps, and the empty minibatches reported ratio 0 and clip fraction 0 (logged ratio 0.5)
    assert Counting.steps == 2 * 2
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-2)  # lr 0: only the router bias moves
    # train_tokens_per_s counts what trained: 2 rows x 3 tokens x 2 passes, not all 4 rows (24)
    assert stats["train_tokens"] == 2 * 3 * 2


def test_a_fully_masked_batch_leaves_the_weights_alone():
    """AdamW moves weights on a zero gradient (its momentum): an update without a loss token must
    not take the step at all."""
    model, batch = _model_and_batch(["length"] * 4)
    optimizer = training.make_optimizer(model, 1e-2, 0.0)
    model(torch.tensor([[1, 5, 3]])).sum().backward()  # some momentum from an earlier step
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in model.named_parameters()}
    stats = grpo.policy_update(model, None, optimizer, batch, grpo.GRPOConfig(kl_coef=0.0, group_size=2))
    assert all(torch.equal(v, before[k]) for k, v in model.named_parameters())
    assert stats == {"expert_load_max_mean": 1.0, "train_tokens": 0}  # as a step whose groups were all dropped


def test_a_step_whose_completions_are_all_truncated_and_masked_trains_no_token(tmp_path):
    """With --mask-truncated and every completion cut, the step had no loss token but still ran
    the update (reference forward, an AdamW step) and logged every token as trained."""
    from r1lab.stages import pretrain

    base = pretrain.run(pretrain.PretrainConfig(out_dir=str(tmp_path / "base"), n_docs=100, seq_len=32,
                                                batch_size=2, max_steps=1, eval_every=1, save_every=1, bf16=False))
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=4, prompts_per_step=2,
                             group_size=2, max_new_tokens=2, max_steps=1, mask_truncated=True, bf16=False))
    record = json.loads((tmp_path / "zero" / "metrics.jsonl").read_text())
    assert record["truncation_rate"] == 1.0  # seeded: the untrained base never stops in 2 tokens
    assert record["train_tokens_per_s"] == 0.0 and "ratio" not in record and "loss" not in record


# R1's first RL stage clips at eps = 10 (R1-FACTS): eps_low >= 1 leaves no clip below.
def test_the_papers_clip_ratio_of_ten_is_accepted_and_clips_nothing_below():
    config = grpo.GRPOConfig(clip_eps_low=10.0, clip_eps_high=10.0)  # refused before: eps_low had to be < 1
    logp, old = torch.log(torch.tensor([[0.05]])), torch.zeros(1, 1)  # ratio 0.05
    advantage, mask = torch.tensor([-1.0]), torch.ones(1, 1)
    loss = grpo_loss(logp, old, advantage, mask, clip_eps_low=config.clip_eps_low, clip_eps_high=config.clip_eps_high)
    assert loss.loss.item() == pytest.approx(0.05) and loss.clip_fraction.item() == 0.0  # -min(-0.05, -0.05)
    clipped = grpo_loss(logp, old, advantage, mask, clip_eps_low=0.2, clip_eps_high=0.2)
    assert clipped.loss.item() == pytest.approx(0.8) and clipped.clip_fraction.item() == 1.0  # -min(-0.05, -0.8)



# The final policy is the last thing a GRPO run writes (after its curves): a policy directory on
# disk means the run finished, which the demo relies on to reuse a stage killed before its stamp.
def test_the_curves_are_drawn_before_the_final_policy_is_saved(tmp_path, monkeypatch):
    from r1lab.stages import pretrain

    base = pretrain.run(pretrain.PretrainConfig(out_dir=str(tmp_path / "base"), n_docs=100, seq_len=32,
                                                batch_size=2, max_steps=1, eval_every=1, save_every=1, bf16=False))
    save = training.save_checkpoint

    def save_then_check(model, directory, **kwargs):
        if directory.name == "policy":
            assert (directory.parent / "curves.png").exists()
        return save(model, directory, **kwargs)

    monkeypatch.setattr(training, "save_checkpoint", save_then_check)
    grpo.run(grpo.GRPOConfig(init=str(base), out_dir=str(tmp_path / "zero"), n_prompts=4, prompts_per_step=2,
                             group_size=2, max_new_tokens=2, max_steps=1, bf16=False))
    assert (tmp_path / "zero" / "policy" / "config.json").exists()


# The chat template has one format rule: a lenient format with it is refused when the config is
# made, before a model is loaded or a run directory written.
def test_a_lenient_format_with_the_chat_template_is_refused_at_once(tmp_path):
    with pytest.raises(ValueError, match="strict_format"):
        grpo.GRPOConfig(init="unused", out_dir=str(tmp_path / "rl"), template="chat", strict_format=False)
    assert not (tmp_path / "rl").exists()


# dynamic sampling dropped every group: with a KL reference, the update is no step, not a crash
def test_an_update_with_every_group_dropped_and_a_reference_takes_no_step():
    import copy

    model, _ = _model_and_batch(["stop"] * 4)
    comps = [Completion(prompt_index=i // 2, token_ids=[3, 4], logprobs=[0.0] * 2, text="", finish_reason="stop")
             for i in range(4)]
    rollout = Rollout(prompts=[[1, 5], [1, 6]], completions=comps, examples=[None] * 4,
                      rewards=RubricResult(total=[1.0, 1.0, 0.0, 0.0], per_term={}), group_size=2)
    batch = build_batch(rollout, torch.zeros(4), pad_id=0, drop_equal_groups=True, mask_truncated=False)
    assert batch.tokens.shape[0] == 0
    ref = copy.deepcopy(model).eval()
    before = {k: v.clone() for k, v in model.named_parameters()}
    stats = grpo.policy_update(model, ref, training.make_optimizer(model, 1e-2, 0.0), batch,
                               grpo.GRPOConfig(group_size=2, dynamic_sampling=True))
    assert stats == {"expert_load_max_mean": 1.0, "train_tokens": 0}
    assert all(torch.equal(v, before[k]) for k, v in model.named_parameters())


# The logged rollout statistics against hand-computed values: only their presence was checked.
def test_rollout_metrics_by_hand():
    from r1lab.stages.rollout import rollout_metrics

    spec = [([5, 6, 7], "stop", [0.5] * 3), ([5], "length", [2.0]), ([5, 6], "stop", [1.0] * 2),
            ([5, 6, 7, 8, 9, 10], "length", [0.0] * 6)]
    comps = [Completion(prompt_index=i // 2, token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=finish,
                        text="", entropies=entropies) for i, (ids, finish, entropies) in enumerate(spec)]
    rewards = RubricResult(total=[2.0, 1.0, 1.0, 1.0], per_term={"accuracy": [1.0, 0.0, 1.0, 1.0],
                                                                 "format": [1.0, 1.0, 0.0, 0.0]})
    rollout = Rollout(prompts=[[1, 5], [1, 6]], completions=comps, examples=[None] * 4, rewards=rewards, group_size=2)
    metrics = rollout_metrics(rollout, torch.tensor(rewards.total).view(-1, 2))
    assert metrics == pytest.approx({
        "reward/accuracy": 0.75, "reward/format": 0.5, "reward/total": 1.25, "accuracy": 0.75, "format_rate": 0.5,
        "length_mean": (3 + 1 + 2 + 6) / 4, "length_max": 6.0, "truncation_rate": 2 / 4,
        "zero_variance_groups": 1 / 2,  # the second group's rewards (1, 1) are equal
        "entropy": (3 * 0.5 + 2.0 + 2 * 1.0) / 12})  # a mean over all 12 sampled tokens, not per completion


# Each minibatch trains its own rows' advantages against the reference's log-probs. With lr 0 the ratio
# stays ~1 (only the router bias moves), so a minibatch's loss is -(mean of its rows' advantages) +
# beta * KL: over two minibatches, -(1 + 2 + 3 + 4) / 4 whatever the split, plus beta times the k3 KL
# of the policy to a reference whose head was nudged, mean over tokens (seq_mean of equal-length rows).
def test_policy_update_trains_each_rows_advantage_against_the_reference():
    import copy

    model, batch = _model_and_batch(["stop"] * 4)
    batch.advantages = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ref = copy.deepcopy(model).eval()
    with torch.no_grad():
        ref.lm_head.weight.mul_(1.5)
        model.eval()
        rows = torch.arange(4)
        d = completion_logprobs(ref, batch, rows, 1.0) - completion_logprobs(model, batch, rows, 1.0)
    kl = (d.exp() - d - 1).mean().item()  # k3, mean over the 12 tokens
    assert kl > 1e-3
    config = grpo.GRPOConfig(minibatches=2, kl_coef=0.1, group_size=2)
    stats = grpo.policy_update(model.train(), ref, Counting(model.parameters(), lr=0.0), batch, config)
    assert stats["kl"] == pytest.approx(kl, rel=0.05)
    assert stats["loss"] == pytest.approx(-2.5 + 0.1 * kl, abs=0.02)


# an update moves the weights by at most grad_clip: with SGD at lr 1, by exactly it when the gradient is larger
def test_policy_update_clips_the_gradient_to_grad_clip():
    model, batch = _model_and_batch(["stop"] * 4)
    before = [p.detach().clone() for p in model.parameters()]
    stats = grpo.policy_update(model, None, torch.optim.SGD(model.parameters(), lr=1.0), batch,
                               grpo.GRPOConfig(kl_coef=0.0, group_size=2, grad_clip=1e-3))
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]).norm()
    assert stats["grad_norm"] > 0.01 and moved.item() == pytest.approx(1e-3, rel=1e-3)


# Dr. GRPO's constant normaliser is the generation budget max_new_tokens, not the batch's longest row:
# 4 rows of 3 tokens at ratio 1, -(3 * (1 + 2 + 3 + 4)) / (4 * 6) with max_new_tokens 6
def test_the_constant_aggregation_divides_by_max_new_tokens():
    model, batch = _model_and_batch(["stop"] * 4)
    batch.advantages = torch.tensor([1.0, 2.0, 3.0, 4.0])
    config = grpo.GRPOConfig(kl_coef=0.0, group_size=2, loss_aggregation="constant", max_new_tokens=6)
    stats = grpo.policy_update(model, None, Counting(model.parameters(), lr=0.0), batch, config)
    assert stats["loss"] == pytest.approx(-30 / 24, rel=1e-4)


# each of ppo_epochs passes draws a fresh split from the step's stream: not the first pass's split again
def test_each_ppo_epoch_reshuffles_the_minibatches(monkeypatch):
    model, batch = _model_and_batch(["stop"] * 4)
    seen = []
    logprobs = grpo.completion_logprobs
    monkeypatch.setattr(grpo, "completion_logprobs",
                        lambda m, b, rows, t: seen.append(rows.tolist()) or logprobs(m, b, rows, t))
    config = grpo.GRPOConfig(kl_coef=0.0, group_size=2, minibatches=2, ppo_epochs=3, seed=1)
    grpo.policy_update(model, None, Counting(model.parameters(), lr=0.0), batch, config, step=7)
    g = torch.Generator().manual_seed(1 * 1_000_003 + 7)  # shuffle_generator's stream for step 7
    expected = [rows.tolist() for _ in range(3) for rows in torch.randperm(4, generator=g).tensor_split(2)]
    assert seen == expected and seen[:2] != seen[2:4]  # the seeded passes' splits differ


# train_tokens counts what was forwarded and backpropagated: a masked truncated row of a trained minibatch too
def test_train_tokens_count_a_masked_row_of_a_trained_minibatch():
    model, batch = _model_and_batch(["length", "stop", "stop", "stop"])
    stats = grpo.policy_update(model, None, Counting(model.parameters(), lr=0.0), batch,
                               grpo.GRPOConfig(kl_coef=0.0, group_size=2, ppo_epochs=2))
    assert stats["train_tokens"] == 2 * 4 * 3  # 2 passes x 4 rows x 3 tokens, not 2 x 3 x 3 loss tokens
