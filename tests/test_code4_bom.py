"""Review helper code4: a byte-order mark at the start of the code, as CPython accepts in a file."""
from __future__ import annotations

import pytest

from r1lab.rewards.code import CodeTask, code_reward, extract_code

ADD = CodeTask(kind="mbpp", asserts=("assert add(1, 2) == 3",))


@pytest.mark.parametrize("completion", [
    "\ufeffdef add(a, b):\n    return a + b\n",
    "\ufeff```python\ndef add(a, b):\n    return a + b\n```",  # the fence is on the first line
    "<think>ok</think>```python\n\ufeffdef add(a, b):\n    return a + b\n```",
])
def test_a_leading_bom_is_not_code(completion):
    assert extract_code(completion) == "def add(a, b):\n    return a + b"


def test_a_completion_starting_with_a_bom_is_scored_on_its_code():
    assert code_reward("\ufeffdef add(a, b):\n    return a + b\n", ADD) == 1.0  # SyntaxError, 0 before
