"""Rejection sampling's run when the filters keep nothing (review helper rspipe)."""

from __future__ import annotations

from pathlib import Path

import pytest

import r1lab
from r1lab.data import read_sft_jsonl
from r1lab.engine import Completion
from r1lab.stages import rejection_sampling as rs
from r1lab.tokenizer import Tokenizer

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"


class WrongEngine:
    """Every sample is a finished but unreadable, wrong answer."""

    def generate(self, prompts, params):
        return [[Completion(prompt_index=i, token_ids=[], logprobs=[], finish_reason="stop", text="nope<|eos|>")]
                * params.n for i, _ in enumerate(prompts)]


@pytest.fixture
def no_sample_kept(monkeypatch):
    tokenizer = Tokenizer.load(BASE)
    monkeypatch.setattr(rs, "load_engine", lambda *args, **kwargs: (WrongEngine(), tokenizer))


def test_no_sample_and_no_chat_is_a_clear_error_not_an_empty_dataset(tmp_path, no_sample_kept):
    """It wrote an empty data.jsonl (no word said), and the SFT that followed failed with "no examples"."""
    config = rs.RejectionSamplingConfig(checkpoint="fake/rl", out_dir=str(tmp_path), n_prompts=2,
                                        samples_per_prompt=2, n_chat=0)
    with pytest.raises(ValueError, match=r"kept no sample and --n-chat is 0.*stats\.json"):
        rs.run(config)
    assert not (tmp_path / "data.jsonl").exists()  # nothing a rerun of the pipeline would take for a dataset
    assert (tmp_path / "stats.json").exists()  # the funnel says which filter dropped them


def test_a_chat_only_set_is_written_with_a_warning(tmp_path, no_sample_kept, capsys):
    config = rs.RejectionSamplingConfig(checkpoint="fake/rl", out_dir=str(tmp_path), n_prompts=2,
                                        samples_per_prompt=2, n_chat=3)
    data = rs.run(config)
    assert {e.meta["source"] for e in read_sft_jsonl(data)} == {rs.CHAT_SOURCE}
    assert "warning: no reasoning sample passed the filters" in capsys.readouterr().out
