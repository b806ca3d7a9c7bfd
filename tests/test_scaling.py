"""The linear-time check used by the reward tests: it must tell linear from quadratic work."""

from __future__ import annotations

import pytest
from scaling import assert_linear


def test_linear_work_passes():
    assert_linear(lambda k: sum(range(k)), 100_000)


def test_quadratic_work_fails():
    with pytest.raises(AssertionError, match="8x the input took"):
        assert_linear(lambda k: sum(1 for _ in range(k) for _ in range(k)), 300)
