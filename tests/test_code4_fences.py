"""Review helper code4: which fenced blocks a completion's code is taken from."""
from __future__ import annotations

import time

import pytest

from r1lab.rewards.code import extract_code

ADD = "def add(a, b):\n    return a + b"


@pytest.mark.parametrize("completion, expected", [
    # CommonMark allows tilde fences; the whole answer (fence lines too) ran and scored 0
    (f"<think>ok</think>\n~~~python\n{ADD}\n~~~\n", ADD),
    (f"<think>ok</think>\n~~~\n{ADD}\n~~~\nDone.", ADD),
    (f"<think>ok</think>\n~~~python\n{ADD}\n", ADD),  # left open: runs to the end
    # a block closes only on a fence of its own kind: ``` lines inside ~~~ are its text
    ("<think>ok</think>\n~~~python\ns = '''\n```\n'''\n~~~\n", "s = '''\n```\n'''"),
    ("<think>ok</think>\n```python\nx = 1\n~~~\ny = 2\n```\n", "x = 1\n~~~\ny = 2"),
    # the last Python block wins across kinds
    ("<think>ok</think>\n```python\nx = 1\n```\n~~~py\nx = 2\n~~~\n", "x = 2"),
    ("<think>ok</think>\n~~~cpp\nint main() {}\n~~~\n", None),  # only another language
])
def test_tilde_fences_are_code_blocks(completion, expected):
    assert extract_code(completion) == expected


def test_tilde_fences_stay_linear():
    open_tilde = "~~~python\n" + "```\n" * 20_000  # backtick lines inside a block never closed
    texts = ["~~~python" + "x" * 100_000, "~~~" + " " * 40_000 + "\nx = 1", open_tilde]
    start = time.perf_counter()
    assert [extract_code(text) for text in texts] == [texts[0], "x = 1", open_tilde[10:].rstrip()]
    assert time.perf_counter() - start < 1.0
