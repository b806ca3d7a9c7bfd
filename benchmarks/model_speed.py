"""Forward+backward training throughput: r1lab's model against transformers' DeepseekV3ForCausalLM.

Same weights (the r1lab checkpoint loaded by transformers), same batches, same thread count, in
one process; float32 and bf16 autocast; the `tiny` preset and a mid-size CPU config. Each result
is also given as a share of this machine's measured matmul peak (a large square matmul, timed here).
Model FLOPs per token: 6 x (activated matmul parameters) + causal attention (6 x T x H x (d_qk + d_v)
per layer, halved for the causal mask).

Prints a table to stderr and ends with one JSON line; `ratio` is r1lab's tokens/s over
transformers' for the bf16 mid-size case.

    .venv/bin/python benchmarks/model_speed.py [--quick]
    python benchmarks/model_speed.py --device cuda --cases small --precisions bf16   # on a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM

from r1lab.model import Transformer, preset, save_pretrained
from r1lab.model.config import ModelConfig
from r1lab.model.info import count_parameters
from r1lab.model.moe import Experts
from r1lab.runtime import keep_freed_memory


def mid_config() -> ModelConfig:
    return preset("tiny").replace(vocab_size=4096, hidden_size=512, intermediate_size=1536,
                                  moe_intermediate_size=384, num_hidden_layers=6, num_attention_heads=8,
                                  kv_lora_rank=128, q_lora_rank=192, qk_nope_head_dim=64, qk_rope_head_dim=32,
                                  v_head_dim=64, n_routed_experts=16, num_experts_per_tok=2, n_group=4,
                                  topk_group=2, num_nextn_predict_layers=0)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(dtype: torch.dtype, device: str = "cpu", reps: int = 10) -> float:
    """FLOP/s of a large square matmul on random data (2048 on a CPU, 8192 on a GPU)."""
    n = 8192 if device.startswith("cuda") else 2048
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    counts = count_parameters(config.replace(num_nextn_predict_layers=0))
    matmul_params = counts["active"] - config.vocab_size * config.hidden_size  # the embedding is a lookup
    attn = 6 * seq_len * config.num_attention_heads * (config.qk_head_dim + config.v_head_dim) / 2
    return 6 * matmul_params + config.num_hidden_layers * attn


def forward_backward(model: torch.nn.Module, batch: torch.Tensor, bf16: bool, is_hf: bool) -> None:
    """One forward+backward on `batch` (B, T+1), gradients dropped."""
    x, y = batch[:, :-1], batch[:, 1:]
    ctx = torch.autocast(batch.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        if is_hf:
            loss = model(input_ids=x, labels=batch[:, :-1].clone()).loss  # HF shifts internally
        else:
            loss = model.loss(x, y).ce
    loss.backward()
    model.zero_grad(set_to_none=True)


def step_time(model: torch.nn.Module, batch: torch.Tensor, bf16: bool, is_hf: bool, reps: int) -> float:
    """Median seconds of one forward+backward on `batch` (B, T+1)."""
    device = str(batch.device)
    times = []
    for i in range(reps + 2):
        sync(device)
        start = time.perf_counter()
        forward_backward(model, batch, bf16, is_hf)
        sync(device)
        if i >= 2:  # the first two runs warm up (allocator, kernels, autotuning)
            times.append(time.perf_counter() - start)
    return statistics.median(times) if times else float("nan")  # --quick times 2: their mean, not the slower


def compile_blocks(model: torch.nn.Module) -> None:
    """Regional compilation (as torchtitan): each transformer block compiled on its own, so the
    identical blocks share one compiled graph and compile time stays that of one or two blocks."""
    for block in model.model.layers:
        block.compile()
    if hasattr(model, "head_loss"):  # r1lab: the output head and its float32 cross-entropy too
        model.head_loss = torch.compile(model.head_loss)


def profile_step(model: torch.nn.Module, batch: torch.Tensor, bf16: bool, path: str) -> None:
    """One forward+backward under torch.profiler: the ops by total device (or CPU) time, to `path`."""
    from torch.profiler import ProfilerActivity, profile
    cuda = batch.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    step_time(model, batch, bf16, False, reps=0)  # warm-up, outside the profile
    with profile(activities=activities) as prof:  # one step: the table's totals are one step's
        forward_backward(model, batch, bf16, False)
        sync(str(batch.device))
    key = "cuda_time_total" if cuda else "cpu_time_total"
    with open(path, "w") as f:
        f.write(prof.key_averages().table(sort_by=key, row_limit=45, max_name_column_width=60))


def grouped_vs_loop(model: torch.nn.Module, batch: torch.Tensor, bf16: bool) -> dict[str, float]:
    """The loss and gradients with the routed experts as grouped GEMMs against the per-expert
    loop, on the same rows: relative differences (bf16 rounding only, if the kernels agree)."""
    experts = [m for m in model.modules() if isinstance(m, Experts)]
    setting = experts[0].grouped_mm
    results = []
    for grouped in (True, False):
        for m in experts:
            m.grouped_mm = grouped
        model.zero_grad(set_to_none=True)
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(batch[:, :-1], batch[:, 1:]).ce
        loss.backward()
        grads = torch.cat([m.gate_up_proj.grad.flatten() for m in experts] + [model.lm_head.weight.grad.flatten()])
        results.append((loss.detach().float(), grads.float()))
    model.zero_grad(set_to_none=True)
    for m in experts:
        m.grouped_mm = setting
    (l1, g1), (l2, g2) = results
    return {"loss_rel_diff": float((l1 - l2).abs() / l2.abs()), "grad_rel_diff": float((g1 - g2).norm() / g2.norm())}


def bench_case(name: str, config: ModelConfig, batch_size: int, seq_len: int, reps: int,
               peaks: dict[str, float], device: str = "cpu", precisions: tuple[str, ...] = ("fp32", "bf16"),
               compile_models: bool = False, grouped_mm: bool | None = None, with_hf: bool = True,
               profile: str = "") -> list[dict]:
    config = config.replace(num_nextn_predict_layers=0)  # transformers has no MTP: same work both sides
    torch.manual_seed(0)
    ours = Transformer(config).train()
    theirs = None
    if with_hf:
        with tempfile.TemporaryDirectory() as tmp:
            save_pretrained(ours, tmp)
            theirs = AutoModelForCausalLM.from_pretrained(tmp).train().to(device)
    ours = ours.to(device)
    batch = torch.randint(0, config.vocab_size, (batch_size, seq_len + 1), device=device)
    for m in ours.modules():
        if isinstance(m, Experts):
            m.grouped_mm = grouped_mm
    if grouped_mm is not None:
        name += "+grouped" if grouped_mm else "+loop"
    if grouped_mm is not False and device.startswith("cuda"):
        check = grouped_vs_loop(ours, batch[:2], "bf16" in precisions)
        print(f"grouped GEMMs vs the expert loop: {json.dumps(check)}", file=sys.stderr)
    if compile_models:
        start = time.perf_counter()
        for model in (ours, theirs) if theirs is not None else (ours,):
            compile_blocks(model)
            step_time(model, batch, precisions[0] == "bf16", model is theirs, reps=0)  # compiles
        print(f"compiled in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        name += "+compile"
    tokens = batch_size * seq_len
    fpt = flops_per_token(config, seq_len)
    rows = []
    for precision in precisions:
        bf16 = precision == "bf16"
        t_ours = step_time(ours, batch, bf16, False, reps)
        row = {"case": name, "device": device, "precision": precision, "tokens": tokens,
               "r1lab_tok_s": tokens / t_ours, "r1lab_peak_share": tokens / t_ours * fpt / peaks[precision]}
        line = f"{name:>5} {precision}: r1lab {row['r1lab_tok_s']:9.0f} tok/s ({row['r1lab_peak_share']:.1%} of peak)"
        if theirs is not None:
            t_hf = step_time(theirs, batch, bf16, True, reps)
            row.update(hf_tok_s=tokens / t_hf, ratio=t_hf / t_ours, hf_peak_share=tokens / t_hf * fpt / peaks[precision])
            line += (f"  transformers {row['hf_tok_s']:9.0f} tok/s ({row['hf_peak_share']:.1%})"
                     f"  ratio {row['ratio']:.2f}")
        rows.append(row)
        print(line, file=sys.stderr)
        if profile:
            profile_step(ours, batch, bf16, f"{profile}.{precision}.txt")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--cases", default="tiny,mid", help="comma-separated: tiny, mid, small (the GPU preset)")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16 (autocast)")
    parser.add_argument("--batch", type=int, default=0, help="rows per step for `small` (default 8 x 2048 tokens)")
    parser.add_argument("--compile", action="store_true", help="also with every block torch.compiled (both models)")
    parser.add_argument("--grouped-mm", choices=("auto", "on", "off"), default="auto",
                        help="routed experts as grouped GEMMs (auto: bf16 on Hopper+ GPUs) or a loop/bmm")
    parser.add_argument("--seq", type=int, default=2048, help="tokens per row for `small`")
    parser.add_argument("--no-hf", action="store_true", help="r1lab only (no transformers side, no ratio)")
    parser.add_argument("--profile", default="", help="write a profiler table of one r1lab step to PREFIX.<precision>.txt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # process-wide, before either side runs: both get the same allocator
    reps = 2 if args.quick else 5
    precisions = tuple(args.precisions.split(","))
    if not precisions or not set(precisions) <= {"fp32", "bf16"}:  # fp16 was timed in float32, labelled fp16
        parser.error(f"--precisions takes fp32 and/or bf16, comma-separated; got {args.precisions!r}")
    peaks = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16, args.device) for p in precisions}
    print("matmul peak: " + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items())
          + f" ({args.device}, {args.threads} threads)", file=sys.stderr)
    cases = {"tiny": (preset("tiny"), 16, 128), "mid": (mid_config(), 8, 256),
             "small": (preset("small"), args.batch or 8, args.seq)}
    grouped = {"auto": None, "on": True, "off": False}[args.grouped_mm]
    options = dict(grouped_mm=grouped, with_hf=not args.no_hf)
    rows = []
    for name in args.cases.split(","):
        config, batch, seq = cases[name]
        rows += bench_case(name, config, batch, seq, reps, peaks, args.device, precisions, profile=args.profile, **options)
        if args.compile:
            rows += bench_case(name, config, batch, seq, reps, peaks, args.device, precisions, compile_models=True,
                               profile=args.profile and args.profile + "_compile", **options)
    key = next((r for r in rows if r["case"] == "mid" and r["precision"] == "bf16"), rows[-1])
    print(json.dumps({"benchmark": "model_speed", "device": args.device, "threads": args.threads,
                      "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                      "results": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
                      "ratio_case": f"{key['case']} {key['precision']}",
                      "ratio": round(key["ratio"], 3) if "ratio" in key else None}))


if __name__ == "__main__":
    main()
