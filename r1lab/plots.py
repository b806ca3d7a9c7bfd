"""Training curves as PNG (matplotlib, headless): accuracy, reward and length against step."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last `window` values, skipping NaN (a missing key): one NaN no longer
    blanks the rest of the curve."""
    out = []
    for i in range(len(values)):
        seen = [v for v in values[max(0, i + 1 - window):i + 1] if not math.isnan(v)]
        out.append(sum(seen) / len(seen) if seen else float("nan"))
    return out


def plot_rl_curves(metrics_path: str | Path, out_path: str | Path, title: str = "GRPO") -> Path:
    """Three panels from a GRPO metrics.jsonl: accuracy & format rate, reward, completion length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"no metrics in {metrics_path}")
    steps = [r["step"] for r in rows]
    window = max(1, len(rows) // 20)
    panels = [("accuracy / format", [("accuracy", "accuracy"), ("format_rate", "format rate")]),
              ("reward", [("reward/total", "total reward")]),
              ("completion length (tokens)", [("length_mean", "mean length")])]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (label, series) in zip(axes, panels):
        for key, name in series:
            values = [r.get(key, float("nan")) for r in rows]
            ax.plot(steps, values, alpha=0.3)
            ax.plot(steps, _smooth(values, window), label=name)
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
