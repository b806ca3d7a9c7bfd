"""SFT's report of what it trains: the share of real tokens is of the tokens the batches hold
(`collate` pads a batch to its longest row, not to seq_len)."""

from __future__ import annotations

from r1lab.data import SFTExample
from r1lab.stages import sft


def test_real_token_share_is_of_the_padded_batches_not_of_seq_len_rows(capsys):
    samples = [sft.Sample(ids=[1] * n, n_prompt=3, truncated=False) for n in (10, 6, 8)]
    examples = [SFTExample(prompt="q", response="<think>r</think>s")] * 3
    config = sft.SFTConfig(data="x.jsonl", seq_len=100, batch_size=2, packing=False)
    assert sft.epoch_rows([10, 6, 8], config, 0) == [[0], [1], [2]]  # seed 0 keeps this order
    sft.describe(examples, samples, n_steps=4, config=config)
    # batches [10, 6] and [8] are padded to 10 and 8 tokens a row: 24 real of 2 * 10 + 8 = 28 (86%),
    # not of 3 rows * seq_len 100 (8%)
    assert "an epoch is 3 rows, 86% of their tokens real" in capsys.readouterr().out
