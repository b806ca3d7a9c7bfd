"""Sampling a checkpoint on a benchmark file: the prompt template is the checkpoint's, as for the world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import r1lab
from r1lab import cli
from r1lab.engine import Completion
from r1lab.stages import sample_eval
from r1lab.tokenizer import Tokenizer

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"  # no template saved: R1-Zero's
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
