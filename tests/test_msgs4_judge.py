"""A mistyped --judge names the flag and its accepted values."""

from __future__ import annotations

import pytest

from r1lab.stages import rejection_sampling


def test_a_mistyped_judge_names_the_flag_and_what_it_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no directory "Rule" here
    with pytest.raises(FileNotFoundError) as caught:
        rejection_sampling.make_judge("Rule")
    assert str(caught.value) == ("--judge 'Rule' is neither 'rule' (the world's rule) nor a judge checkpoint "
                                 "directory: checkpoint not found (needs config.json and tokenizer.json): Rule")
