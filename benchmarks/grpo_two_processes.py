"""Would data parallelism across the 2 cores speed up a GRPO step? A bound, measured.

`grpo_vs_trl.py`'s r1lab step (8 prompts x 8 samples x up to 64 tokens, the tiny model, beta 0.04)
runs with torch's two threads in one process. Data parallelism would instead run two processes of
one thread each, every one on half the prompts, and average gradients. This benchmark times that
split without the gradient exchange: a lower bound on a data-parallel step on this machine. Each
setting runs in fresh processes, `--rounds` times, interleaved; medians over the timed steps.

    .venv/bin/python benchmarks/grpo_two_processes.py [--steps 8] [--rounds 2] [--bf16]

Prints one JSON line: `one_process_s` (a step of 8 prompts, 2 threads), `two_processes_s` (the
slower of the two concurrent processes' steps, 4 prompts each, 1 thread each) and their ratio
`speedup` (above 1: the split would help).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPTS_PER_STEP, GROUP = 8, 8


def worker(init: str, out: str, prompts: int, threads: int, steps: int, bf16: bool, seed: int) -> None:
    """One GRPO run in this process; prints its step and rollout seconds (one list each)."""
    import torch

    from r1lab.stages import grpo

    torch.set_num_threads(threads)
    config = grpo.GRPOConfig(init=init, out_dir=out, prompts_per_step=prompts, group_size=GROUP,
                             max_steps=steps + 1, max_new_tokens=64, temperature=1.0, lr=1e-5, kl_coef=0.04,
                             bf16=bf16, save_every=10_000, log_samples_every=10_000, threads=threads, seed=seed)
    grpo.run(config)
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()][1:]  # skip warm-up
    print(json.dumps({"step": [r["step_s"] for r in rows], "rollout": [r["rollout_s"] for r in rows]}))


def launch(init: Path, out: Path, prompts: int, threads: int, args: argparse.Namespace,
           seed: int = 0) -> subprocess.Popen:
    """A worker process; the two halves take seeds 0 and 1: data-parallel ranks draw different prompts."""
    command = [sys.executable, __file__, "--worker", str(init), str(out), str(prompts), str(threads),
               str(args.steps), str(seed)] + (["--bf16"] if args.bf16 else [])
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def result(process: subprocess.Popen) -> dict:
    stdout, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a worker failed (exit {process.returncode})")
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        init, out, prompts, threads, steps, seed = sys.argv[2:8]
        return worker(init, out, int(prompts), int(threads), int(steps), "--bf16" in sys.argv, int(seed))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting, interleaved")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast and engine weights")
    args = parser.parse_args()
    if min(args.steps, args.rounds) < 1:
        parser.error("--steps and --rounds must be >= 1")
    sys.path.insert(0, str(Path(__file__).parent))
    from grpo_vs_trl import make_checkpoint

    one: list[float] = []
    two: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        init, _ = make_checkpoint(Path(tmp))
        for k in range(args.rounds):
            single = launch(init, Path(tmp) / f"one_{k}", PROMPTS_PER_STEP, 2, args)
            one += result(single)["step"]
            halves = [launch(init, Path(tmp) / f"two_{k}_{r}", PROMPTS_PER_STEP // 2, 1, args, seed=r)
                      for r in range(2)]
            steps = [result(p)["step"] for p in halves]
            two += [max(a, b) for a, b in zip(*steps)]  # a data-parallel step waits for the slower rank
    one_s, two_s = statistics.median(one), statistics.median(two)
    print(json.dumps({"benchmark": "grpo_two_processes", "bf16": args.bf16, "steps": args.steps, "rounds": args.rounds,
                      "one_process_s": round(one_s, 3), "two_processes_s": round(two_s, 3),
                      "speedup": round(one_s / two_s, 2)}))


if __name__ == "__main__":
    main()
