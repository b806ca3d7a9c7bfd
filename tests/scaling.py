"""A check that some work grows linearly with its input, as a ratio of two timings rather than a time
limit: a limit fails on a slow or busy machine, while a ratio of best-of-three timings on the same
machine seconds apart does not. Linear work grows `growth`-fold when its input does, quadratic work
growth^2-fold (64x for the default 8); the check allows 3x growth."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def best_time(run: Callable[[int], object], size: int, repeats: int = 3) -> float:
    """The fastest of `repeats` timings of run(size), in seconds."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        run(size)
        times.append(time.perf_counter() - start)
    return min(times)


def assert_linear(run: Callable[[int], object], size: int, growth: int = 8) -> None:
    """Fails if run(growth * size) takes more than 3 * growth times as long as run(size). Times
    under a millisecond count as one: timer noise, not work (so a fast run passes at once)."""
    small, large = best_time(run, size), best_time(run, growth * size)
    assert large < 3 * growth * max(small, 1e-3), f"{growth}x the input took {large / max(small, 1e-9):.0f}x the time"
