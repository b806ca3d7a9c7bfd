"""Review helper code4: MBPP records in the sanitized format (test_imports, no test_setup_code)."""
from __future__ import annotations

import pytest

from r1lab.rewards.code import CodeTask, code_reward

SANITIZED = {"source_file": "Benchmark Questions Verification V2.ipynb", "task_id": 2,
             "prompt": "Write a function to find the square root of a number.",
             "code": "def root(x):\n    return math.sqrt(x)",
             "test_imports": ["import math"], "test_list": ["assert math.isclose(root(4.0), 2.0)"]}


def test_a_sanitized_record_is_accepted_and_its_imports_run_before_the_tests():
    task = CodeTask.from_mbpp(SANITIZED)  # KeyError: 'test_setup_code' before
    assert (task.task_id, task.setup, task.asserts) == ("2", "import math", tuple(SANITIZED["test_list"]))
    # the solution relies on the tests' import, as the sanitized harness runs it
    assert code_reward("```python\ndef root(x):\n    return math.sqrt(x)\n```", task) == 1.0


def test_the_original_format_keeps_its_setup():
    record = {"task_id": 1, "test_list": ["assert f() == 1"], "test_setup_code": "x = 1",
              "challenge_test_list": ["assert f() != 2"]}
    task = CodeTask.from_mbpp(record, challenge=True)
    assert (task.setup, task.asserts) == ("x = 1", ("assert f() == 1", "assert f() != 2"))


def test_challenge_tests_asked_of_a_record_without_them_are_refused_by_name():
    with pytest.raises(ValueError, match="challenge_test_list"):
        CodeTask.from_mbpp(SANITIZED, challenge=True)
