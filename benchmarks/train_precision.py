"""Would keeping bf16 copies of the weights (as FSDP2's `MixedPrecisionPolicy(param_dtype=bf16)`
does) speed up r1lab's GRPO update on a CPU, against bf16 autocast? A measurement, not a feature.

`grpo_vs_trl.py`'s update (8 prompts x 8 samples x up to 64 tokens, the tiny model, beta 0.04) is
a policy forward and backward over the batch plus a reference forward. bf16 autocast casts every
matmul's inputs each time; a bf16 copy of the model casts its weights once per update and keeps
activations in bf16 between ops. This captures one real rollout batch (two GRPO steps on
`grpo_vs_trl.py`'s checkpoint), then times, interleaved over `--rounds`, in each precision: the
policy's forward and backward (`policy_s`) and the reference's forward (`reference_s`), medians. It
also times the matmuls of the update's and the decode step's shapes in float32 and bf16: the
cores' bf16 (AMX) path pays off at thousands of rows, not at a decode step's 64.

    .venv/bin/python benchmarks/train_precision.py [--rounds 5]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from r1lab import runtime
from r1lab.stages import grpo
from r1lab.stages.rollout import TrainBatch, completion_logprobs

sys.path.insert(0, str(Path(__file__).parent))  # the checkpoint and work of grpo_vs_trl.py
from grpo_vs_trl import GROUP, PROMPTS_PER_STEP, make_checkpoint  # noqa: E402


def capture_batch(init: Path, out: Path) -> tuple[torch.nn.Module, TrainBatch]:
    """The policy and the batch of its second GRPO step (float32 run, as the benchmark's)."""
    captured: dict = {}
    update = grpo.policy_update

    def keep(model, ref, optimizer, batch, config, step=0):  # policy_update's signature
        captured.update(model=model, batch=batch)
        return update(model, ref, optimizer, batch, config, step)

    grpo.policy_update = keep
    try:
        grpo.run(grpo.GRPOConfig(init=str(init), out_dir=str(out), prompts_per_step=PROMPTS_PER_STEP,
                                 group_size=GROUP, max_steps=2, max_new_tokens=64, temperature=1.0, lr=1e-5,
                                 kl_coef=0.04, save_every=10_000, log_samples_every=10_000))
    finally:
        grpo.policy_update = update
    return captured["model"], captured["batch"]


def seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()  # warm-up: oneDNN builds its kernels for a new shape
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def matmul_ms(rows: int) -> dict[str, float]:
    """(rows x 128) @ (128 x 384): the tiny model's widest projection."""
    x, w = torch.randn(rows, 128), torch.randn(128, 384)
    xb, wb = x.bfloat16(), w.bfloat16()
    return {"float32": round(1e3 * seconds(lambda: x @ w, 50), 3), "bf16": round(1e3 * seconds(lambda: xb @ wb, 50), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runtime.keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        init, _ = make_checkpoint(Path(tmp))
        model, batch = capture_batch(init, Path(tmp) / "run")
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    rows = torch.arange(batch.tokens.shape[0])

    def policy(net: torch.nn.Module, autocast: bool) -> None:
        with runtime.autocast(autocast, "cpu"):
            logp = completion_logprobs(net, batch, rows, 1.0)
        (logp.float() * batch.mask).sum().backward()
        net.zero_grad(set_to_none=True)

    def reference(net: torch.nn.Module, autocast: bool) -> None:
        with torch.no_grad(), runtime.autocast(autocast, "cpu"):
            completion_logprobs(net, batch, rows, 1.0)

    settings = {"float32": (model, False), "bf16_autocast": (model, True), "bf16_weights": (bf16_model, False)}
    times: dict[str, dict[str, list[float]]] = {k: {"policy_s": [], "reference_s": []} for k in settings}
    for _ in range(args.rounds):  # interleaved: the machine's speed drifts over minutes
        for name, (net, autocast) in settings.items():
            times[name]["policy_s"].append(seconds(lambda: policy(net, autocast)))
            times[name]["reference_s"].append(seconds(lambda: reference(net, autocast)))
    result = {name: {k: round(statistics.median(v), 4) for k, v in t.items()} for name, t in times.items()}
    base = result["float32"]["policy_s"] + result["float32"]["reference_s"]
    for name in settings:
        result[name]["speedup_vs_float32"] = round(base / (result[name]["policy_s"] + result[name]["reference_s"]), 2)
    print(json.dumps({"benchmark": "train_precision", "batch_rows": int(batch.tokens.shape[0]),
                      "completion_tokens": int(batch.token_valid.sum()), "rounds": args.rounds, **result,
                      "matmul_ms_4032_rows": matmul_ms(4032), "matmul_ms_64_rows": matmul_ms(64)}))


if __name__ == "__main__":
    main()
