"""The GRPO curves as a user sees them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from r1lab.plots import plot_rl_curves


def _figure(monkeypatch, tmp_path, records: list[dict]):
    """The figure plot_rl_curves draws (caught at plt.close) and the PNG it wrote."""
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    png = plot_rl_curves(log, tmp_path / "curves.png")
    assert png.stat().st_size > 0
    return closed[0]


def _visible(line) -> bool:
    """A line that shows something: a segment between two finite points, or a marker."""
    finite = [y for y in line.get_ydata() if math.isfinite(y)]
    return len(finite) >= 2 or (len(finite) == 1 and line.get_marker() not in ("None", None, "", " "))


def test_a_one_step_run_draws_its_point(monkeypatch, tmp_path):
    # one record: a plain line of one point drew nothing, three empty-looking panels
    fig = _figure(monkeypatch, tmp_path, [{"step": 1, "accuracy": 0.5, "format_rate": 1.0, "reward/total": 1.5,
                                            "length_mean": 8.0}])
    labelled = [line for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in labelled] == ["accuracy", "format rate", "total reward", "mean length"]
    assert all(_visible(line) for line in labelled)


def test_each_raw_curve_has_its_smoothed_lines_colour(monkeypatch, tmp_path):
    # the raw accuracy was drawn blue beside an orange smoothed "accuracy", raw format green beside a
    # red "format rate": the legend's colours named neither raw curve
    fig = _figure(monkeypatch, tmp_path, [{"step": s, "accuracy": s / 10, "format_rate": 1.0, "reward/total": 1.0,
                                            "length_mean": 8.0 + s} for s in range(1, 6)])
    for ax in fig.axes:
        lines = ax.get_lines()  # raw, smoothed for each series, in order
        assert len(lines) % 2 == 0 and lines
        for raw, smoothed in zip(lines[::2], lines[1::2]):
            assert raw.get_label().startswith("_") and not smoothed.get_label().startswith("_")
            assert raw.get_color() == smoothed.get_color()
        assert len({line.get_color() for line in lines}) == len(lines) // 2  # two series: two colours


# Integers beyond float's range are gaps in the curve, not a crash at the end of a run.
def test_an_integer_too_large_for_a_float_is_a_gap(monkeypatch, tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "accuracy": 0.5, "length_mean": 1' + "0" * 400 + '}\n'
                   '{"step": 2, "accuracy": ' + "9" * 5000 + '}\n'
                   '{"step": 3, "accuracy": 0.75, "length_mean": 8}\n')
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    assert plot_rl_curves(log, tmp_path / "curves.png").stat().st_size > 0
    accuracy = next(line for line in closed[0].axes[0].get_lines() if line.get_label() == "accuracy")
    assert list(accuracy.get_xdata()) == [1.0, 3.0]  # the 5000-digit line is skipped as unreadable
    length = next(line for line in closed[0].axes[2].get_lines() if line.get_label() == "mean length")
    assert math.isnan(length.get_ydata()[0]) and length.get_ydata()[1] == 8.0


# A value logged between gaps (missing keys, NaN) is drawn as a point; unbroken curves stay plain lines.
def test_a_value_between_gaps_is_drawn(monkeypatch, tmp_path):
    fig = _figure(monkeypatch, tmp_path, [{"step": 1, "format_rate": 1.0},
                                          {"step": 2, "accuracy": 0.5, "format_rate": 0.5},
                                          {"step": 3, "accuracy": float("nan"), "format_rate": 0.0}])
    accuracy, format_rate = [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert accuracy.get_label() == "accuracy" and list(accuracy.get_ydata()[1:2]) == [0.5]
    assert _visible(accuracy) and accuracy.get_marker() == "o"
    assert format_rate.get_marker() in ("None", None)


# A save that fails part-way leaves the earlier curves.png whole and no temporary file behind.
def test_a_failed_save_keeps_the_earlier_png(monkeypatch, tmp_path):
    import matplotlib.figure

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "accuracy": 0.5}\n')
    png = plot_rl_curves(log, tmp_path / "curves.png")
    before = png.read_bytes()

    def disk_full(fig, path, **kwargs):
        Path(path).write_bytes(b"\x89PNG cut")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", disk_full)
    with pytest.raises(OSError, match="No space left"):
        plot_rl_curves(log, png)
    assert png.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]


# A GRPO run whose curves cannot be saved says so and goes on to save its policy.
def test_grpo_goes_on_when_its_curves_cannot_be_saved(tmp_path, capsys):
    from r1lab.stages.grpo import GRPOConfig, _plot_curves
    from r1lab.stages.rollout import world_rubric

    config = GRPOConfig(out_dir=str(tmp_path))
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "accuracy": 0.5}\n')
    (tmp_path / "curves.png").mkdir()  # the rename onto it fails
    _plot_curves(tmp_path, config, world_rubric(config))
    assert "warning: curves not saved" in capsys.readouterr().out


# Drawing the curves leaves the caller's matplotlib backend as it was (a notebook keeps showing its figures).
def test_the_callers_backend_is_kept(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "accuracy": 0.5}\n')
    before = plt.get_backend()
    plt.switch_backend("svg")
    try:
        plot_rl_curves(log, tmp_path / "curves.png")
        assert plt.get_backend() == "svg"
    finally:
        plt.switch_backend(before)
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


# A line of bytes that are not UTF-8 (a damaged disk block) is one skipped line; the others are drawn.
def test_undecodable_bytes_skip_only_their_line(monkeypatch, tmp_path, capsys):
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b'{"step": 1, "accuracy": 0.25}\n\xff\xfe\x80garbage\n{"step": 2, "accuracy": 0.75}\n')
    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    assert plot_rl_curves(log, tmp_path / "curves.png").stat().st_size > 0
    accuracy = next(line for line in closed[0].axes[0].get_lines() if line.get_label() == "accuracy")
    assert list(accuracy.get_xdata()) == [1.0, 2.0] and list(accuracy.get_ydata()) == [0.25, 0.75]
    assert f"plots: skipped 1 line(s) of {log}" in capsys.readouterr().out


def test_a_repeated_step_is_drawn_once_from_its_last_record(monkeypatch, tmp_path, capsys):
    # steps 1-3, then 2-4 again (a resumed run's redone steps): the curve ran 1 2 3 2 3 4, back over itself
    records = [{"step": s, "accuracy": a} for s, a in [(1, 0.1), (2, 0.2), (3, 0.3), (2, 0.5), (3, 0.6), (4, 0.7)]]
    fig = _figure(monkeypatch, tmp_path, records)
    accuracy = next(line for line in fig.axes[0].get_lines() if line.get_label() == "accuracy")
    assert list(accuracy.get_xdata()) == [1, 2, 3, 4]
    assert list(accuracy.get_ydata()) == [0.1, 0.5, 0.6, 0.7]  # window 1: the smoothed line is the raw one
    assert "plots: 2 record(s) of" in capsys.readouterr().out


# The smoothed curve is a trailing mean over a twentieth of the run: 40 steps, the mean of the last 2.
def test_the_smoothed_curve_averages_a_twentieth_of_the_run(monkeypatch, tmp_path):
    fig = _figure(monkeypatch, tmp_path, [{"step": s, "accuracy": s / 100} for s in range(1, 41)])
    accuracy = next(line for line in fig.axes[0].get_lines() if line.get_label() == "accuracy")
    expected = [0.01] + [(s - 0.5) / 100 for s in range(2, 41)]  # (s + s - 1) / 2
    assert list(accuracy.get_ydata()) == pytest.approx(expected)


# A JSON true/false where a number belongs is a gap, not an accuracy of 1 or 0.
def test_a_boolean_metric_is_a_gap(monkeypatch, tmp_path):
    fig = _figure(monkeypatch, tmp_path, [{"step": 1, "accuracy": 0.5}, {"step": 2, "accuracy": True},
                                          {"step": 3, "accuracy": 0.25}])
    raw = fig.axes[0].get_lines()[0]
    assert raw.get_ydata()[0] == 0.5 and math.isnan(raw.get_ydata()[1]) and raw.get_ydata()[2] == 0.25


# The figure is written in the format its name says (an .svg is SVG), though saved under a temporary name.
def test_the_figure_has_the_format_of_its_name(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "accuracy": 0.5}\n')
    assert b"<svg" in plot_rl_curves(log, tmp_path / "curves.svg").read_bytes()[:1000]
