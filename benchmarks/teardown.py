"""Aborts at exit of torchrun processes: a plain exit, `parallel.close`, and `parallel.end_process`.

A process whose last act is a collective (every r1lab stage ends with the barrier of its final
save) can abort as it exits: "terminate called without an active exception". gloo's worker thread
may still be destroying the last collective's work when the main thread returns; dropping its
tensors needs the GIL, which the finalizing interpreter no longer hands out, and the thread's forced
exit unwinds through a destructor that may not throw (see `parallel.end_process`).

Launches a two-process gloo job `--launches` times per variant, the variants interleaved: optionally
(`--fsdp`) a forward and backward of an FSDP2-sharded layer, then 20 all-reduces and a barrier, then
the end: "exit" returns at once, "close" calls `parallel.close()` (destroys the process group) first,
"end" calls `parallel.close()` and `parallel.end_process(0)`, as `r1lab`'s command line does after a
run that succeeded. Prints one JSON line: per variant, how many launches exited non-zero and how many
of those printed the abort.

    .venv/bin/python benchmarks/teardown.py [--launches 60] [--fsdp]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ABORT = "terminate called without an active exception"
VARIANTS = ("exit", "close", "end")


def _sharded_step() -> None:
    """A forward and backward of an FSDP2-sharded layer, freed on return (as a stage's model is):
    DTensor's caches keep its device mesh, and with it the process group."""
    import torch
    from torch.distributed.fsdp import fully_shard

    layer = fully_shard(torch.nn.Linear(64, 64))
    layer(torch.ones(4, 64)).sum().backward()


def worker(variant: str, fsdp: bool) -> None:
    """One torchrun process: its collectives, the barrier every stage ends with, then the variant's end."""
    import torch
    import torch.distributed as dist

    from r1lab import parallel

    dist.init_process_group("gloo")
    if fsdp:
        _sharded_step()
    for _ in range(20):
        dist.all_reduce(torch.ones(1000))
    dist.barrier()
    if variant in ("close", "end"):
        parallel.close()
    if variant == "end":
        parallel.end_process(0)


def launch(variant: str, fsdp: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               "--worker", variant, *(["--fsdp"] if fsdp else [])]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=60, help="torchrun launches of each variant")
    parser.add_argument("--fsdp", action="store_true", help="shard a layer with FSDP2 and train it one step first")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.fsdp)
        return
    start = time.perf_counter()
    failed, aborted = dict.fromkeys(VARIANTS, 0), dict.fromkeys(VARIANTS, 0)
    for _ in range(args.launches):
        for variant in VARIANTS:
            done = launch(variant, args.fsdp)
            failed[variant] += done.returncode != 0
            aborted[variant] += done.returncode != 0 and ABORT in done.stderr
    print(json.dumps({"benchmark": "teardown", "launches": args.launches, "processes": 2, "fsdp": args.fsdp,
                      "failed": failed, "aborted": aborted, "wall_s": round(time.perf_counter() - start, 1)}))

if __name__ == "__main__":
    main()
