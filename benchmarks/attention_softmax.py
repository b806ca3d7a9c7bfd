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
from pathlib import Path

from r1lab.model import mla
from r1lab.runtime import keep_freed_memory

sys.path.insert(0, str(Path(__file__).parent))  # the interleaving and GRPO work of logits_chunk.py
from logits_chunk import interleaved, run_grpo  # noqa: E402

SHIPPED_BASE = Path(__file__).resolve().parent.parent / "r1lab" / "assets" / "base-tiny"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("grpo", "sft"), default="grpo")
    parser.add_argument("--max-tokens", type=int, default=256, help="GRPO: maximum completion length")
    parser.add_argument("--steps", type=int, default=12, help="steps in all (each setting's first not timed)")
    args = parser.parse_args()
    if args.steps < 6 or args.max_tokens < 1:
        parser.error("--steps must be >= 6 and --max-tokens >= 1")
    keep_freed_memory()  # as the stages run
    float32_first = [True, False]  # the old setting on the first call, as before

    def use(float32: bool) -> None:
        mla.FLOAT32_SOFTMAX = float32

    if args.stage == "grpo":
        from r1lab.stages import grpo

        grpo.policy_update, times, _ = interleaved(grpo.policy_update, float32_first, use)
        run_grpo(args.steps, args.max_tokens, bf16=True)
    else:
        from r1lab.stages import sft
        from r1lab.world import cold_start_examples

        sft.train_step, times, _ = interleaved(sft.train_step, float32_first, use)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.jsonl"
            data.write_text("".join(json.dumps({"prompt": e.prompt, "response": e.response}) + "\n"
                                    for e in cold_start_examples(1500, seed=0)))
            sft.run(sft.SFTConfig(data=str(data), init=str(SHIPPED_BASE), out_dir=f"{tmp}/run", max_steps=args.steps,
                                  seq_len=512, batch_size=8, lr=1e-3, warmup_steps=10, bf16=True, save_every=10_000))
    median = {k: statistics.median(t[1:]) for k, t in times.items()}
    print(json.dumps({"benchmark": "attention_softmax", "stage": args.stage,
                      **({"max_tokens": args.max_tokens} if args.stage == "grpo" else {"seq_len": 512}),
                      "float32_softmax_s": round(median[True], 4), "bf16_softmax_s": round(median[False], 4),
                      "ratio": round(median[True] / median[False], 3)}))


if __name__ == "__main__":
    main()
