"""Engine.generate's prompts argument: one prompt's flat token ids is refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r1lab.engine import Engine, SamplingParams
from r1lab.model import Transformer, preset


@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.manual_seed(0)
    config = preset("tiny").replace(vocab_size=50, num_hidden_layers=2, num_nextn_predict_layers=0)
    return Engine(Transformer(config).eval())


@pytest.mark.parametrize("flat", [[5, 6, 7], (5, 6, 7), np.array([5, 6, 7]), torch.tensor([5, 6, 7]), [[5, 6], 7]])
def test_flat_token_ids_as_prompts_are_refused_with_the_clear_message(engine: Engine, flat: object) -> None:
    """generate(tokenizer.encode(text), ...) failed deep inside with "'int' object is not iterable"
    (or "iteration over a 0-d tensor"): nothing said that prompts is a list of prompts."""
    with pytest.raises(TypeError, match=r"pass \[prompt\] for one"):
        engine.generate(flat, SamplingParams(temperature=0, max_new_tokens=2))  # type: ignore[arg-type]


def test_prompts_as_arrays_and_tensors_of_rows_still_generate(engine: Engine) -> None:
    """A one-token prompt as a 1-element tensor is a prompt, not a token id (index() takes it)."""
    params = SamplingParams(temperature=0, max_new_tokens=3)
    expected = engine.generate([[5]], params)[0][0].token_ids
    for prompts in (torch.tensor([[5]]), np.array([[5]]), [torch.tensor([5])], [np.array([5])]):
        assert engine.generate(prompts, params)[0][0].token_ids == expected  # type: ignore[arg-type]
