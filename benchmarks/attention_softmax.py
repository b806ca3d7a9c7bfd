"""The CPU attention's softmax in bf16 or in float32 (cast back), timed inside real training steps.

`MLA._attend_split` (short sequences on a CPU) takes the softmax of its scores in their own dtype;
`mla.FLOAT32_SOFTMAX = True` restores the old float32 softmax whose probabilities are cast back to
bf16. Under bf16 autocast this runs either GRPO (`grpo_vs_trl.py`'s r1lab side: 8 prompts x 8
samples x up to `--max-tokens` tokens, the tiny model, beta 0.04) or SFT (the tiny base on the
world's cold-start examples, 8 rows x 512 tokens packed) for `--steps` steps, and gives the updates
the two settings in turn (interleaved: the machine's drift hits both alike). Ends with one JSON
line: each setting's median seconds an update (each one's first left out) and `ratio`, float32's
over bf16's (above 1: bf16 is faster).

    .venv/bin/python benchmarks/attention_softmax.py [--stage grpo|sft] [--max-tokens 256] [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from r1lab.model import mla
from r1lab.runtime import keep_freed_memory

sys.path.insert(0, str(Path(__file__).parent))  # the checkpoint and work of grpo_vs_trl.py
from grpo_vs_trl import GROUP, PROMPTS_PER_STEP, make_checkpoint  # noqa: E402

SHIPPED_BASE = Path(__file__).resolve().parent.parent / "r1lab" / "assets" / "base-tiny"


def alternating(fn: Callable[..., Any], times: dict[bool, list[float]]) -> Callable[..., Any]:
    """fn, timed, with mla.FLOAT32_SOFTMAX switched on every other call."""
    def step(*a: Any, **k: Any) -> Any:
        float32 = sum(len(t) for t in times.values()) % 2 == 0
        mla.FLOAT32_SOFTMAX = float32
        start = time.perf_counter()
        out = fn(*a, **k)
        times[float32].append(time.perf_counter() - start)
        return out
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("grpo", "sft"), default="grpo")
    parser.add_argument("--max-tokens", type=int, default=256, help="GRPO: maximum completion length")
    parser.add_argument("--steps", type=int, default=12, help="steps in all (each setting's first not timed)")
    args = parser.parse_args()
    if args.steps < 6 or args.max_tokens < 1:
        parser.error("--steps must be >= 6 and --max-tokens >= 1")
    keep_freed_memory()  # as the stages run
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        if args.stage == "grpo":
            from r1lab.stages import grpo

            grpo.policy_update = alternating(grpo.policy_update, times)
            init, _ = make_checkpoint(Path(tmp))
            grpo.run(grpo.GRPOConfig(init=str(init), out_dir=f"{tmp}/run", prompts_per_step=PROMPTS_PER_STEP,
                                     group_size=GROUP, max_steps=args.steps, max_new_tokens=args.max_tokens,
                                     temperature=1.0, lr=1e-5, kl_coef=0.04, bf16=True, save_every=10_000,
                                     log_samples_every=10_000))
        else:
            from r1lab.stages import sft
            from r1lab.world import cold_start_examples

            data = Path(tmp) / "data.jsonl"
            data.write_text("".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n"
                                    for e in cold_start_examples(1500, seed=0)))
            sft.train_step = alternating(sft.train_step, times)
            sft.run(sft.SFTConfig(data=str(data), init=str(SHIPPED_BASE), out_dir=f"{tmp}/run", max_steps=args.steps,
                                  seq_len=512, batch_size=8, lr=1e-3, warmup_steps=10, bf16=True, save_every=10_000))
    median = {k: statistics.median(t[1:]) for k, t in times.items()}
    print(json.dumps({"benchmark": "attention_softmax", "stage": args.stage,
                      **({"max_tokens": args.max_tokens} if args.stage == "grpo" else {"seq_len": 512}),
                      "float32_softmax_s": round(median[True], 4), "bf16_softmax_s": round(median[False], 4),
                      "ratio": round(median[True] / median[False], 3)}))


if __name__ == "__main__":
    main()
