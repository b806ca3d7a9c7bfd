"""The measured figures that justify design choices in r1lab's code comments, side by side.

Each key reproduces one comparison a comment quotes, on the project's own code paths where there is
one, with the code's choice timed against what it replaced:

- `moe_dense`: `moe.dispatch` vs `moe.dense` on 32 decode rows, no grad, float32 (also their aten op counts)
- `matmul_float32_vs_bf16`: a (1024 x 128) @ (128 x 192) expert matmul in float32 vs bf16
- `bf16_new_shape`: a bf16 1000 x 128 x 192 matmul's first call at a new row count vs a repeated shape
- `moe_bmm_vs_loop`: the tiny preset's MoE layer (router, experts, shared expert), forward and
  backward under bf16 autocast on 64 x 63 tokens, its experts as a loop vs one bmm (forced both ways)
- `combine_sum`: `.sum(1)` vs adding the K slices, (4096, K = 2, 256) bf16 rows (`_Tokens.forward`)
- `decode_cache_dtype`: `DecodeWeights.step` in bf16 over a bf16 vs a float32 cache, 64 rows, 61 keys
- `decode_silu_layout`: silu(gate) * up in bf16 on 64 rows of 9 experts x 96, gate/up per expert
  (strided (R, X, I) slices) vs all gates then all ups (the packed layout)
- `logits_chunk`: `_head_logprobs` forward and backward in bf16 on 64 x 256 tokens, whole vs chunked
- `inference_mode`: `Engine.generate` (8 prompts x 8 samples x 64 tokens, bf16) under no_grad vs
  inference_mode (its decode step unwrapped too, so that nothing runs in inference mode)
- `sort_descending`: `torch.sort` vs `engine._sort_descending` (numpy argsort) on 64 x 1024 probabilities
- `adamw`: a foreach vs the fused AdamW step (`training.make_optimizer`) on 6.2M parameters
- `keep_freed_memory`: a tiny GRPO step in bf16 (rollout as above, then `grpo.policy_update`) in
  two child processes, one without and one with `runtime.keep_freed_memory` (mallopt cannot be undone)

The in-process comparisons run after `keep_freed_memory()`, as training does. Every side is warmed
up first; rounds are interleaved (the machine's speed drifts over minutes) and each figure is the
median over rounds of the mean per call. Each key gives both sides' times (ms, or us where the
name says so) and `ratio`, the first side's time over the second's: above 1, the code's choice
(always the second side) is faster; for `matmul_float32_vs_bf16` and `bf16_new_shape`, the
factor that the choice pays or avoids. Ends with one JSON line; `--quick` is a smoke run (seconds).

    .venv/bin/python benchmarks/design_choices.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from r1lab import runtime
from r1lab.engine import Engine, SamplingParams, _sort_descending
from r1lab.model import Transformer, moe, preset
from r1lab.model.decode import DecodeWeights
from r1lab.stages import grpo, rollout
from r1lab.stages.rollout import TrainBatch
from r1lab.training import make_optimizer

# `ref6m` of grpo_vs_trl.py: the tiny preset at twice the width, 6.2M parameters
REF6M = dict(hidden_size=256, intermediate_size=768, moe_intermediate_size=192, kv_lora_rank=128,
             qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64)
PROMPTS, GROUP, PROMPT_LEN = 8, 8, 24


@dataclass
class Comparison:
    key: str
    sides: dict[str, Callable[[], object]]  # two sides: what the code avoids, then what it does
    repeats: int  # calls per side and round
    facts: dict[str, Any] = field(default_factory=dict)  # fixed numbers reported beside the times


@contextlib.contextmanager
def patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> int:
    with _CountOps() as counter:
        fn()
    return counter.ops


def tiny_model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(preset("tiny").replace(num_nextn_predict_layers=0))


def moe_comparisons(model: Transformer) -> list[Comparison]:
    layer = copy.deepcopy(model.model.layers[1].mlp)  # a MoE layer (layer 0 is dense)
    experts, E = layer.experts, layer.config.n_routed_experts
    x_dec = torch.randn(32, layer.config.hidden_size)  # few decode rows (the budget allows up to 128 here)
    with torch.no_grad():
        routing = layer.gate(x_dec)
    layer.train()  # the update's MoE layer: its router counts the load

    def decode(path: Callable) -> Callable[[], object]:
        return lambda: torch.no_grad()(path)(x_dec, routing, experts.gate_up_proj, experts.down_proj)

    dense, dispatch = moe.dense, moe.dispatch

    x = torch.randn(64, 63, layer.config.hidden_size, requires_grad=True)  # a GRPO update's tokens

    def train(macs: int) -> Callable[[], None]:  # equal blocks (one bmm) whatever the waste, or never
        def fwd_bwd() -> None:
            with patched(moe, "PER_EXPERT_OVERHEAD_MACS", macs), runtime.autocast(True, "cpu"):
                out, _ = layer(x)
            out.float().sum().backward()
            layer.zero_grad(set_to_none=True)
            x.grad = None
        return fwd_bwd

    rows = torch.randn(4096 * 2, 256).bfloat16().view(4096, 2, 256)
    return [
        Comparison("moe_dense", {"dispatch_ms": decode(dispatch), "dense_ms": decode(dense)}, 100,
                   {"rows": 32, "experts": E, "dispatch_ops": count_ops(decode(dispatch)),
                    "dense_ops": count_ops(decode(dense))}),
        Comparison("moe_bmm_vs_loop", {"loop_ms": train(-1), "bmm_ms": train(2**40)}, 5, {"tokens": 64 * 63}),
        Comparison("combine_sum", {"sum_ms": lambda: rows.sum(1), "slices_ms": lambda: rows[:, 0] + rows[:, 1]}, 50),
    ]


def matmul_comparisons() -> list[Comparison]:
    x, w = torch.randn(1024, 128), torch.randn(128, 192)
    xb, wb = x.bfloat16(), w.bfloat16()
    fresh = iter(range(1001, 4097))  # a row count never seen before at each call
    buffer = torch.randn(4096, 128, dtype=torch.bfloat16)

    def rows(n: Callable[[], int]) -> Callable[[], torch.Tensor]:  # the first n rows: a contiguous (n, 128)
        return lambda: buffer[:n()] @ wb

    return [Comparison("matmul_float32_vs_bf16", {"float32_ms": lambda: x @ w, "bf16_ms": lambda: xb @ wb}, 50),
            Comparison("bf16_new_shape", {"new_shape_us": rows(lambda: next(fresh)),
                                          "repeated_shape_us": rows(lambda: 1000)}, 20)]


def decode_comparisons(model: Transformer) -> list[Comparison]:
    rows, keys = 64, 61
    decoder = DecodeWeights(model, torch.bfloat16)
    tokens, positions = torch.randint(0, model.config.vocab_size, (rows,)), torch.full((rows,), keys - 1)
    mask = torch.ones(rows, keys, dtype=torch.bool)

    def step(dtype: torch.dtype) -> Callable[[], object]:
        cache = model.make_cache(rows, keys, dtype=dtype)  # zero latents: the timing does not depend on them

        def one() -> torch.Tensor:
            cache.length = keys - 1  # the same step every time: writes the last slot, attends over all
            return decoder.step(tokens, positions, mask, cache)
        return one

    X, I = model.config.n_routed_experts + model.config.n_shared_experts, model.config.moe_intermediate_size
    y = torch.randn(rows, 2 * X * I, dtype=torch.bfloat16)  # the gate/up projection's output
    gate_p, up_p = y.chunk(2, dim=-1)  # packed: [gates of all experts ; ups of all experts]
    gate_e, up_e = y.view(rows, X, 2 * I).chunk(2, dim=-1)  # per expert [gate ; up]: (R, X, I) slices
    probs = (torch.randn(rows, model.config.vocab_size) * 3).softmax(-1)
    return [Comparison("decode_cache_dtype", {"bf16_cache_ms": step(torch.bfloat16),
                                              "float32_cache_ms": step(torch.float32)}, 50, {"rows": rows, "keys": keys}),
            Comparison("decode_silu_layout", {"per_expert_us": lambda: F.silu(gate_e) * up_e,
                                              "packed_us": lambda: F.silu(gate_p) * up_p}, 200),
            Comparison("sort_descending", {"torch_sort_us": lambda: probs.sort(dim=-1, descending=True),
                                           "numpy_argsort_us": lambda: _sort_descending(probs)}, 100)]


def training_comparisons() -> list[Comparison]:
    head = tiny_model()
    h = torch.randn(64, 256, head.config.hidden_size, requires_grad=True)
    tokens = torch.randint(0, head.config.vocab_size, (64, 256))

    def logprobs(chunk: int) -> Callable[[], None]:
        def fwd_bwd() -> None:
            with patched(rollout, "LOGITS_CHUNK", chunk), runtime.autocast(True, "cpu"):
                logp = rollout._head_logprobs(head, h, tokens, 1.0)
            logp.sum().backward()
            head.zero_grad(set_to_none=True)
            h.grad = None
        return fwd_bwd

    torch.manual_seed(0)
    big = Transformer(preset("tiny").replace(num_nextn_predict_layers=0, **REF6M))
    for p in big.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    fused = make_optimizer(big, 1e-6, 0.1)
    foreach = torch.optim.AdamW([{k: v for k, v in g.items() if k in ("params", "weight_decay")}
                                 for g in fused.param_groups], lr=1e-6, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    return [Comparison("logits_chunk", {"whole_ms": logprobs(1 << 62), "chunked_ms": logprobs(rollout.LOGITS_CHUNK)},
                       2, {"tokens": 64 * 256}),
            Comparison("adamw", {"foreach_ms": foreach.step, "fused_ms": fused.step}, 10,
                       {"params": sum(p.numel() for p in big.parameters())})]


def rollout_prompts(vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(2, vocab, (PROMPTS, PROMPT_LEN), generator=g).tolist()


def engine_comparison(model: Transformer, new_tokens: int) -> Comparison:
    engine, prompts = Engine(model, autocast_dtype=torch.bfloat16), rollout_prompts(model.config.vocab_size)
    params = SamplingParams(n=GROUP, max_new_tokens=new_tokens, temperature=1.0, seed=0)

    def no_grad() -> None:
        with torch.no_grad(), patched(DecodeWeights, "step", DecodeWeights.step.__wrapped__):
            Engine.generate.__wrapped__(engine, prompts, params)

    return Comparison("inference_mode", {"no_grad_ms": no_grad, "inference_mode_ms": lambda: engine.generate(prompts, params)},
                      1, {"rows": PROMPTS * GROUP, "new_tokens": new_tokens})


def run(comparisons: list[Comparison], rounds: int) -> dict[str, dict[str, Any]]:
    for c in comparisons:  # warm-up: oneDNN kernels, allocator, caches
        for fn in c.sides.values():
            fn(), fn()
    times: dict[str, dict[str, list[float]]] = {c.key: {s: [] for s in c.sides} for c in comparisons}
    for _ in range(rounds):
        for c in comparisons:
            for name, fn in c.sides.items():
                start = time.perf_counter()
                for _ in range(c.repeats):
                    fn()
                times[c.key][name].append((time.perf_counter() - start) / c.repeats)
    return {c.key: summary(times[c.key], c.facts) for c in comparisons}


def summary(sides: dict[str, list[float]], facts: dict[str, Any]) -> dict[str, Any]:
    """Median seconds per side -> ms (us where the name ends in _us), the ratio, then the facts."""
    medians = [statistics.median(v) for v in sides.values()]
    out = {name: round(m * (1e6 if name.endswith("_us") else 1e3), 4) for name, m in zip(sides, medians)}
    return {**out, "ratio": round(medians[0] / medians[1], 2), **facts}


def child(keep: bool, steps: int, new_tokens: int) -> None:
    """One process: `steps` tiny GRPO steps in bf16; prints median rollout and update seconds (first step skipped)."""
    kept = runtime.keep_freed_memory() if keep else False
    model, ref = tiny_model(), tiny_model().eval()
    engine, prompts = Engine(model, autocast_dtype=torch.bfloat16), rollout_prompts(model.config.vocab_size)
    config = grpo.GRPOConfig(prompts_per_step=PROMPTS, group_size=GROUP, max_new_tokens=new_tokens, bf16=True,
                             kl_coef=0.04, lr=1e-5)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    times: dict[str, list[float]] = {"rollout_s": [], "update_s": []}
    for step in range(steps + 1):
        start = time.perf_counter()
        groups = engine.generate(prompts, SamplingParams(n=GROUP, max_new_tokens=new_tokens, seed=step))
        middle = time.perf_counter()
        comps = [c for g in groups for c in g]  # every row runs to new_tokens: no stop token
        batch = TrainBatch(prompt_ids=torch.tensor(prompts), prompt_mask=torch.ones(PROMPTS, PROMPT_LEN, dtype=torch.bool),
                           prompt_of=torch.arange(PROMPTS).repeat_interleave(GROUP),
                           tokens=torch.tensor([c.token_ids for c in comps]),
                           token_valid=torch.ones(len(comps), new_tokens, dtype=torch.bool),
                           mask=torch.ones(len(comps), new_tokens), old_logp=torch.tensor([c.logprobs for c in comps]),
                           advantages=torch.randn(len(comps), generator=torch.Generator().manual_seed(step)))
        grpo.policy_update(model, ref, optimizer, batch, config, step)
        if step > 0:
            times["rollout_s"].append(middle - start)
            times["update_s"].append(time.perf_counter() - middle)
    print(json.dumps({"kept": kept, **{k: statistics.median(v) for k, v in times.items()}}))


def allocator_comparison(rounds: int, steps: int, new_tokens: int) -> dict[str, Any]:
    """Two child processes per round, without then with keep_freed_memory."""
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for side in ("default", "keep"):
            cmd = [sys.executable, __file__, "--child", side, "--child-steps", str(steps), "--new-tokens", str(new_tokens)]
            line = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            if side == "keep" and not line["kept"]:
                return {"skipped": "no mallopt in this C library"}
            for k in ("rollout_s", "update_s"):
                out.setdefault(f"{side}_{k}", []).append(line[k])
    result = {k: round(statistics.median(v), 4) for k, v in out.items()}
    for k in ("rollout_s", "update_s"):
        result[f"{k.removesuffix('_s')}_ratio"] = round(result[f"default_{k}"] / result[f"keep_{k}"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every in-process comparison")
    parser.add_argument("--child-rounds", type=int, default=2, help="pairs of child processes for keep_freed_memory")
    parser.add_argument("--child-steps", type=int, default=3, help="timed GRPO steps per child (after one warm-up)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per rollout row")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round, few repeats, short rollouts")
    parser.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.rounds, args.child_rounds, args.child_steps, args.new_tokens) < 1:
        parser.error("--rounds, --child-rounds, --child-steps and --new-tokens must be >= 1")
    if args.child:
        return child(args.child == "keep", args.child_steps, args.new_tokens)
    if args.quick:
        args.rounds, args.child_rounds, args.child_steps, args.new_tokens = 1, 1, 1, 16
    allocator = allocator_comparison(args.child_rounds, args.child_steps, args.new_tokens)  # before this process's own mallopt
    runtime.keep_freed_memory()
    model = tiny_model().eval()
    comparisons = (moe_comparisons(model) + matmul_comparisons() + decode_comparisons(model)
                   + training_comparisons() + [engine_comparison(model, args.new_tokens)])
    if args.quick:
        for c in comparisons:
            c.repeats = max(1, c.repeats // 10)
    print(json.dumps({"benchmark": "design_choices", "threads": torch.get_num_threads(), "rounds": args.rounds,
                      "quick": args.quick, **run(comparisons, args.rounds), "keep_freed_memory": allocator}))


if __name__ == "__main__":
    main()
