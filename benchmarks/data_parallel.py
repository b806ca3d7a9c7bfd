"""Data parallelism on this machine: one process against `torchrun` processes (FSDP2 over gloo).

Runs the same work in one process (torch's threads, all cores) and in `--processes` processes of
`--threads` thread(s) each (`torchrun --standalone -m r1lab ...`, `r1lab.parallel`):
- GRPO: `grpo_vs_trl.py`'s r1lab step (8 prompts x 8 samples x up to 64 tokens, beta 0.04, the tiny
  model randomly initialised), seconds per step (each run's logged `step_s`, median after a warm-up step);
- SFT: 16 rows of packed chat examples per step, tokens per second (median of the steps after the first).
Each setting runs `--rounds` times, interleaved. Prints one JSON line whose `speedup`s are the one
process's time over the processes' (above 1: data parallelism helps on this machine).

`--baseline-rev REV` also runs the processes with r1lab as it was at git revision REV (its `r1lab/`
extracted to a temporary directory, first on PYTHONPATH), interleaved with the rest, and reports
`over_baseline`: the baseline's time over the current code's (above 1: the change made it faster).
`--expert-parallel` also runs the processes with the routed experts split by expert and the tokens
exchanged (`r1lab.expert_parallel`), and reports `expert_parallel_over_fsdp`: FSDP2's time over
expert parallelism's (above 1: expert parallelism is faster here).

    .venv/bin/python benchmarks/data_parallel.py [--steps 6] [--rounds 2] [--processes 2] [--bf16]
                                                 [--baseline-rev REV] [--expert-parallel]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from grpo_vs_trl import make_checkpoint


def run(args: list[str], processes: int, threads: int, cwd: Path, code: Path | None = None) -> None:
    """`r1lab ARGS` in `processes` processes; `code`: a directory holding another `r1lab/` to run."""
    runner = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if processes > 1 else dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    done = subprocess.run([sys.executable, *runner, "-m", "r1lab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"r1lab {args[0]} failed ({processes} processes):\n{done.stderr[-3000:]}")


def extract(rev: str, into: Path) -> Path:
    """`r1lab/` as it was at git revision `rev`, written under `into` (made here); returns `into`."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "r1lab"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline-rev {rev}: {archive.stderr.decode(errors='replace').strip()}")
    into.mkdir()
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def chat_data(path: Path, n: int = 400) -> Path:
    """Arithmetic questions with R1-format answers of a few dozen tokens."""
    rng = random.Random(0)
    lines = []
    for _ in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        steps = " ".join(f"{a} plus {k} is {a + k}." for k in range(1, rng.randint(2, 8)))
        lines.append(json.dumps({"prompt": f"What is {a} + {b}?",
                                 "response": f"<think>{steps} So {a} + {b} = {a + b}.</think>The answer is {a + b}."}))
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per process when there are several")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--baseline-rev", help="also run the processes with r1lab at this git revision")
    parser.add_argument("--expert-parallel", action="store_true", help="also run the processes with expert parallelism")
    args = parser.parse_args()
    if min(args.steps, args.rounds, args.threads) < 1 or args.processes < 2:
        parser.error("--steps, --rounds and --threads must be >= 1, --processes >= 2")
    precision = ["--bf16" if args.bf16 else "--no-bf16"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # (name, processes, code, flags): code None runs the r1lab this interpreter imports
        settings = [("one_process", 1, None, []), ("processes", args.processes, None, [])]
        if args.baseline_rev:  # first: a bad revision fails before any work
            settings.append(("baseline_processes", args.processes, extract(args.baseline_rev, tmp / "baseline"), []))
        if args.expert_parallel:
            settings.append(("expert_parallel", args.processes, None, ["--expert-parallel"]))
        init, params = make_checkpoint(tmp)
        data = chat_data(tmp / "chat.jsonl")
        grpo: dict[str, list[float]] = {name: [] for name, *_ in settings}
        sft: dict[str, list[float]] = {name: [] for name, *_ in settings}
        for k in range(args.rounds):
            for name, n, code, flags in settings if k % 2 == 0 else settings[::-1]:  # each order as often
                out = tmp / f"grpo_{name}_{k}"
                run(["zero", "--init", str(init), "--out-dir", str(out), "--prompts-per-step", "8", "--group-size", "8",
                     "--max-new-tokens", "64", "--kl-coef", "0.04", "--lr", "1e-5", "--max-steps", str(args.steps + 1),
                     "--save-every", "10000", "--log-samples-every", "10000", *precision, *flags], n, args.threads, tmp, code)
                grpo[name] += [r["step_s"] for r in metrics(out)[1:]]
                out = tmp / f"sft_{name}_{k}"
                run(["sft", "--data", str(data), "--init", str(init), "--out-dir", str(out), "--batch-size", "16",
                     "--seq-len", "256", "--max-steps", str(args.steps + 1), "--log-every", "1",
                     "--save-every", "10000", *precision, *flags], n, args.threads, tmp, code)
                sft[name] += [r["tokens_per_s"] for r in metrics(out)[1:]]
                print(f"round {k}, {name} ({n}): grpo {statistics.median(grpo[name]):.3f} s/step, "
                      f"sft {statistics.median(sft[name]):.0f} tokens/s", file=sys.stderr)
    step = {name: statistics.median(v) for name, v in grpo.items()}
    rate = {name: statistics.median(v) for name, v in sft.items()}
    result = {"grpo": {"one_process_s": round(step["one_process"], 3), "processes_s": round(step["processes"], 3),
                       "speedup": round(step["one_process"] / step["processes"], 2)},
              "sft": {"one_process_tokens_per_s": round(rate["one_process"]),
                      "processes_tokens_per_s": round(rate["processes"]),
                      "speedup": round(rate["processes"] / rate["one_process"], 2)}}
    if args.baseline_rev:
        result["grpo"] |= {"baseline_processes_s": round(step["baseline_processes"], 3),
                           "over_baseline": round(step["baseline_processes"] / step["processes"], 3)}
        result["sft"] |= {"baseline_processes_tokens_per_s": round(rate["baseline_processes"]),
                          "over_baseline": round(rate["processes"] / rate["baseline_processes"], 3)}
    if args.expert_parallel:
        result["grpo"] |= {"expert_parallel_s": round(step["expert_parallel"], 3),
                           "expert_parallel_over_fsdp": round(step["processes"] / step["expert_parallel"], 3)}
        result["sft"] |= {"expert_parallel_tokens_per_s": round(rate["expert_parallel"]),
                          "expert_parallel_over_fsdp": round(rate["expert_parallel"] / rate["processes"], 3)}
    print(json.dumps({"benchmark": "data_parallel", "params": params, "processes": args.processes,
                      "threads": args.threads, "bf16": args.bf16, "steps": args.steps, "rounds": args.rounds,
                      "baseline_rev": args.baseline_rev, "expert_parallel": args.expert_parallel, **result}))


if __name__ == "__main__":
    main()
