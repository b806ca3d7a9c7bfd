"""Sampling a checkpoint on a benchmark (r1lab.stages.sample_eval) where prompts outgrow the model."""

from __future__ import annotations

import json
from pathlib import Path

import r1lab
from r1lab.stages import sample_eval

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


def test_a_system_text_is_refused_by_the_r1_zero_template_not_dropped():
    import pytest

    from r1lab.prompts import CHAT, R1_ZERO, prompt_ids
    from r1lab.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(BASE)
    with pytest.raises(ValueError, match="r1_zero template takes no system text"):
        prompt_ids(tokenizer, "Compute 2+3", R1_ZERO, system="Be brief.")
    assert tokenizer.decode(prompt_ids(tokenizer, "Compute 2+3", CHAT, system="Be brief.")) == (
        "<|bos|>Be brief.<|user|>Compute 2+3<|assistant|>")
