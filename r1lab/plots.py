"""Training curves as PNG (matplotlib, headless): accuracy, reward and length against step."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last `window` values, skipping NaN (a missing key): one NaN no longer
    blanks the rest of the curve."""
    out = []
    for i in range(len(values)):
        seen = [v for v in values[max(0, i + 1 - window):i + 1] if not math.isnan(v)]
        out.append(sum(seen) / len(seen) if seen else float("nan"))
    return out


def _has_lone_point(values: list[float]) -> bool:
    """Whether some finite value has no finite neighbour, so that a plain line draws nothing there."""
    finite = [not math.isnan(v) for v in values]
    return any(here and not (i > 0 and finite[i - 1]) and not (i + 1 < len(finite) and finite[i + 1])
               for i, here in enumerate(finite))


def _number(value: object) -> float:
    """A metric as a float; NaN (a gap in the curve) for null, missing, non-numeric or infinite values
    (an infinity would also poison the trailing mean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return float("nan")
    try:
        number = float(value)
    except OverflowError:  # an integer past float's range: math.isfinite raises on it too
        return float("nan")
    return number if math.isfinite(number) else float("nan")


def _read_rows(metrics_path: Path) -> tuple[list[dict], int]:
    """The records that have a numeric step, and how many lines were skipped (unreadable JSON,
    not an object, no step): a run's curves are drawn at its end, where a bad line must not crash it."""
    rows, skipped = [], 0
    # a damaged line's undecodable bytes become U+FFFD: that line is skipped, not the whole file
    for line in metrics_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or an integer longer than Python converts (4300 digits)
            row = None
        if isinstance(row, dict) and not math.isnan(_number(row.get("step"))):
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def _one_per_step(rows: list[dict]) -> tuple[list[dict], int]:
    """The records in step order, the last one of each step kept, and how many were dropped: a log
    holding a step twice (a run resumed past its log's truncation, logs joined by hand) drew its
    curves back over themselves, a zigzag; the last record of a step is the redone one."""
    by_step = {_number(r["step"]): r for r in rows}
    return [by_step[s] for s in sorted(by_step)], len(rows) - len(by_step)


def plot_rl_curves(metrics_path: str | Path, out_path: str | Path, title: str = "GRPO") -> Path:
    """Three panels from a GRPO metrics.jsonl: accuracy & format rate, reward, completion length.

    What cannot be plotted (bad lines, a metric never logged or always null, an empty log) is
    skipped and said on stdout; the figure is written all the same."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # headless; a backend the caller already uses (a notebook's) is kept
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, skipped = _read_rows(Path(metrics_path))
    if skipped:
        print(f"plots: skipped {skipped} line(s) of {metrics_path} without a readable record and step")
    rows, repeated = _one_per_step(rows)
    if repeated:
        print(f"plots: {repeated} record(s) of {metrics_path} repeat an earlier step; the last of each is drawn")
    if not rows:
        print(f"plots: no metrics to plot in {metrics_path}; {out_path} has empty panels")
    steps = [_number(r["step"]) for r in rows]
    window = max(1, len(rows) // 20)
    panels = [("accuracy / format", [("accuracy", "accuracy"), ("format_rate", "format rate")]),
              ("reward", [("reward/total", "total reward")]),
              ("completion length (tokens)", [("length_mean", "mean length")])]
    if any("reward/verdict" in r for r in rows):  # all-scenario RL: the general prompts' scores and the truth
        panels[0][1].extend([("reward/verdict", "general: right (world)"), ("reward/safety", "general: P(safe), RM")])
        panels[1][1].append(("reward/helpful", "general: helpfulness RM"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (label, series) in zip(axes, panels):
        for key, name in series:
            values = [_number(r.get(key)) for r in rows]
            if all(math.isnan(v) for v in values):  # never logged, or always null
                if rows:
                    print(f"plots: no values of {key!r} in {metrics_path}; not plotted")
                continue
            smoothed = _smooth(values, window)
            # a lone point is no line segment: without a marker a 1-step run's curve, or a value
            # between gaps (missing keys, NaN), is invisible
            marker = "o" if _has_lone_point(smoothed) else None
            raw, = ax.plot(steps, values, alpha=0.3)
            # the legend names the smoothed line: its raw curve must be drawn in the same colour
            ax.plot(steps, smoothed, label=name, marker=marker, color=raw.get_color())
        ax.set_xlabel("step")
        ax.set_title(label)
        if ax.get_legend_handles_labels()[0]:  # an empty legend only warns
            ax.legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    # written beside and renamed over: a failed save (disk full) leaves the last curves whole, not a cut PNG
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        fig.savefig(tmp, dpi=110, format=out_path.suffix[1:] or "png")  # the format of out_path, not of .tmp
        os.replace(tmp, out_path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return out_path
