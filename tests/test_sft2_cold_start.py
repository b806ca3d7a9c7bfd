"""Cold start samples an R1-Zero policy in R1 Table 1's template (R1 §2.3.1): a checkpoint trained
on the chat template is refused before anything is sampled or written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import r1lab
from r1lab.stages import cold_start
from r1lab.stages.cold_start import ColdStartConfig

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"


@pytest.mark.parametrize("saved", [{"data": "cs.jsonl", "packing": True}, {"template": "chat", "init": "x"}],
                         ids=["sft", "rl-after-cold-start"])
def test_a_chat_trained_zero_checkpoint_is_refused_before_sampling(tmp_path, monkeypatch, saved):
    checkpoint = Path(shutil.copytree(BASE, tmp_path / "policy"))
    (checkpoint / "r1lab_config.json").write_text(json.dumps(saved))
    monkeypatch.setattr(cold_start, "zero_examples", lambda *a, **k: pytest.fail("sampled a chat checkpoint"))
    out = tmp_path / "cs" / "data.jsonl"
    config = ColdStartConfig(zero_checkpoint=str(checkpoint), out=str(out), n_prompts=2, samples_per_prompt=1,
                             max_new_tokens=4, n_long_cot=2, threads=1)
    with pytest.raises(ValueError, match="trained on the chat template.*R1-Zero run's policy"):
        cold_start.run(config)
    assert not out.parent.exists()


def test_an_r1_zero_checkpoint_is_still_sampled(tmp_path, monkeypatch):
    checkpoint = Path(shutil.copytree(BASE, tmp_path / "policy"))
    (checkpoint / "r1lab_config.json").write_text(json.dumps({"template": "r1_zero", "init": "x"}))
    calls = []

    def zero_examples(engine, tokenizer, problems, config, dedupe):
        calls.append(len(problems))
        return [], cold_start.Funnel.of(cold_start.R1_ZERO_SOURCE, cold_start.ZERO_FILTERS)

    monkeypatch.setattr(cold_start, "zero_examples", zero_examples)
    config = ColdStartConfig(zero_checkpoint=str(checkpoint), out=str(tmp_path / "data.jsonl"), n_prompts=2,
                             n_long_cot=2, threads=1)
    cold_start.run(config)
    assert calls == [2]
