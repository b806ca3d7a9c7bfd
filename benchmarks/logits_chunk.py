"""How large a chunk of tokens should the GRPO update take its log-probs in? Measured in a real run.

`rollout._head_logprobs` turns the output head's logits into token log-probs `LOGITS_CHUNK`
logits at a time (float32 log-softmax, then a gather). design_choices.py (key `logits_chunk`) times
the head alone; what counts is a whole update, where the head's tensors are allocated among the
policy's saved activations and large ones page-fault in fresh memory. So this runs `grpo_vs_trl.py`'s
r1lab side (8 prompts x 8 samples x up to `--max-tokens` tokens, the tiny model, beta 0.04) for
`--steps` steps and gives every update one of the `--chunks` values in turn (interleaved, so that
the machine's drift hits all alike). Ends with one JSON line: the median seconds of an update
(`grpo.policy_update`: the reference's forward, the policy's forward and backward, AdamW) for each
chunk size, each one's first update left out (warm-up), the first's time over each one's, and
the median count of minor page faults in an update (`getrusage`: memory touched for the first time).

    .venv/bin/python benchmarks/logits_chunk.py [--chunks 4194304 524288] [--max-tokens 64] [--steps 24] [--fp32]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from r1lab.runtime import keep_freed_memory
from r1lab.stages import grpo, rollout

sys.path.insert(0, str(Path(__file__).parent))  # the checkpoint and work of grpo_vs_trl.py
from grpo_vs_trl import make_checkpoint, run_r1lab  # noqa: E402

S = TypeVar("S")


def interleaved(fn: Callable[..., Any], settings: Sequence[S], apply: Callable[[S], None]
                ) -> tuple[Callable[..., Any], dict[S, list[float]], dict[S, list[int]]]:
    """fn, with the settings applied in turn before each call (so that the machine's drift hits
    all alike), and per setting the seconds and minor page faults (`getrusage`) of each call."""
    times: dict[S, list[float]] = {s: [] for s in settings}
    faults: dict[S, list[int]] = {s: [] for s in settings}

    def call(*a: Any, **k: Any) -> Any:
        setting = settings[sum(len(t) for t in times.values()) % len(settings)]
        apply(setting)
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        out = fn(*a, **k)
        times[setting].append(time.perf_counter() - start)
        faults[setting].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return out
    return call, times, faults


def run_grpo(steps: int, max_tokens: int, bf16: bool) -> None:
    """`steps` GRPO steps of `grpo_vs_trl.py`'s r1lab side (beta 0.04), in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        init, _ = make_checkpoint(Path(tmp))
        run_r1lab(init, argparse.Namespace(steps=steps - 1, max_tokens=max_tokens, beta=0.04), bf16, Path(tmp) / "run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1 << 22, rollout.LOGITS_CHUNK],
                        help="LOGITS_CHUNK values (logits a chunk), the first is the baseline")
    parser.add_argument("--max-tokens", type=int, default=64, help="maximum completion length")
    parser.add_argument("--steps", type=int, default=24, help="GRPO steps in all (each size's first not timed)")
    parser.add_argument("--fp32", action="store_true", help="float32 instead of bf16 autocast")
    args = parser.parse_args()
    if args.steps < 3 * len(args.chunks) or min(args.chunks) < 1:
        parser.error("--steps must give every chunk size two timed updates; --chunks must be >= 1")
    keep_freed_memory()  # as the stages run
    grpo.policy_update, times, faults = interleaved(grpo.policy_update, args.chunks,
                                                    lambda chunk: setattr(rollout, "LOGITS_CHUNK", chunk))
    run_grpo(args.steps, args.max_tokens, bf16=not args.fp32)
    median = {c: statistics.median(t[1:]) for c, t in times.items()}  # each size's first update: warm-up
    base = median[args.chunks[0]]
    print(json.dumps({"benchmark": "logits_chunk", "precision": "float32" if args.fp32 else "bf16",
                      "max_tokens": args.max_tokens, "threads": torch.get_num_threads(),
                      "update_s": {str(c): round(m, 4) for c, m in median.items()},
                      "ratio_to_first": {str(c): round(base / m, 3) for c, m in median.items()},
                      "page_faults": {str(c): int(statistics.median(f[1:])) for c, f in faults.items()}}))


if __name__ == "__main__":
    main()
