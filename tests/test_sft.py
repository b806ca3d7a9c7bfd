"""SFT stage: loss on response tokens only, packing isolates examples, malformed data names its
line, training teaches a response, and a killed run resumes bit-identically."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch

from r1lab import cli
from r1lab.data import SFTExample, read_sft_jsonl, write_sft_jsonl
from r1lab.model import from_pretrained
from r1lab.stages import sft
from r1lab.tokenizer import Tokenizer

BASE = Path(sft.__file__).resolve().parents[1] / "assets" / "base-tiny"  # the shipped pretrained tiny model
ANSWER = "<think>I know this one.</think>The answer is yes."


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(BASE)


def write_jsonl(path: Path, n: int = 30, seed: int = 0) -> Path:
    """`n` arithmetic questions, all answered with the same R1-format response."""
    rng = random.Random(seed)
    lines = [json.dumps({"prompt": f"What is {rng.randint(1, 50)} + {rng.randint(1, 50)}?", "response": ANSWER})
             for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path: Path, data: Path, **overrides) -> sft.SFTConfig:
    values = dict(data=str(data), init=str(BASE), out_dir=str(tmp_path / "sft"), seq_len=128, batch_size=4,
                  lr=3e-3, warmup_steps=2, bf16=False)
    return sft.SFTConfig(**{**values, **overrides})


def test_labels_are_exactly_the_response_and_eos(tokenizer):
    example = SFTExample(system="Be brief.", prompt="What is 2 + 3?", response="<think>2 + 3 = 5</think>It is 5.")
    prompt = tokenizer.encode("<|bos|>Be brief.<|user|>What is 2 + 3?<|assistant|>")  # the template, by hand
    response = tokenizer.encode("<think>2 + 3 = 5</think>It is 5.") + [tokenizer.eos_id]
    assert response[0] == tokenizer.token_id("<think>")
    sample = sft.tokenize(tokenizer, example, seq_len=256, where="x")
    assert (sample.ids, sample.n_prompt, sample.truncated) == (prompt + response, len(prompt), False)
    # a seq_len of exactly the example's length cuts nothing; one token less cuts the EOS
    exact = sft.tokenize(tokenizer, example, seq_len=len(prompt + response), where="x")
    assert (exact.ids, exact.truncated) == (prompt + response, False)
    short = sft.tokenize(tokenizer, example, seq_len=len(prompt + response) - 1, where="x")
    assert (short.ids, short.truncated) == (prompt + response[:-1], True)
    batch = sft.collate([sample], [[0]], tokenizer.pad_id)
    assert batch.input_ids[0].tolist() == prompt + response
    # position i predicts token i + 1: the last prompt position predicts <think>, the EOS predicts nothing
    assert batch.labels[0].tolist() == [-100] * (len(prompt) - 1) + response + [-100]


def test_long_example_keeps_prompt_and_start_of_response(tokenizer):
    example = SFTExample(prompt="What is 2 + 3?", response="<think>" + "2 + 3 = 5. " * 40 + "</think>5")
    prompt = tokenizer.encode("<|bos|><|user|>What is 2 + 3?<|assistant|>")
    sample = sft.tokenize(tokenizer, example, seq_len=len(prompt) + 5, where="x")
    response = tokenizer.encode(example.response)
    assert (sample.ids, sample.n_prompt, sample.truncated) == (prompt + response[:5], len(prompt), True)
    assert sft.shifted_labels(sample.ids, sample.n_prompt) == [-100] * (len(prompt) - 1) + response[:5] + [-100]
    with pytest.raises(ValueError, match=r"data\.jsonl: example 7: the prompt alone is \d+ tokens"):
        sft.tokenize(tokenizer, example, seq_len=len(prompt), where="data.jsonl: example 7")


def test_packing_isolates_examples_and_matches_separate_losses(tokenizer):
    examples = [SFTExample(prompt="What is 2 + 3?", response="<think>2 + 3 = 5</think>It is 5."),
                SFTExample(prompt="Hi", response="Hello!", system="Be kind."),
                SFTExample(prompt="What is 12 + 30?", response="<think>12 + 30 = 42</think>It is 42, so 42.")]
    samples = [sft.tokenize(tokenizer, e, 512, "x") for e in examples]
    la, lb, lc = (len(s.ids) for s in samples)
    assert lc <= la + lb
    rows = sft.pack_rows([la, lb, lc], order=[0, 1, 2], seq_len=la + lb + 1)
    assert rows == [[0, 1], [2]]  # the third does not fit in what is left of row 0 and is not split
    batch = sft.collate(samples, rows, tokenizer.pad_id)
    pad = la + lb - lc
    assert batch.input_ids.tolist() == [samples[0].ids + samples[1].ids, samples[2].ids + [tokenizer.pad_id] * pad]
    assert batch.document_ids.tolist() == [[0] * la + [1] * lb, [0] * lc + [1] * pad]
    assert batch.position_ids.tolist() == [list(range(la)) + list(range(lb)), list(range(lc)) + list(range(pad))]
    assert batch.labels[1, lc - 1:].tolist() == [-100] * (pad + 1)
    assert batch.tokens == la + lb + lc

    model = from_pretrained(BASE).eval()
    with torch.no_grad():
        packed = model.loss(batch.input_ids, batch.labels, attention_mask=batch.attention_mask(),
                            position_ids=batch.position_ids)
        alone = [model.loss(b.input_ids, b.labels) for b in (sft.collate(samples, [[i]], 0) for i in range(3))]
        leaky = model.loss(batch.input_ids, batch.labels)  # plain causal mask: b sees a
    n = [len(s.ids) - s.n_prompt for s in samples]  # response tokens (+ EOS) per example
    expected_ce = sum(out.ce * k for out, k in zip(alone, n)) / sum(n)  # token mean over the batch
    expected_mtp = sum(out.mtp * k for out, k in zip(alone, n)) / sum(n)
    assert torch.allclose(packed.ce, expected_ce, atol=1e-5) and torch.allclose(packed.mtp, expected_mtp, atol=1e-5)
    assert abs(leaky.ce - expected_ce) > 1e-3


def test_padding_counts_toward_no_expert_load(tokenizer):
    """The balancing bias follows the experts' load (V3 §2.1.2): SFT's packed rows end in padding,
    which a 4-D document mask does not mark, so the batch says which tokens are real. Every MoE
    layer (the MTP block's too) counts K experts per real token and none per pad."""
    examples = [SFTExample(prompt="What is 2 + 3?", response="<think>2 + 3 = 5, so it is five.</think>It is 5."),
                SFTExample(prompt="Hi", response="Hello!")]
    samples = [sft.tokenize(tokenizer, e, 512, "x") for e in examples]
    batch = sft.collate(samples, [[0], [1]], tokenizer.pad_id)  # row 1 is mostly padding
    assert batch.token_valid.sum() == batch.tokens < batch.token_valid.numel()
    model = from_pretrained(BASE).train()
    model.loss(batch.input_ids, batch.labels, attention_mask=batch.attention_mask(), position_ids=batch.position_ids,
               token_valid=batch.token_valid)
    K = model.config.num_experts_per_tok
    loads = [float(load.sum()) for load in model.expert_load()]
    mtp_rows = batch.token_valid[:, :-1] & batch.token_valid[:, 1:]  # depth 1: a row and its next token real
    assert loads[:-1] == [K * batch.tokens] * (len(loads) - 1) and loads[-1] == K * int(mtp_rows.sum())
    counted = []  # and a training step passes the batch's token_valid on
    model.update_router_bias = lambda: counted.append([float(load.sum()) for load in model.expert_load()])
    for m in model.moe_layers():
        m.gate.expert_load.zero_()
    sft.train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), batch,
                   sft.SFTConfig(data="x", bf16=False))
    assert counted == [loads]


def test_plan_shuffles_each_epoch_and_is_a_pure_function_of_the_seed():
    lengths = [random.Random(i).randint(5, 40) for i in range(50)]
    cfg = sft.SFTConfig(data="x", seq_len=64, batch_size=3, epochs=2)
    steps = sft.plan(lengths, cfg)
    assert steps == sft.plan(lengths, cfg) and steps != sft.plan(lengths, dataclasses.replace(cfg, seed=1))
    epochs = [[i for progress, rows in steps if e < progress <= e + 1 for row in rows for i in row] for e in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(50)) and epochs[0] != epochs[1]
    assert all(sum(lengths[i] for i in row) <= 64 for _, rows in steps for row in rows)
    assert all(len(rows) <= 3 for _, rows in steps) and steps[-1][0] == 2.0
    assert len(sft.plan(lengths, dataclasses.replace(cfg, max_steps=len(steps) + 5))) == len(steps) + 5
    unpacked = sft.plan(lengths, dataclasses.replace(cfg, packing=False, epochs=1))
    assert len(unpacked) == 17 and all(len(row) == 1 for _, rows in unpacked for row in rows)


BAD_LINES = {"bad json": '{"prompt": "q", "response": ', "no response": '{"prompt": "q"}', "not an object": "[1, 2]",
             # parse, then fail: in the tokenizer (a traceback) or in json with no file named
             "lone surrogate": '{"prompt": "cut emoji \\ud83d", "response": "b"}',
             "control token": '{"prompt": "q", "response": "<think>x</think>Say <|eos|> twice."}',
             "deep nesting": '{"prompt": "q", "response": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
             "huge integer": '{"prompt": "q", "response": "b", "x": ' + "9" * 5000 + "}"}


@pytest.mark.parametrize("bad", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_malformed_line_names_file_and_line(tmp_path, capsys, bad):
    data = tmp_path / "file.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n\n' + bad + "\n")  # blank line 2 still counts
    with pytest.raises(ValueError, match=r"file\.jsonl:3"):
        sft.run(config(tmp_path, data))
    assert cli.main(["sft", "--data", str(data), "--init", str(BASE), "--out-dir", str(tmp_path / "sft")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file.jsonl:3" in err
    assert not (tmp_path / "sft").exists()  # bad data leaves no run directory


def test_invalid_utf8_names_file_and_line(tmp_path, capsys):
    data = tmp_path / "file.jsonl"
    data.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "caf\xff", "response": "b"}\n')
    with pytest.raises(ValueError, match=r"file\.jsonl:2: not valid UTF-8 \(byte 0xff"):
        read_sft_jsonl(data)
    assert cli.main(["sft", "--data", str(data), "--init", str(BASE), "--out-dir", str(tmp_path / "sft")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file.jsonl:2" in err


def test_a_byte_order_mark_is_accepted(tmp_path):
    data = tmp_path / "file.jsonl"
    data.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "response": "b"}\n')  # as Windows editors save UTF-8
    assert read_sft_jsonl(data) == [SFTExample(prompt="a", response="b")]


def test_a_failed_write_leaves_no_tmp_file(tmp_path):
    def examples():
        yield SFTExample(prompt="a", response="b")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_sft_jsonl(tmp_path / "d.jsonl", examples())
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_data_file_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sft", "--data", "missing.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.jsonl" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_run_directory_given_as_data_says_it_is_a_directory(tmp_path, capsys):
    """`--data runs/rejection_sampling` (the builder's run directory) said "data file not found"
    although the path exists."""
    (tmp_path / "rs").mkdir()
    assert cli.main(["sft", "--data", str(tmp_path / "rs"), "--out-dir", str(tmp_path / "sft")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'rs'} is a directory" in err and "not found" not in err
    assert str(tmp_path / "rs" / "data.jsonl") in err and not (tmp_path / "sft").exists()

def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="data"):
        sft.SFTConfig()
    with pytest.raises(ValueError, match="batch_size"):
        sft.SFTConfig(data="x", batch_size=0)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        sft.SFTConfig(data="x", min_lr_ratio=2.0)
    with pytest.raises(ValueError, match="SFTConfig.threads"):  # was a traceback from torch at run time
        sft.SFTConfig(data="x", threads=-2)


def greedy(model, tokenizer: Tokenizer, question: str, max_new: int = 24) -> str:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(max_new):
            x = torch.cat([x, model(x)[:, -1:].argmax(-1)], dim=1)
            if x[0, -1] == tokenizer.eos_id:
                break
    return tokenizer.decode(x[0, len(ids):].tolist())


def test_training_teaches_the_response(tmp_path, tokenizer):
    data = write_jsonl(tmp_path / "train.jsonl")  # 30 examples -> 8 packed rows -> 2 steps per epoch
    base = from_pretrained(BASE).eval()
    assert greedy(base, tokenizer, "What is 7 + 9?") != ANSWER + "<|eos|>"
    final = sft.run(config(tmp_path, data, epochs=8))
    assert final == tmp_path / "sft" / "model"
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 17)) and [r["epoch"] for r in rows[:3]] == [0.5, 1.0, 1.5]
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "response_tokens", "epoch", "mtp_loss"):
        assert key in rows[-1], key
    assert sum(r["response_tokens"] for r in rows[:2]) == 30 * (len(tokenizer.encode(ANSWER)) + 1)  # one epoch
    assert rows[-1]["loss"] < 0.05 * rows[0]["loss"]
    assert rows[-1]["lr"] < 3e-3 * 0.2  # cosine towards 3e-4
    tuned = from_pretrained(final).eval()
    assert greedy(tuned, Tokenizer.load(final), "What is 7 + 9?") == ANSWER + "<|eos|>"  # a prompt never trained on
    assert json.loads((final / "r1lab_config.json").read_text())["epochs"] == 8


class Killed(Exception):
    pass


def test_killed_run_resumes_bit_identically(tmp_path, monkeypatch, capsys):
    data = write_jsonl(tmp_path / "train.jsonl")
    straight = sft.run(config(tmp_path / "a", data, max_steps=5, save_every=2))

    def kill(*args, **kwargs):
        raise Killed  # the process dies right after writing its first checkpoint (step 2)

    monkeypatch.setattr(sft.training, "prune_checkpoints", kill)
    with pytest.raises(Killed):
        sft.run(config(tmp_path / "b", data, max_steps=5, save_every=2))
    monkeypatch.undo()
    log = tmp_path / "b" / "sft" / "metrics.jsonl"
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]
    capsys.readouterr()
    resumed = sft.run(config(tmp_path / "b", data, max_steps=5, save_every=2, resume=True))
    assert "at step 2" in capsys.readouterr().out
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5]
    a, b = from_pretrained(straight).state_dict(), from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = from_pretrained(BASE).state_dict()
    assert not torch.equal(a["lm_head.weight"], start["lm_head.weight"])  # it did train


def test_fresh_run_removes_an_earlier_runs_checkpoints(tmp_path, capsys):
    """Without --resume the run directory is overwritten: an earlier run's checkpoints would be
    pruned against the new ones by name (step_000099 outlives step_000001) and resumed by --resume."""
    data = write_jsonl(tmp_path / "train.jsonl", n=8)
    stale = tmp_path / "sft" / "checkpoints" / "step_000099"
    stale.mkdir(parents=True)
    (stale / "trainer_state.pt").write_text("an earlier run's")
    sft.run(config(tmp_path, data, max_steps=3, save_every=1))
    assert f"removing {stale.parent}" in capsys.readouterr().out
    assert sorted(p.name for p in stale.parent.iterdir()) == ["step_000001", "step_000002"]


def test_resume_refuses_data_changed_in_place_and_a_run_past_its_end(tmp_path, capsys):
    """The data path is the same but its contents are not: the saved step would index another
    plan. Resuming step 2 with one step in all would do nothing and save it as the 1-step model."""
    data = write_jsonl(tmp_path / "train.jsonl")
    sft.run(config(tmp_path, data, max_steps=3, save_every=1))
    before = sorted(p.name for p in (tmp_path / "sft" / "checkpoints").iterdir())
    original = data.read_text()
    write_jsonl(data, n=5)
    with pytest.raises(ValueError, match="train.jsonl has changed since it was saved"):
        sft.run(config(tmp_path, data, max_steps=3, save_every=1, resume=True))
    data.write_text(original)
    with pytest.raises(ValueError, match="step_000002: past this run's 1 steps"):
        sft.run(config(tmp_path, data, max_steps=1, save_every=1, resume=True))
    assert sorted(p.name for p in (tmp_path / "sft" / "checkpoints").iterdir()) == before
    capsys.readouterr()
    sft.run(config(tmp_path, data, max_steps=3, save_every=1, resume=True))
    assert "resumed from" in capsys.readouterr().out


def test_resume_with_no_checkpoint_says_it_starts_afresh(tmp_path, capsys):
    data = write_jsonl(tmp_path / "train.jsonl", n=8)
    (tmp_path / "sft" / "checkpoints" / "step_000002").mkdir(parents=True)  # cut before its trainer state
    sft.run(config(tmp_path, data, max_steps=1, resume=True))
    out = capsys.readouterr().out
    assert "--resume: no complete checkpoint in" in out and "no --resume" not in out


def test_resuming_with_another_plan_is_refused(tmp_path, capsys):
    """A resumed run indexes its plan by the saved step: with another batch size it finished at once
    and saved a half-trained model. The plan's settings must be the saved run's."""
    data = write_jsonl(tmp_path / "train.jsonl")
    sft.run(config(tmp_path, data, max_steps=2, save_every=1))
    before = sorted(p.name for p in (tmp_path / "sft" / "checkpoints").iterdir())
    with pytest.raises(ValueError, match="batch_size 4 -> 8"):
        sft.run(config(tmp_path, data, max_steps=2, save_every=1, batch_size=8, resume=True))
    assert sorted(p.name for p in (tmp_path / "sft" / "checkpoints").iterdir()) == before
    capsys.readouterr()
    sft.run(config(tmp_path, data, max_steps=2, save_every=1, resume=True, keep_checkpoints=3))  # not part of the plan
    assert "resumed from" in capsys.readouterr().out


def test_an_example_past_the_models_positions_is_refused_before_the_run_directory(tmp_path, tokenizer):
    """--seq-len above max_position_embeddings trained a long example at positions the model and
    the engine never use, without a word; packing short examples into long rows stays allowed."""
    positions = from_pretrained(BASE).config.max_position_embeddings
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"prompt": "What is 12 + 30?", "response": "12 + 30 = 42. " * positions}) + "\n")
    with pytest.raises(ValueError, match=rf"long\.jsonl:1: the example is {2 * positions} tokens .* "
                                         rf"max_position_embeddings \({positions}\); give --seq-len {positions}"):
        sft.run(config(tmp_path, data, seq_len=2 * positions))
    assert not (tmp_path / "sft").exists()
    short = sft.tokenize(tokenizer, SFTExample(prompt="Hi", response="Hello!"), 2 * positions, "x")
    sft.check_positions([short] * 3, positions, config(tmp_path, data, seq_len=2 * positions))


def test_an_example_too_long_for_seq_len_names_its_line_not_its_number(tmp_path, capsys):
    """The reader's errors name file:line; the later ones said "example 2" for the example on line
    3 (a blank line is skipped, not counted as an example), pointing the user at the wrong line."""
    data = tmp_path / "file.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n\n' + json.dumps({"prompt": "word " * 200, "response": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"file\.jsonl:3: the prompt alone is \d+ tokens; seq_len 64"):
        sft.run(config(tmp_path, data, seq_len=64))
    assert not (tmp_path / "sft").exists()


def test_pretraining_windows_past_the_models_positions_are_refused():
    """The tiny preset has 512 positions: --seq-len 1024 trained positions 512-1023 without a word,
    and the checkpoint still said 512 (the engine, GRPO and SFT refuse them)."""
    from r1lab.stages import pretrain

    assert pretrain.PretrainConfig(model="tiny", seq_len=512).seq_len == 512
    with pytest.raises(ValueError, match=r"seq_len 513 exceeds the 'tiny' model's max_position_embeddings \(512\)"):
        pretrain.PretrainConfig(model="tiny", seq_len=513)


# SFT's report of what it trains: the share of real tokens is of the tokens the batches hold
# (`collate` pads a batch to its longest row, not to seq_len).
def test_real_token_share_is_of_the_padded_batches_not_of_seq_len_rows(capsys):
    samples = [sft.Sample(ids=[1] * n, n_prompt=3, truncated=False) for n in (10, 6, 8)]
    examples = [SFTExample(prompt="q", response="<think>r</think>s")] * 3
    config = sft.SFTConfig(data="x.jsonl", seq_len=100, batch_size=2, packing=False)
    assert sft.epoch_rows([10, 6, 8], config, 0) == [[0], [1], [2]]  # seed 0 keeps this order
    sft.describe(examples, samples, n_steps=4, config=config)
    # batches [10, 6] and [8] are padded to 10 and 8 tokens a row: 24 real of 2 * 10 + 8 = 28 (86%),
    # not of 3 rows * seq_len 100 (8%)
    assert "an epoch is 3 rows, 86% of their tokens real" in capsys.readouterr().out


# --epochs only sets how many of the same per-epoch batches the plan holds: a resume may change it.
def test_resume_accepts_other_epochs_when_the_plan_prefix_is_the_same(tmp_path, monkeypatch):
    lengths = [10, 6, 8, 12, 5, 9, 7, 11]
    two = sft.plan(lengths, sft.SFTConfig(data="x.jsonl", seq_len=16, batch_size=2, epochs=2))
    five = sft.plan(lengths, sft.SFTConfig(data="x.jsonl", seq_len=16, batch_size=2, epochs=5))
    assert len(two) < len(five) and five[:len(two)] == two
    data = write_jsonl(tmp_path / "train.jsonl", n=8)
    straight = sft.run(config(tmp_path / "a", data, max_steps=3, save_every=2, epochs=2))

    def kill(*args, **kwargs):
        raise Killed  # the process dies right after writing its step-2 checkpoint

    monkeypatch.setattr(sft.training, "prune_checkpoints", kill)
    with pytest.raises(Killed):
        sft.run(config(tmp_path / "b", data, max_steps=3, save_every=2, epochs=2))
    monkeypatch.undo()
    # --max-steps fixes the run's length: its batches and schedule do not depend on --epochs
    resumed = sft.run(config(tmp_path / "b", data, max_steps=3, save_every=2, epochs=5, resume=True))
    a, b = from_pretrained(straight).state_dict(), from_pretrained(resumed).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# a prompt or response of the wrong type is named as such, not reported missing while listed
@pytest.mark.parametrize("value, message", [(5, r"f\.jsonl:2: field 'prompt' must be text, got int 5$"),
                                            (None, r"f\.jsonl:2: field 'prompt' must be text, got NoneType None$")])
def test_a_prompt_of_the_wrong_type_is_named_not_reported_missing(tmp_path, value, message):
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a", "response": "b"}\n' + json.dumps({"prompt": value, "response": "b"}) + "\n")
    with pytest.raises(ValueError, match=message):
        read_sft_jsonl(data)
    data.write_text('{"response": "b"}\n')
    with pytest.raises(ValueError, match=r"f\.jsonl:1: needs a text field 'prompt'; fields are \['response'\]$"):
        read_sft_jsonl(data)


# SFT's step count comes from the data: a small set whose steps are all warmup is warned about
def test_sft_warns_when_every_step_is_warmup(capsys):
    samples = [sft.Sample(ids=[1] * 10, n_prompt=3, truncated=False)] * 3
    examples = [SFTExample(prompt="q", response="<think>r</think>s")] * 3
    sft.describe(examples, samples, n_steps=2, config=sft.SFTConfig(data="x.jsonl", warmup_steps=10))
    assert "warmup_steps 10 >= the run's 2 steps: the learning rate only rises, to 20% of --lr" in capsys.readouterr().out
    sft.describe(examples, samples, n_steps=11, config=sft.SFTConfig(data="x.jsonl", warmup_steps=10))
    assert "warning" not in capsys.readouterr().out


# a count that is not an int (epochs = 2.5 ran 3 epochs; a float seq_len failed mid-run) is refused by name
@pytest.mark.parametrize("name, value", [("epochs", 2.5), ("seq_len", 256.0), ("max_steps", 2.5), ("batch_size", True)])
def test_config_refuses_a_count_that_is_not_an_integer(name, value):
    with pytest.raises(ValueError, match=rf"SFTConfig\.{name} must be an integer, got {value!r}"):
        sft.SFTConfig(data="x", **{name: value})
    assert getattr(sft.SFTConfig(data="x", **{name: 3}), name) == 3


# an example the reader would refuse (empty response) is refused when written, naming it; nothing is written
@pytest.mark.parametrize("response", ["", " \n\t"])
def test_writing_an_empty_response_is_refused_naming_the_example(tmp_path, response):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "old", "response": "kept"}\n')
    examples = [SFTExample(prompt="a", response="b"), SFTExample(prompt="c", response=response)]
    with pytest.raises(ValueError, match=r"d\.jsonl: example 2: empty 'response'$"):
        write_sft_jsonl(data, examples)
    assert read_sft_jsonl(data) == [SFTExample(prompt="old", response="kept")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


# a lone surrogate in any other field (its text, a nested text, its name) is refused on reading, naming it
@pytest.mark.parametrize("extra", ['"note": "cut \\ud83d"', '"tags": [{"k": "\\udc00"}]', '"\\ud83d": 1'])
def test_a_lone_surrogate_in_another_field_is_refused_when_read(tmp_path, extra):
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a", "response": "b", "ok": "caf\\u00e9"}\n\n{"prompt": "a", "response": "b", '
                    + extra + "}\n")
    with pytest.raises(ValueError, match=r"f\.jsonl:3: field '.+' is not valid Unicode \(a lone surrogate\)$"):
        read_sft_jsonl(data)
    with pytest.raises(ValueError, match=r"g\.jsonl: example 1: field 'note' is not valid Unicode"):
        write_sft_jsonl(tmp_path / "g.jsonl", [SFTExample(prompt="a", response="b", meta={"note": "\ud83d"})])
    assert not (tmp_path / "g.jsonl").exists()


# a dataset written and read back is the same examples: system text, meta fields and order kept
def test_write_then_read_keeps_system_and_meta(tmp_path):
    examples = [SFTExample(prompt="Hi", response="Hello!", system="Be kind.", meta={"source": "chat", "id": 7}),
                SFTExample(prompt="2+3?", response="<think>2+3=5</think>It is 5.")]
    path = write_sft_jsonl(tmp_path / "d.jsonl", examples)
    assert read_sft_jsonl(path) == examples
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0]) == {
        "prompt": "Hi", "response": "Hello!", "system": "Be kind.", "source": "chat", "id": 7}


# a file of blank lines only holds no examples: refused, naming the file, not read as an empty dataset
def test_a_file_of_blank_lines_is_refused(tmp_path):
    data = tmp_path / "f.jsonl"
    data.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"f\.jsonl: no examples$"):
        read_sft_jsonl(data)


# a system field that is not text is named with its line, not a traceback from the tokenizer
def test_a_system_of_the_wrong_type_names_the_line(tmp_path):
    data = tmp_path / "f.jsonl"
    data.write_text('{"prompt": "a", "response": "b", "system": null}\n{"prompt": "a", "response": "b", "system": 5}\n')
    with pytest.raises(ValueError, match=r"f\.jsonl:2: field 'system' must be text or absent, got int$"):
        read_sft_jsonl(data)


# a directory given as the output file is refused before anything is written (a stage checks it before its slow part)
def test_writing_to_a_directory_is_refused_naming_it(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(ValueError, match=r"cannot write .*d\.jsonl: it is a directory, not a file$"):
        write_sft_jsonl(tmp_path / "d.jsonl", [SFTExample(prompt="a", response="b")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"] and not any((tmp_path / "d.jsonl").iterdir())


# no example at all is refused when written (the reader refuses an empty file); an earlier file stays
def test_writing_no_examples_is_refused(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "old", "response": "kept"}\n')
    with pytest.raises(ValueError, match=r"d\.jsonl: no examples to write$"):
        write_sft_jsonl(data, iter([]))
    assert read_sft_jsonl(data) == [SFTExample(prompt="old", response="kept")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


# an example that fills what is left of a row exactly still joins it (5 + 3 = 8 = seq_len)
def test_an_example_that_exactly_fills_the_row_joins_it():
    assert sft.pack_rows([5, 3, 4, 4, 1], order=[0, 1, 2, 3, 4], seq_len=8) == [[0, 1], [2, 3], [4]]
    assert sft.pack_rows([8, 1], order=[0, 1], seq_len=8) == [[0], [1]]


# a step's update is clipped to grad_clip: with SGD at lr 1 it is minus the clipped gradient, of norm 1e-3
def test_a_training_step_clips_the_gradient_to_grad_clip(tokenizer):
    samples = [sft.tokenize(tokenizer, SFTExample(prompt="What is 2 + 3?", response=ANSWER), 128, "x")]
    batch = sft.collate(samples, [[0]], tokenizer.pad_id)
    torch.manual_seed(0)
    model = from_pretrained(BASE).train()
    before = [p.detach().clone() for p in model.parameters()]
    record = sft.train_step(model, torch.optim.SGD(model.parameters(), lr=1.0), batch,
                            sft.SFTConfig(data="x", bf16=False, grad_clip=1e-3))
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]).norm()
    assert record["grad_norm"] > 0.1  # the norm before clipping is logged: far above the clip
    assert moved.item() == pytest.approx(1e-3, rel=1e-3)


# the optimizer trains at the schedule's LR, not only logs it: warmup 2 then cosine to 0.1 over 4 steps
def test_each_step_trains_at_the_scheduled_learning_rate(tmp_path, monkeypatch):
    seen = []
    step = sft.train_step
    monkeypatch.setattr(sft, "train_step", lambda model, optimizer, batch, cfg, world: seen.append(
        [g["lr"] for g in optimizer.param_groups]) or step(model, optimizer, batch, cfg))
    sft.run(config(tmp_path, write_jsonl(tmp_path / "d.jsonl", n=8), max_steps=4, lr=1e-3, min_lr_ratio=0.1))
    # by hand: (0 + 1) / 2, (1 + 1) / 2, the peak again, then 0.1 + 0.9 * (1 + cos(pi / 2)) / 2 = 0.55
    assert seen == [[pytest.approx(v * 1e-3)] * 2 for v in (0.5, 1.0, 1.0, 0.55)]
    logged = [json.loads(line)["lr"] for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([v * 1e-3 for v in (0.5, 1.0, 1.0, 0.55)])
