"""MetricsLog on resume: lines a crash or a hand edit leaves must give a clear error, not a TypeError."""

from __future__ import annotations

import pytest

from r1lab import training


def test_a_line_that_is_not_a_json_object_is_named(tmp_path):
    """A JSON list or number parsed as a "record": truncate_after then died in AttributeError
    ('list' object has no attribute 'get')."""
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    log.path.write_text('{"step": 1}\n[1, 2]\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON record \(a JSON list"):
        log.read()
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON record"):
        training.open_log(log.path, 1)
    assert log.path.read_text() == '{"step": 1}\n[1, 2]\n{"step": 3}\n'  # left as it was


@pytest.mark.parametrize("bad", ["null", '"3"', "true"])
def test_a_record_whose_step_is_not_a_number_is_named_on_resume(tmp_path, bad):
    """`step: null` raised TypeError ('<=' not supported between NoneType and int) mid-resume;
    "3" the same; true counted as step 1 and was kept."""
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    text = f'{{"step": 1}}\n{{"step": {bad}, "loss": 0.5}}\n{{"step": 3}}\n'
    log.path.write_text(text)
    with pytest.raises(ValueError, match=r"metrics\.jsonl: the record .* has step .*not a number"):
        log.truncate_after(2)
    assert log.path.read_text() == text


def test_truncate_after_keeps_records_up_to_the_step_and_those_without_one(tmp_path):
    log = training.MetricsLog(tmp_path / "metrics.jsonl")
    log.path.write_text('{"step": 1}\n{"note": "x"}\n{"step": 2.0}\n{"step": 3}\n{"step": 4, "lo')
    training.open_log(log.path, 2)
    assert log.read() == [{"step": 1}, {"note": "x"}, {"step": 2.0}]
    log.write({"step": 3})  # the redone step appends on a clean line
    assert log.path.read_text() == '{"step": 1}\n{"note": "x"}\n{"step": 2.0}\n{"step": 3}\n'
