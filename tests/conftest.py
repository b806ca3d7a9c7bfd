"""Shared test fixtures: deterministic seeds, small thread count, the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Test tensors are small: one thread is faster than two fighting over OpenMP barriers (on a busy
# 2-core machine, 2 threads made a toy pretraining run 25x slower), and it keeps runs deterministic.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
