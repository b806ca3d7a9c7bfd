"""Review helper code3: what code a completion in R1-Zero's answer tags runs."""
from __future__ import annotations

import pytest

from r1lab.rewards.code import CodeTask, code_reward, extract_code

SUM_STDIO = CodeTask.from_stdio([("1 2\n", "3\n")])
ADD = CodeTask(kind="mbpp", asserts=("assert add(1, 2) == 3",))


@pytest.mark.parametrize("completion, expected", [
    # R1 Table 1's template writes `<answer> answer here </answer>`: the blank after the tag
    # separates, it is not the code's indentation (an IndentationError scored a right answer 0)
    ("<think>t</think> <answer> print(sum(map(int, input().split()))) </answer>",
     "print(sum(map(int, input().split())))"),
    ("<think>t</think> <answer> def add(a, b):\n    return a + b\n</answer>",
     "def add(a, b):\n    return a + b"),
    # a fence on the tag's line is not indented either: its body keeps its own indentation
    ("<think>t</think> <answer> ```python\ndef add(a, b):\n    return a + b\n```</answer>",
     "def add(a, b):\n    return a + b"),
    # text on the lines below the tag keeps its indentation (a HumanEval body)
    ("<think>t</think> <answer>\n    return a + b\n</answer>", "    return a + b"),
])
def test_blanks_after_the_answer_tag_are_not_indentation(completion, expected):
    assert extract_code(completion) == expected


def test_a_one_line_program_in_the_r1_zero_template_is_scored():
    stdio = "<think>add them</think> <answer> print(sum(map(int, input().split()))) </answer>"
    mbpp = "<think>t</think> <answer> def add(a, b): return a + b </answer>"
    assert (code_reward(stdio, SUM_STDIO), code_reward(mbpp, ADD)) == (1.0, 1.0)
