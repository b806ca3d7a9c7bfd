"""Reusing a stage's output across demo runs: what it was built from, and in how long.

Beside each output (a checkpoint directory or a data file) `<output>.inputs.json` records the
files it was built from (by size and modification time) and the seconds its build took. It says
"building" while the build runs, so that a rerun can tell a finished output from an interrupted
one: the interrupted build is continued from its checkpoints (or its output, written before the
kill cut off the record, is taken as finished), and an output whose inputs have changed since is
built again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from r1lab import training
from r1lab.data import write_text_atomically


def reuse_or_run(done: Path, fn: Callable[[], Path], saved: Path | None = None, inputs: Sequence[Path] = (),
                 checkpoints: Path | None = None, **expected: object) -> tuple[Path, float]:
    """The stage's output if a previous run finished it, else run it; returns (output, seconds).

    A finished output is reused only if it was built with the same settings, the `expected` fields
    (init, data, seed...) of its saved config `saved` (a stats file's "config"), else an error; and
    from the same `inputs` (checkpoints, data files) as they are now, else it is built again (an
    earlier stage was rebuilt). What it was built from, and in how many seconds (the table's time
    when it is reused), is kept as `<output>.inputs.json`, marked "building" while a build runs:
    the resumable `checkpoints` an interrupted build left are removed if its inputs have changed
    since (resumed, they would continue training a model of the old inputs). A build resumed from
    them counts the time its earlier runs spent up to them; one killed after writing its output
    (and `saved`) but before its stamp is finished and reused, not built again."""
    stamp_file = stamp_path(done)
    built, now = read_stamp(stamp_file), _stamp(inputs)
    left = training.latest_checkpoint(checkpoints) if checkpoints is not None else None
    if not done.exists() and left is not None and not (built and built.get("inputs") != now):
        # to be resumed: the stage's own check would advise "without --resume", a flag the demo lacks
        check_settings(checkpoints, left / "r1lab_config.json", expected)
    if done.exists():
        if saved is not None:
            check_settings(done, saved, expected)
        if not built or (built.get("inputs") == now and not built.get("building")):
            return done, built.get("seconds", 0.0)
        if built.get("inputs") == now and (seconds := finish_interrupted(stamp_file, built, done, saved,
                                                                           checkpoints)) is not None:
            return done, seconds
        if built.get("inputs") != now:
            print(f"{done} was built from an earlier version of {_changed(inputs, built, now)}: building it again")
    if checkpoints is not None and checkpoints.exists() and built and built.get("inputs") != now:
        print(f"{checkpoints}: left by a build from an earlier version of {_changed(inputs, built, now)}; "
              "removing them, the stage starts afresh")
        shutil.rmtree(checkpoints)
        left = None
    return build(stamp_file, now, time_to(left, stamp_file, built) if built.get("inputs") == now else 0.0, fn)


def _changed(inputs: Sequence[Path], built: dict[str, object], now: list[list[object]]) -> str:
    """The inputs whose files differ from the record `built`, for the rebuild message: naming every
    input blamed the unchanged ones too (the shipped base, when only the cold-start data was rebuilt);
    all of them if the record cannot be matched to them (unreadable, or another number of inputs)."""
    old = built.get("inputs")
    if not isinstance(old, list) or len(old) != len(now):
        return ", ".join(map(str, inputs))
    return ", ".join(str(p) for p, was, is_ in zip(inputs, old, now) if was != is_)


def build(stamp_file: Path, inputs: list[list[object]], before: float, fn: Callable[[], Path]) -> tuple[Path, float]:
    """Runs `fn`, stamped "building" while it runs; returns (output, seconds), `before` (the time
    an interrupted build's earlier runs spent up to its checkpoint) included."""
    write_text_atomically(stamp_file, json.dumps({"inputs": inputs, "building": True, "seconds_before": before}) + "\n")
    t0 = time.perf_counter()
    out = fn()
    seconds = before + time.perf_counter() - t0
    write_text_atomically(stamp_file, json.dumps({"inputs": inputs, "seconds": seconds}) + "\n")
    return out, seconds


def finish_interrupted(stamp_file: Path, built: dict[str, object], done: Path, saved: Path | None,
                       checkpoints: Path | None = None) -> float | None:
    """The seconds of a build ("building" stamp `built`) killed after it wrote its output `done`
    (and `saved`), before its stamp: the output is this build's, so its stamp is written now (its
    resume `checkpoints` removed first); None, stamp untouched, if the build did not get that far."""
    finished = _written_since(stamp_file, done, saved) if built.get("building") else None
    if finished is None:
        return None
    seconds = _seconds_before(built) + finished
    if checkpoints is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)
    write_text_atomically(stamp_file, json.dumps({"inputs": built.get("inputs"), "seconds": seconds}) + "\n")
    return seconds


def stamp_path(output: Path) -> Path:
    """Where a stage's output keeps what it was built from and in how long (`reuse_or_run`)."""
    return output.with_name(output.name + ".inputs.json")


def read_stamp(path: Path) -> dict[str, object]:
    """An output's record of its inputs; {} if it has none (built before records were kept), and
    inputs unknown (so it is built again) if the record is unreadable (cut short by a crash)."""
    if not path.exists():
        return {}
    try:
        built = json.loads(path.read_text())
    except ValueError:
        return {"inputs": None}
    return built if isinstance(built, dict) else {"inputs": built}


def _stamp(inputs: Sequence[Path]) -> list[list[object]]:
    """What outputs built from `inputs` depend on: each checkpoint's weights file or each data
    file, by size and modification time (a rebuilt stage writes new ones)."""
    files = [p / "model.safetensors" if p.is_dir() else p for p in inputs]
    return [[str(f.resolve()), (st := f.stat()).st_size, st.st_mtime_ns] for f in files]


def _seconds_before(built: dict[str, object]) -> float:
    """The time an interrupted build's earlier runs spent up to where it continued ("building" stamp)."""
    before = built.get("seconds_before")
    return float(before) if isinstance(before, (int, float)) else 0.0


def time_to(left: Path | None, stamp_file: Path, built: dict[str, object]) -> float:
    """Seconds of work a resumed build keeps from before: its earlier runs' time up to `left`, the
    checkpoint it continues from (the steps after it are redone, so their time does not count);
    a `left` saved since the "building" stamp adds the time from the stamp to it (file times both)."""
    if left is None or not built.get("building"):
        return 0.0
    gained = (left / "trainer_state.pt").stat().st_mtime_ns - stamp_file.stat().st_mtime_ns
    return _seconds_before(built) + max(gained, 0) / 1e9


def _written_since(stamp_file: Path, done: Path, saved: Path | None) -> float | None:
    """Seconds from the "building" stamp to the output if the output and `saved` (its config or
    stats, written with or beside it) were all written after the stamp: the build finished; else
    None (an older output, or one whose stats file the kill cut off)."""
    files = [done] + ([saved] if saved is not None else [])
    if not all(f.exists() for f in files):
        return None
    start, times = stamp_file.stat().st_mtime_ns, [f.stat().st_mtime_ns for f in files]
    return (max(times) - start) / 1e9 if min(times) > start else None


def check_settings(output: Path, saved: Path, expected: dict[str, object]) -> None:
    """A ValueError if `output` (a stage's result, or its interrupted run's checkpoints) was made
    with other `expected` settings than now, as its saved config (or a stats file's "config") says."""
    if not saved.exists():
        return
    try:
        config = json.loads(saved.read_text())
    except ValueError:
        raise ValueError(f"{saved} is not readable JSON; delete {output} to rebuild it") from None
    config = config.get("config", config)
    changed = [f"{k} {config[k]!r} -> {v!r}" for k, v in expected.items() if k in config
               and not training.same_setting(config[k], v)]
    if changed:
        raise ValueError(f"{output} was built with other settings ({', '.join(changed)}); "
                         "use another --out, or delete it to rebuild")
