"""Pretraining windows: every token after the first of the packed stream can be a label."""

import pytest
import torch

from r1lab.stages.pretrain import PretrainConfig, batch_at


def _config(seq_len: int, batch_size: int = 8) -> PretrainConfig:
    return PretrainConfig(seq_len=seq_len, batch_size=batch_size, seed=3)


def test_a_stream_of_one_window_is_that_window():
    # seq_len + 1 tokens are exactly one (input, label) window: inputs 0..4, labels 1..5
    stream = torch.arange(6)
    x, y = batch_at(stream, 0, _config(seq_len=5, batch_size=2))
    assert x.tolist() == [[0, 1, 2, 3, 4]] * 2
    assert y.tolist() == [[1, 2, 3, 4, 5]] * 2


def test_the_last_token_of_the_stream_is_a_label():
    # 7 tokens, windows of 4 + 1: starts 0, 1, 2; the last token (the final <eos>) only in start 2's window
    stream = torch.arange(7)
    labels = set()
    for step in range(20):
        x, y = batch_at(stream, step, _config(seq_len=4))
        assert torch.equal(y[:, :-1], x[:, 1:])  # labels are the inputs shifted by one
        labels |= set(y.flatten().tolist())
    assert labels == {1, 2, 3, 4, 5, 6}


def test_corpora_accepts_a_stream_of_exactly_one_window(monkeypatch: pytest.MonkeyPatch):
    from r1lab.stages import pretrain
    from r1lab.tokenizer import train_tokenizer

    bytes_only = train_tokenizer(["a b"], vocab_size=265)  # no merges: "a b" is 3 byte tokens
    monkeypatch.setattr(pretrain, "world_tokenizer", lambda **kwargs: bytes_only)
    monkeypatch.setattr(pretrain, "corpus_documents", lambda config: (["a b"], ["a b"]))
    _, stream, val_stream = pretrain.corpora(PretrainConfig(seq_len=4, batch_size=1, n_docs=1))
    assert len(stream) == len(val_stream) == 5  # <bos> a " " b <eos>: one window of 4 + 1
    with pytest.raises(ValueError, match="fewer than seq_len \\+ 1"):
        pretrain.corpora(PretrainConfig(seq_len=5, batch_size=1, n_docs=1))
