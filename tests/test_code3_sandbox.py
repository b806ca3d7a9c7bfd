"""Review helper code3: the code reward and the sandbox against odd but legitimate programs."""
from __future__ import annotations

import pytest

from r1lab.rewards.code import CodeTask, code_reward
from r1lab.rewards.sandbox import Sandbox, execute

ADD = CodeTask(kind="mbpp", asserts=("assert add(1, 2) == 3", "assert add(0, 0) == 0"))
SUM_STDIO = CodeTask.from_stdio([("1 2\n", "3\n"), ("5 7\n", "12\n")], match="exact")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(max_workers=1) as box:
        yield box


@pytest.mark.parametrize("program", [
    "import os\nwith open(1, 'w') as out:\n    out.write(str(sum(map(int, input().split()))) + '\\n')\n",
    "import os\nout = os.fdopen(1, 'w')\nout.write(str(sum(map(int, input().split()))) + '\\n')\nout.close()\n",
])
def test_a_stdio_program_that_closes_its_stdout_file_descriptor_passes(sandbox, program):
    """`with open(1, 'w')` is a fast-output idiom; closing fd 1 leaves `python solution.py` exiting 0
    with its output written, but the sandbox then failed to write its end-of-run secret to fd 1,
    raised, and exited 1: a correct program scored 0."""
    assert code_reward(program, SUM_STDIO, sandbox=sandbox) == 1.0


@pytest.mark.parametrize("silence", [
    "import os\nos.close(1)",
    "import os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)",
])
def test_a_passing_program_that_closes_or_redirects_fd_1_still_passes(sandbox, silence):
    """The end-of-run proof went through fd 1, so a program whose stdout was closed or sent to
    /dev/null (to silence prints) failed tests it passed."""
    program = f"def add(a, b):\n    return a + b\n{silence}\n"
    assert code_reward(program, ADD, sandbox=sandbox) == 1.0
    wrong = f"def add(a, b):\n    return 0\n{silence}\n"
    assert code_reward(wrong, ADD, sandbox=sandbox) == 0.0


@pytest.mark.parametrize("early", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_an_early_exit_after_silencing_stdout_still_fails(sandbox, early):
    program = f"def add(a, b):\n    return 0\nimport os\nos.close(1)\n{early}\n"
    assert code_reward(program, ADD, sandbox=sandbox) == 0.0


@pytest.mark.parametrize("opened", ["open(1, 'w')", "__import__('os').fdopen(1, 'w')"])
def test_a_file_on_fd_1_left_open_is_flushed_at_exit_as_in_python(sandbox, opened):
    """CPython's finalisation releases the program's globals, so a file object it never closed is
    flushed; the sandbox ended with os._exit and dropped what it buffered: no output, score 0."""
    program = f"out = {opened}\nout.write(str(sum(map(int, input().split()))) + '\\n')\n"
    assert code_reward(program, SUM_STDIO, sandbox=sandbox) == 1.0


def test_the_left_open_file_is_flushed_after_sys_stdout_as_in_python(sandbox):
    result = execute("f = open(1, 'w')\nf.write('a\\n')\nprint('b')\n", sandbox=sandbox)
    assert (result.status, result.stdout) == ("passed", "b\na\n")  # what `python -c` prints
