"""Run logs: the metrics JSONL every stage appends to, and a tokens-per-second reading."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r1lab.data import fsync


class MetricsLog:
    """Appends one JSON object per line; flushed at every write so a crash loses nothing."""

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        """enabled=False: writes nothing (the processes of a distributed run other than rank 0)."""
        self.path, self.enabled = Path(path), enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """The records. A last line that does not parse is what a crash mid-write leaves: skipped
        with a warning (the step is redone on resume); any other bad line names file and line."""
        if not self.path.exists():
            return []
        lines = [(i, line) for i, line in enumerate(self.path.read_text().splitlines(), 1) if line.strip()]
        records = []
        for i, line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if i != lines[-1][0]:
                    raise ValueError(f"{self.path}:{i}: not a JSON record ({err})") from None
                print(f"warning: {self.path}:{i}: skipping an unreadable last line (cut off by a crash?)")
                continue
            if not isinstance(record, dict):  # no crash leaves one: every record is written as an object
                raise ValueError(f"{self.path}:{i}: not a JSON record (a JSON {type(record).__name__}, not an object)")
            records.append(record)
        return records

    def truncate_after(self, step: int) -> None:
        """On resume: drop records of steps after the checkpoint (they will be redone). Written to a
        temporary file and renamed over the log, so a crash here leaves the old log whole."""
        records = self.read()
        for r in records:  # a null or text step cannot be placed before or after the checkpoint
            at = r.get("step", 0)
            if isinstance(at, bool) or not isinstance(at, (int, float)):
                raise ValueError(f"{self.path}: the record {json.dumps(r)[:80]} has step {at!r}, not a "
                                 "number; fix or remove that line, or start afresh without --resume")
        keep = [r for r in records if r.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        fsync(tmp)  # else a power cut after the rename can leave an empty log: the kept rows lost
        os.replace(tmp, self.path)
        fsync(self.path.parent)


class Throughput:
    """Tokens per second over the last interval, the time spent `paused` left out."""

    def __init__(self) -> None:
        self.start, self.tokens = time.perf_counter(), 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time inside is no training (a held-out evaluation, a checkpoint save): without this, the
        interval after one read its tokens over that time too, a training speed shown too low."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.start += time.perf_counter() - t0

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        self.start, self.tokens = time.perf_counter(), 0
        return rate

