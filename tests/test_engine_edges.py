"""Engine edge cases: configs and arguments that are legal but unusual."""

from __future__ import annotations

import pytest
import torch

from r1lab.engine import Engine, SamplingParams
from r1lab.model import Transformer, preset


def _greedy_reference(model, prompt, steps):
    ids = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("pad", [-1, 60])
def test_a_pad_id_outside_the_vocabulary_still_pads_ragged_prompts(pad):
    """ModelConfig accepts any pad_token_id (checkpoint.py reads HF's, which may be -1); the engine
    embedded it in the left padding of a ragged batch: an IndexError. Pad slots are masked, so
    the samples are those of the unpadded prompts."""
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=60, num_hidden_layers=2, pad_token_id=pad)).eval()
    prompts = [[5, 6, 7], [8]]
    out = Engine(model).generate(prompts, SamplingParams(temperature=0, max_new_tokens=3))
    assert [g[0].token_ids for g in out] == [_greedy_reference(model, p, 3) for p in prompts]
