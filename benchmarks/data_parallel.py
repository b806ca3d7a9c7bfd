"""Data parallelism on this machine: one process against `torchrun` processes (FSDP2 over gloo).

Runs the same work in one process (torch's threads, all cores) and in `--processes` processes of
`--threads` thread(s) each (`torchrun --standalone -m r1lab ...`, `r1lab.parallel`):
- GRPO: `grpo_vs_trl.py`'s r1lab step (8 prompts x 8 samples x up to 64 tokens, beta 0.04, the tiny
  model randomly initialised), seconds per step (each run's logged `step_s`, median after a warm-up step);
- SFT: 16 rows of packed chat examples per step, tokens per second (median of the steps after the first).
Each setting runs `--rounds` times, interleaved. Prints one JSON line whose `speedup`s are the one
process's time over the processes' (above 1: data parallelism helps on this machine).

    .venv/bin/python benchmarks/data_parallel.py [--steps 6] [--rounds 2] [--processes 2] [--bf16]
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


def run(args: list[str], processes: int, threads: int, cwd: Path) -> None:
    runner = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if processes > 1 else dict(os.environ)
    done = subprocess.run([sys.executable, *runner, "-m", "r1lab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"r1lab {args[0]} failed ({processes} processes):\n{done.stderr[-3000:]}")


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
    args = parser.parse_args()
    precision = ["--bf16" if args.bf16 else "--no-bf16"]
    grpo = {1: [], args.processes: []}
    sft = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        init, params = make_checkpoint(tmp)
        data = chat_data(tmp / "chat.jsonl")
        for k in range(args.rounds):
            for n in (1, args.processes):
                out = tmp / f"grpo_{n}_{k}"
                run(["zero", "--init", str(init), "--out-dir", str(out), "--prompts-per-step", "8", "--group-size", "8",
                     "--max-new-tokens", "64", "--kl-coef", "0.04", "--lr", "1e-5", "--max-steps", str(args.steps + 1),
                     "--save-every", "10000", "--log-samples-every", "10000", *precision], n, args.threads, tmp)
                grpo[n] += [r["step_s"] for r in metrics(out)[1:]]
                out = tmp / f"sft_{n}_{k}"
                run(["sft", "--data", str(data), "--init", str(init), "--out-dir", str(out), "--batch-size", "16",
                     "--seq-len", "256", "--max-steps", str(args.steps + 1), "--log-every", "1",
                     "--save-every", "10000", *precision], n, args.threads, tmp)
                sft[n] += [r["tokens_per_s"] for r in metrics(out)[1:]]
                print(f"round {k}, {n} process(es): grpo {statistics.median(grpo[n]):.3f} s/step, "
                      f"sft {statistics.median(sft[n]):.0f} tokens/s", file=sys.stderr)
    one, many = 1, args.processes
    print(json.dumps({"benchmark": "data_parallel", "params": params, "processes": many, "threads": args.threads,
                      "bf16": args.bf16, "steps": args.steps, "rounds": args.rounds,
                      "grpo": {"one_process_s": round(statistics.median(grpo[one]), 3),
                               "processes_s": round(statistics.median(grpo[many]), 3),
                               "speedup": round(statistics.median(grpo[one]) / statistics.median(grpo[many]), 2)},
                      "sft": {"one_process_tokens_per_s": round(statistics.median(sft[one])),
                              "processes_tokens_per_s": round(statistics.median(sft[many])),
                              "speedup": round(statistics.median(sft[many]) / statistics.median(sft[one]), 2)}}))


if __name__ == "__main__":
    main()
