"""SamplingParams.stop_token_ids: scalar ids of any integer type are refused up front with the
clear message, and sequences of numpy / torch integers become a tuple of Python ints."""

import numpy as np
import pytest
import torch

from r1lab.engine import SamplingParams


@pytest.mark.parametrize("scalar", [3, np.int64(3), torch.tensor(3)])
def test_scalar_stop_token_id_is_refused_with_the_clear_message(scalar: object) -> None:
    with pytest.raises(TypeError, match=r"stop_token_ids=\(id,\)"):
        SamplingParams(stop_token_ids=scalar)  # type: ignore[arg-type]


def test_float_stop_token_id_is_refused() -> None:
    with pytest.raises(TypeError, match="stop_token_ids"):
        SamplingParams(stop_token_ids=(1.5,))  # type: ignore[arg-type]


@pytest.mark.parametrize("ids", [[4, 5], np.array([4, 5]), torch.tensor([4, 5]), (np.int64(4), torch.tensor(5))])
def test_stop_token_ids_become_a_tuple_of_ints(ids: object) -> None:
    got = SamplingParams(stop_token_ids=ids).stop_token_ids  # type: ignore[arg-type]
    assert got == (4, 5)
    assert type(got) is tuple and all(type(i) is int for i in got)
