"""Sampling a checkpoint on a benchmark (r1lab.stages.sample_eval) where prompts outgrow the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import r1lab
from r1lab import cli
from r1lab.engine import Completion
from r1lab.stages import sample_eval
from r1lab.tokenizer import Tokenizer

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"  # 512 positions


def test_a_prompt_longer_than_the_context_is_scored_unanswered_not_a_crash(tmp_path, capsys):
    """A MATH-500 problem tokenizes to up to 1,412 tokens for the tiny model (30 of 500 do not fit
    with 128 new tokens): that made the engine raise for the whole run. Now that problem alone is
    unanswered (k samples, none with an answer) and the others are sampled as usual."""
    data = tmp_path / "b.jsonl"
    records = [{"problem": "What is $1+2$?", "answer": "3"}, {"problem": "Add these. " + "1 + " * 400 + "1", "answer": "401"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data=str(data), n_problems=2, k=2, max_new_tokens=4)
    result = sample_eval.evaluate_checkpoint(config)
    short, long = result.problems
    assert long.answers == [None, None] and long.correct == [False, False] and not long.cons_correct
    assert len(short.answers) == 2
    assert result.summary()["prompts_too_long"] == 1 and result.summary()["n_samples"] == 4
    assert "1 of 2 prompts leave no room for 4 new tokens" in capsys.readouterr().err
    # the mean length is over the samples drawn: the short problem's, as when it is evaluated alone
    # (same batch, same seed); the unsampled problem's 2 zero lengths halved it
    alone = sample_eval.evaluate_checkpoint(sample_eval.SampleEvalConfig(
        checkpoint=str(BASE), data=str(data), n_problems=1, k=2, max_new_tokens=4)).summary()
    assert result.summary()["length_mean"] == alone["length_mean"] >= 1


def test_a_system_text_is_refused_by_the_r1_zero_template_not_dropped():
    import pytest

    from r1lab.prompts import CHAT, R1_ZERO, prompt_ids
    from r1lab.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(BASE)
    with pytest.raises(ValueError, match="r1_zero template takes no system text"):
        prompt_ids(tokenizer, "Compute 2+3", R1_ZERO, system="Be brief.")
    assert tokenizer.decode(prompt_ids(tokenizer, "Compute 2+3", CHAT, system="Be brief.")) == (
        "<|bos|>Be brief.<|user|>Compute 2+3<|assistant|>")


# A --checkpoint eval records its data, and world runs report prompts_too_long as benchmark runs do.
def test_a_benchmark_run_records_its_data_path(tmp_path):
    data = tmp_path / "b.jsonl"
    data.write_text(json.dumps({"problem": "What is $1+2$?", "answer": "3"}) + "\n", encoding="utf-8")
    # 510 new tokens leave no room for the prompt in 512 positions: nothing is sampled, so this is fast
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data=str(data), n_problems=1, k=1, max_new_tokens=510)
    summary = sample_eval.evaluate_checkpoint(config).summary()
    assert (summary["data"], summary["prompts_too_long"]) == (str(data), 1)


def test_a_world_run_reports_prompts_too_long_and_its_data():
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data="world", n_problems=2, k=1, max_new_tokens=510)
    summary = sample_eval.evaluate_checkpoint(config).summary()
    assert (summary["data"], summary["prompts_too_long"], summary["pass@1"]) == ("world", 2, 0.0)


# Sampling a checkpoint on a benchmark file: the prompt template is the checkpoint's, as for the
# world.
TABLE_1_PROMPT = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
                  "The assistant first thinks about the reasoning process in the mind and then provides the user "
                  "with the answer. The reasoning process and answer are enclosed within <think> </think> and "
                  "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> "
                  "answer here </answer>. User: What is $1+2$?. Assistant:")


def _bench(tmp_path: Path) -> Path:
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"problem": "What is $1+2$?", "answer": "3"}) + "\n", encoding="utf-8")
    return path


def _checkpoint(tmp_path: Path, saved: dict) -> Path:
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "r1lab_config.json").write_text(json.dumps(saved), encoding="utf-8")
    return ck


def test_an_r1_zero_checkpoint_is_asked_on_a_benchmark_with_table_1_and_scored_from_answer_tags(tmp_path, monkeypatch):
    """Benchmark prompts were always the chat ones with "<think>\\n" forced, even for a base or R1-Zero
    model that only ever saw R1 Table 1's template (base-tiny then answered "<answer> black </answer>"
    to GSM8K); and "<think>\\n" was put in front of its completion, so its closed answer was read."""
    seen: list[list[int]] = []

    class FakeEngine:
        def __init__(self, *a, **k) -> None:
            pass

        def generate(self, prompts, params):
            seen.extend(prompts)
            return [[Completion(prompt_index=0, token_ids=[5], logprobs=[0.0], finish_reason="stop", text=t)
                     for t in (" <think> 1+2=3 </think> <answer> 3 </answer>", " <answer> 4 </answer>")]]

    monkeypatch.setattr(sample_eval, "Engine", FakeEngine)
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data=str(_bench(tmp_path)), n_problems=1, k=2)
    result = sample_eval.evaluate_checkpoint(config)
    assert Tokenizer.load(BASE).decode(seen[0]) == "<|bos|>" + TABLE_1_PROMPT
    assert result.problems[0].answers == ["3", "4"] and result.problems[0].correct == [True, False]
    assert result.summary()["template"] == "r1_zero" and result.summary()["pass@1"] == 0.5


@pytest.mark.parametrize("saved, template, expected", [
    ({"data": "sft.jsonl", "packing": True}, "auto", "chat"),  # trained on chat: the R1 README's prompt
    ({"template": "r1_zero"}, "auto", "r1_zero"),
    ({"template": "r1_zero"}, "chat", "chat"),  # --template given: honoured, not refused
    ({"data": "sft.jsonl", "packing": True}, "r1_zero", "r1_zero"),
])
def test_the_benchmark_template_is_the_world_s(tmp_path, saved, template, expected):
    ck = _checkpoint(tmp_path, saved)
    tokenizer = Tokenizer.load(BASE)
    config = sample_eval.SampleEvalConfig(checkpoint=str(ck), data=str(_bench(tmp_path)), n_problems=1, k=1,
                                          template=template)
    assert config.template == expected
    _, (prompt,), _ = sample_eval._prompts(config, tokenizer)
    if expected == "chat":
        assert tokenizer.decode(prompt) == ("<|bos|><|user|>What is $1+2$?\nPlease reason step by step, and put "
                                            "your final answer within \\boxed{}.<|assistant|><think>\n")
    else:
        assert tokenizer.decode(prompt) == "<|bos|>" + TABLE_1_PROMPT


def test_cli_template_with_a_benchmark_is_used(tmp_path, capsys):
    """'--data b.jsonl --template chat' was refused ("is for data 'world' only"); it now prompts that way."""
    data = _bench(tmp_path)
    argv = ["eval", "--data", str(data), "--checkpoint", str(BASE), "--n-problems", "1", "--samples", "1",
            "--max-new-tokens", "2", "--template", "chat", "--json"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["template"] == "chat"


# Sampling settings the engine would refuse are refused when the config is made, before the model loads.
@pytest.mark.parametrize("temperature", [1e-7, -0.1, float("nan"), float("inf")])
def test_a_temperature_the_engine_refuses_is_refused_by_the_config(temperature):
    with pytest.raises(ValueError, match="temperature"):
        sample_eval.SampleEvalConfig(checkpoint=str(BASE), temperature=temperature)
    sample_eval.SampleEvalConfig(checkpoint=str(BASE), temperature=0)  # greedy stays allowed


# The recorded settings name everything that changes the samples drawn.
def test_a_run_records_its_precision_device_and_samples_per_problem():
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data="world", n_problems=2, k=3, max_new_tokens=510,
                                          bf16=True)  # 510 new tokens: nothing sampled, fast
    summary = sample_eval.evaluate_checkpoint(config, k=2).summary()
    assert (summary["bf16"], summary["device"], summary["samples_per_problem"]) == (True, "cpu", 3)



# The settings an evaluation records include every one that changes the samples drawn.
def test_the_recorded_settings_include_the_batch_size_that_seeds_each_batch(monkeypatch):
    from r1lab.benchmarks import Problem

    problems = [Problem(id="0", prompt="q", answer="3", source="hand")]
    monkeypatch.setattr(sample_eval, "sample_completions",
                        lambda config: (problems, {0: ["\\boxed{3}"]}, {0: [4]}, None))
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data="b.jsonl", n_problems=1, k=1, batch_problems=5)
    settings = sample_eval.evaluate_checkpoint(config).settings
    assert settings["batch_problems"] == 5 and settings["seed"] == 0 and settings["samples_per_problem"] == 1


# A missing or code-benchmark --data file is refused before the model loads, not after.
@pytest.mark.parametrize("record, error, message", [
    (None, FileNotFoundError, "data file not found"),
    ({"task_id": "HumanEval/0", "prompt": "def f():", "test": "assert f()"}, ValueError, "a code task"),
])
def test_a_bad_data_file_is_refused_before_the_model_loads(tmp_path, monkeypatch, record, error, message):
    data = tmp_path / "b.jsonl"
    if record is not None:
        data.write_text(json.dumps(record) + "\n", encoding="utf-8")
    loaded: list[str] = []
    monkeypatch.setattr(sample_eval, "from_pretrained", lambda checkpoint, device="cpu": loaded.append(checkpoint))
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), data=str(data), n_problems=1, k=1)
    with pytest.raises(error, match=message):
        sample_eval.sample_completions(config)
    assert loaded == []


def test_a_missing_checkpoint_is_named_as_one(tmp_path):
    config = sample_eval.SampleEvalConfig(checkpoint=str(tmp_path / "nope"), data="world", n_problems=1, k=1)
    with pytest.raises(FileNotFoundError, match="checkpoint not found: no directory"):
        sample_eval.sample_completions(config)


# A count or seed that is not an integer (a float or bool from a config file) is refused when the config is made.
@pytest.mark.parametrize("name, value", [("k", 2.5), ("k", True), ("n_problems", 2.5), ("batch_problems", 1.5),
                                         ("max_new_tokens", 4.0), ("seed", 0.5)])
def test_a_count_or_seed_that_is_not_an_integer_is_refused_by_the_config(name, value):
    with pytest.raises(ValueError, match=rf"^SampleEvalConfig\.{name} must be an integer, got {value!r}$"):
        sample_eval.SampleEvalConfig(checkpoint=str(BASE), **{name: value})


# The k of pass@k must be a whole number of the samples drawn; refused before any sampling.
@pytest.mark.parametrize("k", [1.5, True, 0, 3])
def test_a_k_that_is_no_count_of_the_samples_drawn_is_refused_before_sampling(monkeypatch, k):
    monkeypatch.setattr(sample_eval, "sample_completions", lambda config: pytest.fail("sampled"))
    config = sample_eval.SampleEvalConfig(checkpoint=str(BASE), n_problems=1, k=2)
    with pytest.raises(ValueError, match=rf"k must be from 1 to the samples per problem \(2\), got {k!r}"):
        sample_eval.evaluate_checkpoint(config, k=k)
