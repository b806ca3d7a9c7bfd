"""Review helper code4: a fence tagged with a versioned Python name is Python."""
from __future__ import annotations

import pytest

from r1lab.rewards.code import extract_code


@pytest.mark.parametrize("tag", ["python3.11", "Python3.12", "py3.10", "python3.9.1"])
def test_a_versioned_python_tag_is_python(tag):
    # it counted as another language: "only other languages", no code, reward 0
    assert extract_code(f"<think>ok</think>\n```{tag}\nx = 1\n```\n") == "x = 1"
    # and it wins over an untagged block after it (the output, not the program)
    assert extract_code(f"<think>ok</think>\n```{tag}\nx = 1\n```\n```\n1\n```\n") == "x = 1"


@pytest.mark.parametrize("tag", ["python2", "pyth", "python3.x", "cpp"])
def test_other_tags_are_not_python(tag):
    assert extract_code(f"<think>ok</think>\n```{tag}\nx = 1\n```\n") is None
