"""Reward models (R1 §2.3.4): transformers loads them and scores alike, the score is read at the last
real token, the pointwise loss by hand, training learns a rule on held-out items, bad data names its line."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from r1lab import cli
from r1lab.losses import pointwise_reward_loss
from r1lab.model import Transformer, from_pretrained, preset, reward, save_pretrained
from r1lab.model.reward import RewardModel, load_reward_model, render, right_pad, save_reward_model
from r1lab.stages import reward_model as stage
from r1lab.tokenizer import Tokenizer

BASE = Path(stage.__file__).resolve().parents[1] / "assets" / "base-tiny"  # for its tokenizer only
TOPICS = "apple river stone cloud green blue quiet bright small tall warm cold".split()
PARITY_ATOL = 1e-4  # observed ~1e-8 in float32; pooling one token off moves a score by > 1e-3 (checked below)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(BASE)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Tokenizer) -> Path:
    """A tiny random policy (one dense, one MoE layer, MTP on) with the world's tokenizer."""
    torch.manual_seed(0)
    config = preset("tiny").replace(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        num_hidden_layers=2, num_attention_heads=2, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4,
        v_head_dim=8, n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1, first_k_dense_replace=1,
        max_position_embeddings=64, pad_token_id=tokenizer.pad_id, bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id)
    model = Transformer(config)
    for name, buf in model.named_buffers():  # a balancing bias that is not zero must be copied and saved too
        if name.endswith("e_score_correction_bias"):
            buf.copy_(torch.randn(buf.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    return save_pretrained(model, tmp_path_factory.mktemp("policy") / "policy", extra_files=tokenizer.files())


PROMPTS = ["Tell me about the river.", "Hi", "What is 2+3? Explain every step of the sum to me."]
RESPONSES = ["The river is long and blue.", "Hello!", "<think>2+3=5</think>It is 5."]


def _batch(tokenizer: Tokenizer, rm: RewardModel) -> reward.ScoreBatch:
    return right_pad([render(tokenizer, p, r) for p, r in zip(PROMPTS, RESPONSES)], rm.config.pad_token_id, 64)


# ----------------------------------------------------------------------------- the model and its checkpoint


def test_transformers_loads_the_reward_model_and_scores_a_right_padded_batch_alike(tmp_path, tokenizer, policy_dir,
                                                                                    monkeypatch):
    rm = RewardModel.from_policy(policy_dir, seed=0).eval()
    path = save_reward_model(rm, tmp_path / "rm", tokenizer)
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["DeepseekV3ForSequenceClassification"] and config["num_labels"] == 1
    assert config["pad_token_id"] == tokenizer.pad_id and config["num_nextn_predict_layers"] == 0
    names = set(load_file(path / "model.safetensors"))
    # the policy's MTP module would be layer 2 on disk (checkpoint.py): neither it nor the LM head is saved
    assert "score.weight" in names and not any(n.startswith(("lm_head", "model.layers.2.")) for n in names)
    assert not (path / "mtp.safetensors").exists() and (path / "tokenizer.json").is_file()
    hf, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
    assert type(hf).__name__ == "DeepseekV3ForSequenceClassification"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = _batch(tokenizer, rm)
    assert batch.attention_mask.sum(-1).unique().numel() == 3  # three lengths: two rows end in padding
    with torch.no_grad():
        theirs = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask.long()).logits.squeeze(-1)  # (3,)
        ours = rm(batch.input_ids, batch.attention_mask)  # (3,)
        assert (ours - theirs).abs().max().item() <= PARITY_ATOL
        assert (load_reward_model(path)(batch.input_ids) - ours).abs().max().item() <= 1e-6  # mask from pad ids
        # the test can fail: reading the score one token early, or at the last column, is far off
        for wrong in (lambda m: m.sum(-1) - 2, lambda m: torch.full_like(m.sum(-1), m.shape[1] - 1)):
            monkeypatch.setattr(reward, "last_real_position", wrong)
            assert (rm(batch.input_ids, batch.attention_mask) - theirs).abs().max().item() > 10 * PARITY_ATOL
    monkeypatch.undo()
    hf.save_pretrained(tmp_path / "hf")  # and back: transformers' own save loads here
    with torch.no_grad():
        assert (load_reward_model(tmp_path / "hf")(batch.input_ids, batch.attention_mask) - ours).abs().max() <= 1e-6
    assert rm.score_texts(tokenizer, PROMPTS, RESPONSES, batch_size=2) == pytest.approx(ours.tolist(), abs=1e-5)


def test_from_policy_copies_the_trunk_and_seeds_the_head(policy_dir):
    policy = from_pretrained(policy_dir)
    a, b, c = (RewardModel.from_policy(policy, seed=s) for s in (0, 0, 1))
    assert torch.equal(a.score.weight, b.score.weight) and not torch.equal(a.score.weight, c.score.weight)
    assert 0 < a.score.weight.std().item() < 0.1  # small: the first scores are near 0
    for name, t in policy.model.state_dict().items():
        assert torch.equal(a.model.state_dict()[name], t), name
    with torch.no_grad():
        a.model.embed_tokens.weight.add_(1.0)  # a copy: training the reward model leaves the policy alone
    assert not torch.equal(a.model.embed_tokens.weight, policy.model.embed_tokens.weight)
    assert set(a.state_dict()) == {f"model.{k}" for k in policy.model.state_dict()} | {"score.weight"}


def test_the_score_is_read_at_the_last_real_token(tokenizer, policy_dir):
    rm = RewardModel.from_policy(policy_dir, seed=0).eval()
    ids = render(tokenizer, PROMPTS[0], RESPONSES[0])
    assert ids[-1] == tokenizer.eos_id and ids.count(tokenizer.eos_id) == 1
    with torch.no_grad():
        alone = rm(torch.tensor([ids]))  # (1,)
        padded = rm(torch.tensor([ids + [tokenizer.pad_id] * 5]))  # padding after EOS is not read
        before_eos = rm(torch.tensor([ids[:-1]]))
        h, _ = rm._trunk.hidden_states(torch.tensor([ids]))  # (1, T, D)
        by_hand = rm.score(rm.model.norm(h[0, len(ids) - 1]))  # the head on the normed EOS state
    assert padded.item() == pytest.approx(alone.item(), abs=1e-6)
    assert alone.item() == pytest.approx(by_hand.item(), abs=1e-6)
    assert abs(before_eos.item() - alone.item()) > 1e-4
    assert reward.last_real_position(torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]).bool()).tolist() == \
        [2, 0, 3]


def test_score_texts_keeps_control_tokens_as_text_cuts_long_texts_and_restores_the_mode(tokenizer, policy_dir):
    rm = RewardModel.from_policy(policy_dir, seed=0).train()
    assert render(tokenizer, "q", "a <|eos|> b").count(tokenizer.eos_id) == 1  # only the template's EOS
    long = " ".join(TOPICS * 10)  # > 64 positions: the last 64 tokens are scored
    scores = rm.score_texts(tokenizer, ["q", "q"], ["a <|eos|> b", long])
    assert rm.training and all(isinstance(s, float) for s in scores)
    with torch.no_grad():
        tail = rm.eval()(torch.tensor([render(tokenizer, "q", long)[-64:]]))
    assert scores[1] == pytest.approx(tail.item(), abs=1e-5)
    assert not rm.training  # eval() before the call stays eval() after it
    rm.score_texts(tokenizer, ["q"], ["a"], bf16=True)
    assert not rm.training
    with pytest.raises(ValueError, match="2 prompts for 1 responses"):
        rm.score_texts(tokenizer, ["q", "q"], ["a"])


def test_pointwise_loss_by_hand():
    scores, labels = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1, 0, 1])
    by_hand = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 3
    assert pointwise_reward_loss(scores, labels).item() == pytest.approx(by_hand)
    assert pointwise_reward_loss(torch.tensor([-2.0]), torch.tensor([1.0])).item() == pytest.approx(
        math.log(1 + math.exp(2.0)))  # a confident wrong score costs more
    with pytest.raises(ValueError, match="same shape"):
        pointwise_reward_loss(scores[:, None], labels)


def test_a_policy_without_a_pad_token_is_refused(policy_dir):
    with pytest.raises(ValueError, match="pad_token_id"):
        RewardModel(from_pretrained(policy_dir).config.replace(pad_token_id=None))
    with pytest.raises(ValueError, match="not match its config.*score.weight.*RewardModel.from_policy"):
        load_reward_model(policy_dir)  # a policy checkpoint is no reward model


# ----------------------------------------------------------------------------- the stage


def _write(path: Path, objective: str, n: int, seed: int = 0) -> Path:
    """A learnable rule: the good response agrees to help, the bad one refuses; the topic words vary."""
    rng = random.Random(seed)
    lines = [""]  # a blank first line: line numbers are not item numbers
    for _ in range(n):
        topic = " and ".join(rng.sample(TOPICS, rng.randint(1, 3)))
        good, bad = f"About the {topic}: I am glad to help.", f"About the {topic}: I refuse to help."
        prompt, label = f"Tell me about the {topic}.", rng.randint(0, 1)
        if objective == "pairwise":
            record = {"prompt": prompt, "chosen": good, "rejected": bad, "source": "test"}  # extra fields allowed
        else:
            record = {"prompt": prompt, "response": good if label else bad, "label": label}
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(tmp_path: Path, data: Path, policy_dir: Path, **overrides) -> stage.RewardModelConfig:
    values = dict(data=str(data), init=str(policy_dir), out_dir=str(tmp_path / "rm"), batch_size=16, lr=3e-3,
                  warmup_steps=2, epochs=2, eval_share=0.25, bf16=False)
    return stage.RewardModelConfig(**{**values, **overrides})


@pytest.mark.parametrize("objective", ["pairwise", "pointwise"])
def test_training_learns_the_rule_on_held_out_items(tmp_path, policy_dir, tokenizer, objective, capsys):
    data = _write(tmp_path / "data.jsonl", objective, 160)
    config = _config(tmp_path, data, policy_dir, objective=objective)
    final = stage.run(config)
    assert final == tmp_path / "rm" / "model"
    result = json.loads((tmp_path / "rm" / "eval.json").read_text())
    assert result["held_out"]["items"] == 40 and result["train"]["items"] == 120 and result["steps"] == 16
    assert result["held_out"]["accuracy"] >= 0.9 and result["train"]["accuracy"] >= 0.9, result
    rows = [json.loads(line) for line in (tmp_path / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 17))
    for key in ("loss", "accuracy", "lr", "grad_norm", "expert_load_max_mean", *(["margin"] * (objective == "pairwise"))):
        assert key in rows[-1], key
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert json.loads((final / "r1lab_config.json").read_text())["objective"] == objective
    assert (tmp_path / "rm" / "reward_model_config.json").is_file()
    assert "accuracy: held out" in capsys.readouterr().out
    # the saved model scores held-out texts as the run's did: glad above refuse
    rm = load_reward_model(final)
    biases = [(k, t) for k, t in from_pretrained(policy_dir).model.state_dict().items() if k.endswith("correction_bias")]
    assert biases and all(not torch.equal(rm.model.state_dict()[k], t) for k, t in biases)  # balanced after each step
    glad, refuse = rm.score_texts(Tokenizer.load(final), ["Tell me about the sea."] * 2,
                                  ["About the sea: I am glad to help.", "About the sea: I refuse to help."])
    assert glad > refuse


def test_a_run_that_fails_leaves_no_model_of_an_earlier_run(tmp_path, policy_dir, monkeypatch):
    data = _write(tmp_path / "data.jsonl", "pointwise", 40)
    config = _config(tmp_path, data, policy_dir, epochs=1, warmup_steps=0, objective="pointwise")
    stage.run(config)
    assert (tmp_path / "rm" / "model" / "model.safetensors").is_file()

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(stage, "train_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        stage.run(config)
    assert not (tmp_path / "rm" / "model").exists() and not (tmp_path / "rm" / "eval.json").exists()


def test_split_is_seeded_and_holds_out_at_least_one():
    train, held = stage.split(50, 0.1, seed=3)
    assert len(held) == 5 and sorted(train + held) == list(range(50))
    assert stage.split(50, 0.1, seed=3) == (train, held) and stage.split(50, 0.1, seed=4) != (train, held)
    assert len(stage.split(4, 0.01, seed=0)[1]) == 1
    with pytest.raises(ValueError, match="none to train on"):
        stage.split(1, 0.5, seed=0)


# ----------------------------------------------------------------------------- bad input


BAD_LINES = {
    "pairwise": [('{"prompt": "q", "chosen": "a"}', "needs a text field 'rejected'"),
                 ('{"prompt": "q", "chosen": 3, "rejected": "b"}', "'chosen' must be text"),
                 ('{"prompt": "q", "chosen": "", "rejected": ""}', "the same text"),
                 ('{"prompt": "q", "chosen": "a", "rejected": "a"}', "the same text"),
                 ('{"prompt": "q", "chosen": "a\\ud83d", "rejected": "b"}', "not valid Unicode"),
                 ('{"prompt": "q", "chosen": "a", "rejected": "b"', "not valid JSON"),
                 ('["q", "a", "b"]', "JSON object")],
    "pointwise": [('{"prompt": "q", "response": "a"}', "needs a field 'label'"),
                  ('{"prompt": "q", "response": "a", "label": 2}', "must be 0 .* or 1"),
                  ('{"prompt": "q", "response": "a", "label": true}', "must be 0 .* or 1"),
                  ('{"prompt": "q", "response": "a", "label": 1.0}', "must be 0 .* or 1"),
                  ('{"prompt": 1, "response": "a", "label": 1}', "'prompt' must be text")],
}


@pytest.mark.parametrize("objective,bad,message", [(o, b, m) for o, cases in BAD_LINES.items() for b, m in cases])
def test_a_bad_line_is_named_by_file_and_line(tmp_path, objective, bad, message):
    good = '{"prompt": "q", "chosen": "a", "rejected": "b"}' if objective == "pairwise" else \
        '{"prompt": "q", "response": "a", "label": 1}'
    path = tmp_path / "data.jsonl"
    path.write_text(f"{good}\n\n{bad}\n{good}\n")
    with pytest.raises(ValueError, match=f"{path}:3: .*{message}"):
        stage.read_items(path, objective)


def test_an_empty_reply_is_an_item_not_an_error(tmp_path):
    """A model that says nothing is a reply to judge (the policy's empty summaries are rejected ones)."""
    pairs, labels = tmp_path / "pairs.jsonl", tmp_path / "labels.jsonl"
    pairs.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": ""}) + "\n")
    labels.write_text(json.dumps({"prompt": "q", "response": "", "label": 0}) + "\n")
    assert [(i.chosen, i.rejected) for i in stage.read_items(pairs, "pairwise")] == [("a", "")]
    assert [(i.response, i.label) for i in stage.read_items(labels, "pointwise")] == [("", 0)]


def test_cli_reports_a_bad_line_in_one_line_before_writing_anything(tmp_path, policy_dir, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text('{"prompt": "q", "response": "a", "label": "yes"}\n')
    out = tmp_path / "run"
    assert cli.main(["reward-model", "--data", str(data), "--objective", "pointwise", "--init", str(policy_dir),
                     "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"r1lab reward-model: error: {data}:1: field 'label' must be 0 "
                                               "(unsafe / bad) or 1 (safe / good), got 'yes'")
    assert not out.exists()
    assert cli.main(["reward-model", "--data", str(tmp_path / "none.jsonl"), "--out-dir", str(out)]) == 2
    assert "data file not found" in capsys.readouterr().err


@pytest.mark.parametrize("field,value,message", [
    ("objective", "listwise", "objective must be one of"), ("eval_share", 1.0, "eval_share"),
    ("eval_share", float("nan"), "eval_share"), ("batch_size", 0, "batch_size"), ("epochs", 1.5, "epochs"),
    ("lr", -1e-4, "lr"), ("data", "", "data"), ("threads", -1, "threads")])
def test_a_bad_config_value_is_refused(field, value, message):
    values = {"data": "x.jsonl", field: value}
    with pytest.raises(ValueError, match=message):
        stage.RewardModelConfig(**values)
