"""How much of a decode step is matrix products: the floor of sampling in eager PyTorch.

Builds a preset with random weights, prefills a latent cache for `--rows` rows, then times the
engine's packed one-token step (`DecodeWeights.step`, bf16 products as in GRPO rollouts) and, apart,
the same step's matrix products alone: every linear / mm / bmm / baddbmm the step dispatches is recorded
once (a TorchDispatchMode) and replayed on its recorded inputs. What is left (`other_ms`) is norms,
RoPE, routing, softmax, casts, cache writes and per-op overhead. Ends with one JSON line;
`matmul_share` is the products' share of the step, and `rollout_matmul_s` what they alone cost
for `--new-tokens` tokens, which no Python-level change can go below. `--compile` also times the
same step through `torch.compile` (Inductor), after its compilation (`compile_s`), in the same
process: `compiled_step_ms` against the eager `step_ms`. The step is the same every time (one
cache length), compiling's best case: the engine's steps grow the cache by one slot each.

    .venv/bin/python benchmarks/decode_floor.py [--preset tiny] [--rows 64] [--keys 80] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from r1lab.model import Transformer, preset
from r1lab.model.decode import DecodeWeights

# under inference mode F.linear reaches the dispatcher whole (aten.linear), not as t + mm
MATMULS = {torch.ops.aten.linear.default, torch.ops.aten.mm.default, torch.ops.aten.bmm.default,
           torch.ops.aten.baddbmm.default, torch.ops.aten.addmm.default}


class _RecordMatmuls(TorchDispatchMode):
    """Keeps (op, cloned inputs) of every matrix product dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Callable, tuple, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func in MATMULS:
            clone = lambda a: a.clone() if isinstance(a, torch.Tensor) else a  # noqa: E731
            self.calls.append((func, tuple(clone(a) for a in args), {k: clone(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def _median_ms(fn: Callable[[], object], repeats: int, rounds: int = 3) -> float:
    times = []
    for _ in range(rounds):
        for _ in range(10):
            fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        times.append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--rows", type=int, default=64, help="sequences decoded together (GRPO: 8 x 8)")
    parser.add_argument("--keys", type=int, default=80, help="cache length at the timed step")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per rollout, for rollout_matmul_s")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--compile", action="store_true", help="also time the step compiled (torch.compile)")
    args = parser.parse_args()
    if min(args.rows, args.keys, args.new_tokens, args.repeats) < 2:
        parser.error("--rows, --keys, --new-tokens and --repeats must be >= 2")
    torch.manual_seed(0)
    model = Transformer(preset(args.preset).replace(num_nextn_predict_layers=0)).eval()
    vocab, prompt = model.config.vocab_size, args.keys - 1
    decoder = DecodeWeights(model, torch.bfloat16)
    cache = model.make_cache(args.rows, args.keys, dtype=decoder.cache_dtype)
    mask = torch.ones(args.rows, args.keys, dtype=torch.bool)
    tokens = torch.randint(0, vocab, (args.rows,))
    positions = torch.full((args.rows,), prompt)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randint(0, vocab, (args.rows, prompt)), cache=cache)  # prefill: keys 0 .. keys - 2

    def step() -> torch.Tensor:
        cache.length = prompt  # the same step every time: writes slot keys - 1, attends over all
        return decoder.step(tokens, positions, mask, cache)

    recorder = _RecordMatmuls()
    with recorder:
        step()
    calls = recorder.calls

    def matmuls_only() -> None:
        with torch.inference_mode():
            for func, a, kw in calls:
                func(*a, **kw)

    step_ms, matmul_ms = _median_ms(step, args.repeats), _median_ms(matmuls_only, args.repeats)
    compiled = {}
    if args.compile:
        fn = torch.compile(DecodeWeights.step.__wrapped__)  # the step without its inference_mode wrapper

        def compiled_step() -> torch.Tensor:
            cache.length = prompt
            with torch.inference_mode():
                return fn(decoder, tokens, positions, mask, cache)

        start = time.perf_counter()
        with torch.inference_mode():
            diff = (compiled_step() - step()).abs().max().item()  # the compiled step computes the same logits
        compiled = {"compile_s": round(time.perf_counter() - start, 1), "compiled_max_abs_diff": round(diff, 4),
                    "compiled_step_ms": round(_median_ms(compiled_step, args.repeats), 3)}
    print(json.dumps({"benchmark": "decode_floor", "preset": args.preset, "rows": args.rows, "keys": args.keys,
                      "threads": torch.get_num_threads(), "step_ms": round(step_ms, 3),
                      "matmul_ms": round(matmul_ms, 3), "matmul_calls": len(calls),
                      "other_ms": round(step_ms - matmul_ms, 3),
                      "rollout_matmul_s": round(matmul_ms * (args.new_tokens - 1) / 1e3, 4),
                      "matmul_share": round(matmul_ms / step_ms, 3), **compiled}))


if __name__ == "__main__":
    main()
