"""The code reward: extraction, the three test formats, the real data sets and an attack suite."""
from __future__ import annotations

import ast
import doctest
import gzip
import io
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import tokenize
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from scaling import assert_linear
from test_sandbox import sandbox_processes

from r1lab.rewards import code as code_module
from r1lab.rewards.code import CodeTask, build_jobs, code_reward, code_rewards, extract_code
from r1lab.rewards.sandbox import Sandbox

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROOT = os.geteuid() == 0
ADD = CodeTask(kind="humaneval", task_id="toy/add",
               prompt='def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
               test="def check(candidate):\n    assert candidate(2, 3) == 5\n"
                    "    assert candidate(-1, 1) == 0\n",
               entry_point="add", timeout_s=2.0)


def load(relative: str) -> list[dict]:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repo)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def humaneval():
    return load("humaneval/HumanEval.jsonl.gz")


@pytest.fixture(scope="module")
def mbpp():
    return load("mbpp/mbpp.jsonl")


def fenced(code: str) -> str:
    return f"<think>\nI will write it.\n</think>\n\n```python\n{code}\n```"


# ---------------------------------------------------------------- extraction and formats
def test_docstring_examples_hold():
    assert doctest.testmod(code_module).failed == 0


@pytest.mark.parametrize("completion, expected", [
    ("<think>```python\nx = 0\n```</think>```python\nx = 1\n```\n```py\nx = 2\n```", "x = 2"),
    ("<think>a</think><answer>```python\nx = 3\n```</answer> trailing", "x = 3"),
    ("```\nx = 4\n```", "x = 4"),  # an unlabelled fence counts as Python
    ("\n\n    return 5\n", "    return 5"),  # the answer itself, indentation kept
    ("```cpp\nint main() {}\n```", None),  # only another language
    ("<think>never closed ```python\nx = 6\n```", None),
    ("</think>   \n  ", None),
])
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


OLD_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)  # the regexes the linear versions replace
# a backtick fence's info string holds no backtick (CommonMark: ```python x``` is a code span), and
# a fence closes on a run at least as long as its own, opening a line or ending one
OLD_FENCE = re.compile(r"^[ \t]*(```+)[ \t]*([\w+.#-]*)[^\n`]*\n(.*?)(?:^[ \t]*\1|(?<!`)\1`*[ \t]*$)", re.S | re.M)


def test_extraction_matches_its_old_regexes_and_stays_linear():
    rng = random.Random(0)
    pieces = ["```", "python", "py", " ", "\t", "\n", "x = 1", "{.cls}", "-", "é", "`", "<answer>", "</answer>", "</think>"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 20)))
        found = OLD_ANSWER.findall(text)
        assert code_module.last_answer_block(text) == (found[-1] if found else None), text
        assert [found[1:] for found in code_module._FENCE.findall(text)] == OLD_FENCE.findall(text), text

    def run(k: int) -> None:
        stuck = ["<answer>" * k, "```python" + "x" * (k * 5 // 2)]  # 40,000: 43 s and ~4 s before
        # spaces or tabs after a fence that never closes: 6 s and ~1.5 s before the possessive `[ \t]*+`
        blank = ["```" + " " * k + "\nx = 1", "```python\nx = 1\n```\n```" + "\t" * (k // 2)]
        assert [extract_code(text) for text in stuck] == stuck
        assert [extract_code(text) for text in blank] == ["x = 1", "x = 1"]  # the first never closes

    assert_linear(run, 5_000)


@pytest.mark.parametrize("completion", [
    "<think>ok</think>\n```python\ndef add(a, b):\n    return a + b\n```\nOutput:\n```\n5\n```",  # not the output
    "<think>ok</think>\n1. The solution:\n   ```python\n   def add(a, b):\n       return a + b\n   ```\n",  # list item
    "<think>ok</think>\n```\ndef add(a, b):\n    return a + b\n```",  # untagged, and the only block
])
def test_extraction_takes_the_program_as_markdown_shows_it(completion):
    assert extract_code(completion) == "def add(a, b):\n    return a + b"


@pytest.mark.parametrize("completion, expected", [
    ("<think>ok</think>\n```python\ndef add(a, b):\n    return a + b\n", "def add(a, b):\n    return a + b"),
    ("<think>ok</think>\n```python\nx = 1\n```\nOutput:\n```\n1\n", "x = 1"),  # an open untagged block loses
    ("<think>ok</think>\n```\nx = 1\n```\n```py\n  x = 2\n", "  x = 2"),  # the last Python block, open
    ("<think>ok</think>\n```python\nx = 1\n```\n```python", "x = 1"),  # an opener with no code yet
    ("<think>ok</think>\n```python\nx = 1\n```\n```python\n\n", "x = 1"),
])
def test_a_final_fence_left_open_runs_to_the_end_of_the_answer(completion, expected):
    """A completion cut off (or never closed) after its opening fence was run whole, fence line
    and all: a SyntaxError, reward 0, though the code a reader sees is complete."""
    assert extract_code(completion) == expected


def test_an_unclosed_fence_is_scored_on_its_code(sandbox):
    assert code_reward("<think>ok</think>\n```python\ndef add(a, b):\n    return a + b\n", ADD,
                       sandbox=sandbox) == 1.0


def test_extraction_reads_the_current_turn_only():
    """Text after the end of the turn is not this answer (`turn_body`), as for the math reward."""
    later = "<|eos|>\n<|user|>hint\n<|assistant|>\n```python\ndef add(a, b):\n    return a + b\n```"
    assert extract_code("<think>ok</think>\nNo idea." + later) == "No idea."
    assert extract_code("<think>ok</think>\n```python\ndef add(a, b):\n    return a + b\n```<|eos|>```python\nx\n```") \
        == "def add(a, b):\n    return a + b"


def test_stdio_tasks_match_exactly_or_modulo_whitespace(sandbox):
    program = fenced("import sys\nn = int(input())\nprint(' '.join(str(i) for i in range(n)) + '  ')\n"
                     "sys.exit(0)")  # an early clean exit is fine here: the output is the test
    loose = CodeTask.from_stdio([("3\n", "0 1 2"), ("1\n", "0\n")])
    exact = CodeTask.from_stdio([("3\n", "0 1 2"), ("1\n", "0\n")], match="exact")
    wrong = CodeTask.from_stdio([("3\n", "0 1 2"), ("1\n", "1")])
    assert code_rewards([program] * 3, [loose, exact, wrong], sandbox=sandbox) == [1.0, 0.0, 0.0]
    assert code_reward(program, wrong, partial=True, sandbox=sandbox) == 0.5


def test_mbpp_setup_runs_after_the_code_and_challenge_tests_are_optional(sandbox):
    record = {"task_id": 1, "test_setup_code": "value = Box(2)",
              "test_list": ["assert double(value) == 4"], "challenge_test_list": ["assert False"]}
    code = fenced("class Box:\n    def __init__(self, v):\n        self.v = v\n"
                  "def double(box):\n    return box.v * 2")
    plain, hard = CodeTask.from_mbpp(record), CodeTask.from_mbpp(record, challenge=True)
    assert hard.asserts[-1] == "assert False"
    assert code_rewards([code, code], [plain, hard], sandbox=sandbox) == [1.0, 0.0]


def test_tasks_without_tests_are_rejected():
    with pytest.raises(ValueError):
        CodeTask(kind="mbpp")
    with pytest.raises(ValueError, match=r"kind must be one of \('humaneval', 'mbpp', 'stdio'\), got 'cobol'"):
        CodeTask(kind="cobol", asserts=("assert True",))  # it said "kind 'cobol' lacks its tests"


def test_an_unknown_stdio_match_mode_is_refused():
    """match="strict" (or a typo of "exact") was accepted and compared modulo whitespace."""
    with pytest.raises(ValueError, match="'exact' or 'whitespace', got 'strict'"):
        CodeTask.from_stdio([("", "1")], match="strict")


def test_tests_of_the_wrong_type_are_refused_by_name():
    """An int expected output scored every program 0 in exact mode (AttributeError in whitespace
    mode); asserts given as one str ran one 'assert' per character: a SyntaxError, always 0."""
    with pytest.raises(TypeError, match="StdioCase: expected must be a str, got 3"):
        CodeTask.from_stdio([("1 2\n", 3)], match="exact")
    with pytest.raises(TypeError, match="StdioCase: stdin must be a str, got 12"):
        CodeTask.from_stdio([(12, "12\n")])
    with pytest.raises(TypeError, match="asserts must be a tuple of str, got the str 'assert add"):
        CodeTask(kind="mbpp", asserts="assert add(2, 3) == 5")


def test_a_task_with_a_limit_the_sandbox_cannot_enforce_is_refused_when_built():
    """timeout_s=nan made code_rewards spin forever; memory_mb=-5 ran with no memory limit."""
    with pytest.raises(ValueError, match="timeout_s must be positive and finite, got nan"):
        CodeTask.from_stdio([("", "1")], timeout_s=float("nan"))
    with pytest.raises(ValueError, match="memory_mb must be at least 1, got -5"):
        CodeTask(kind="mbpp", asserts=("assert True",), memory_mb=-5)


@pytest.mark.parametrize("completion", ["    return None\n", "<think>not done"])
def test_a_raw_record_as_the_example_is_refused_by_name(humaneval, completion):
    """A HumanEval record passed as it is raised AttributeError: 'dict' has no 'timeout_s' (or 'task_id')."""
    with pytest.raises(TypeError, match=r"examples\[1\] is a dict, not a CodeTask: build it with CodeTask.from_humaneval"):
        code_rewards([completion] * 2, [ADD, humaneval[0]])


@pytest.mark.parametrize("completion", [
    None, 42, b"def add(a, b): return a + b", "", "```python\n", "\x00" * 10,
    "```python\ndef add(a, b):\n    return a + b\x00\n```", "def add(a, b):\n    return '\ud800'",
    "```python\n" + "(" * 10_000 + "\n```", "<think>" * 1000,
])
def test_a_reward_never_raises_on_model_text(sandbox, completion):
    assert code_reward(completion, ADD, sandbox=sandbox) == 0.0


def test_partial_credit_counts_each_check_of_humaneval_separately(sandbox):
    half = "    return 5\n"  # right for (2, 3), wrong for (-1, 1)
    assert code_reward(half, ADD, sandbox=sandbox) == 0.0
    assert code_reward(half, ADD, partial=True, sandbox=sandbox) == 0.5
    assert len(build_jobs("pass", ADD, partial=True)) == 2


def test_a_solutions_main_block_does_not_run_in_humaneval_and_mbpp_as_in_their_harnesses(sandbox):
    """Their harnesses exec the test program in a fresh namespace; a right answer with a demo
    that reads input or calls unittest.main() scored 0 when run as __main__."""
    demo = "    return a + b\n\nif __name__ == '__main__':\n    print(add(int(input()), 1))\n"
    assert code_reward(demo, ADD, sandbox=sandbox) == 1.0
    mbpp = CodeTask(kind="mbpp", task_id="toy/mbpp", asserts=("assert add(2, 3) == 5",), timeout_s=2.0)
    assert code_reward("def add(a, b):\n" + demo, mbpp, sandbox=sandbox) == 1.0
    stdio = CodeTask.from_stdio([("2\n", "3")])  # a stdin/stdout program is `python solution.py`
    assert code_reward("def add(a, b):\n" + demo, stdio, sandbox=sandbox) == 1.0


# ---------------------------------------------------------------- the real data sets
def off_by_one(source: str) -> str | None:
    """Add 1 to the first integer literal, else make the first comparison (non)strict."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    flips = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
    for wanted in ("int", "cmp"):
        for token in tokens:
            if wanted == "int" and token.type == tokenize.NUMBER and token.string.isdigit():
                new = str(int(token.string) + 1)
            elif wanted == "cmp" and token.type == tokenize.OP and token.string in flips:
                new = flips[token.string]
            else:
                continue
            lines = source.splitlines(keepends=True)
            (row, start), (_, end) = token.start, token.end
            lines[row - 1] = lines[row - 1][:start] + new + lines[row - 1][end:]
            return "".join(lines)
    return None


def plain_interpreter_passes(source: str, timeout_s: float) -> bool:
    """The oracle: the same program under a bare interpreter (trusted, mutated reference code)."""
    try:
        return subprocess.run([sys.executable, "-I", "-S", "-c", source], capture_output=True,
                              timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def test_humaneval_canonical_solutions_pass_and_return_none_fails(sandbox, humaneval):
    tasks = [CodeTask.from_humaneval(p, timeout_s=20.0) for p in humaneval]
    solutions = [p["canonical_solution"] for p in humaneval]
    rewards = code_rewards(solutions + ["    return None\n"] * len(tasks), tasks * 2, sandbox=sandbox)
    assert len(tasks) == 164
    assert [t.task_id for t, r in zip(tasks, rewards[:164]) if r != 1.0] == []
    assert [t.task_id for t, r in zip(tasks, rewards[164:]) if r != 0.0] == []


def test_humaneval_off_by_one_bugs_fail_exactly_when_a_plain_run_fails(sandbox, humaneval):
    mutants = [(CodeTask.from_humaneval(p), m) for p in humaneval
               if (m := off_by_one(p["canonical_solution"])) is not None]
    rewards = code_rewards([m for _, m in mutants], [t for t, _ in mutants], sandbox=sandbox)
    sources = [build_jobs(m, t)[0].source for t, m in mutants]
    with ThreadPoolExecutor(sandbox.max_workers) as pool:
        oracle = list(pool.map(lambda s: plain_interpreter_passes(s, 3.0), sources))
    disagreements = [t.task_id for (t, _), r, o in zip(mutants, rewards, oracle) if (r == 1.0) != o]
    caught = sum(r == 0.0 for r in rewards)
    print(f"off-by-one mutants: {len(mutants)} applied of 164, {caught} caught by the tests, "
          f"{len(mutants) - caught} behave the same under the tests (the plain run agrees)")
    assert disagreements == [] and (len(mutants), caught) == (133, 114)


def mbpp_stub(code: str, asserts: list[str]) -> str:
    """The reference with the body of the function the asserts call replaced by `return None`."""
    called = [node.func.id for text in asserts for node in ast.walk(ast.parse(text))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    with warnings.catch_warnings():  # some references have invalid escapes like '\d'
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(code)
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    target = next(functions[name] for name in called if name in functions)
    target.body = [ast.Return(ast.Constant(None))]
    return ast.unparse(tree)


def test_mbpp_reference_solutions_pass_and_return_none_fails(sandbox, mbpp):
    tasks = [CodeTask.from_mbpp(r, timeout_s=30.0) for r in mbpp]
    stubs = [mbpp_stub(r["code"], r["test_list"]) for r in mbpp]
    rewards = code_rewards([r["code"] for r in mbpp] + stubs, tasks * 2, sandbox=sandbox)
    assert len(tasks) == 974
    assert [t.task_id for t, r in zip(tasks, rewards[:974]) if r != 1.0] == []
    assert [t.task_id for t, r in zip(tasks, rewards[974:]) if r != 0.0] == []


def test_partial_credit_on_real_tasks(sandbox, humaneval):
    tasks = [CodeTask.from_humaneval(p, timeout_s=20.0) for p in humaneval[:20]]
    right = code_rewards([p["canonical_solution"] for p in humaneval[:20]], tasks, partial=True,
                         sandbox=sandbox)
    none = code_rewards(["    return None\n"] * 20, tasks, partial=True, sandbox=sandbox)
    assert right == [1.0] * 20
    assert none[12] == pytest.approx(1 / 3)  # HumanEval/12: longest([]) is None, 2 others are not
    assert sum(none) == none[12]


# ---------------------------------------------------------------- attacks

EARLY_EXITS = {
    "sys.exit(0) before the tests": "import sys\ndef add(a, b):\n    return a + b\nsys.exit(0)",
    "os._exit(0) inside the function": "def add(a, b):\n    import os\n    os._exit(0)",
    "SIGKILL to itself": "def add(a, b):\n    import os, signal\n    os.kill(os.getpid(), 9)",
    "raise SystemExit(0) in the checker": "def add(a, b):\n    raise SystemExit(0)",
    "dump every frame, then exit 0": (
        "import os, sys\nframe = sys._getframe()\nwhile frame:\n    print(frame.f_locals)\n"
        "    frame = frame.f_back\nos._exit(0)"),
}


@pytest.mark.parametrize("name", list(EARLY_EXITS))
def test_an_early_exit_0_scores_nothing(sandbox, name):
    assert code_reward(fenced(EARLY_EXITS[name]), ADD, sandbox=sandbox) == 0.0


def attack_suite(port: int, host_pids: list[int], canary: Path, home_canary: Path,
                 env_secret: str, pid_file: Path) -> dict[str, str]:
    """Each attack is a full answer to ADD that returns a + b only if the attack worked."""
    writes = [str(canary.parent / "new.txt"), "/usr/r1lab-pwned", f"/r1lab-pwned-{os.getpid()}",
              str(Path(__file__).resolve().parent / "r1lab-pwned.txt")]
    return {
        "infinite loop": "def add(a, b):\n    while True:\n        pass",
        "fork bomb": ("import os\ndef add(a, b):\n    while True:\n        try:\n"
                      "            os.fork()\n        except OSError:\n            pass"),
        "allocate 10 GB": "def add(a, b):\n    hog = bytearray(10 * 1024 ** 3)\n    return a + b",
        "print 1 GB": ("import sys\ndef add(a, b):\n    for _ in range(1 << 20):\n"
                       "        sys.stdout.write('x' * 1024)\n    return a + b"),
        "write outside the working directory": (
            f"def add(a, b):\n    done = 0\n    for path in {writes!r}:\n        try:\n"
            "            open(path, 'w').write('pwned')\n            done += 1\n"
            "        except OSError:\n            pass\n    return a + b if done else None"),
        "read the host's environment and home": (
            f"import os\ndef add(a, b):\n    found = {env_secret!r} in str(os.environ)\n"
            f"    for path in [{str(home_canary)!r}, os.path.expanduser('~/{home_canary.name}')]:\n"
            "        try:\n            found = found or 'host secret' in open(path).read()\n"
            "        except OSError:\n            pass\n    return a + b if found else None"),
        "open a network connection": (
            f"import socket\ndef add(a, b):\n    s = socket.create_connection(('127.0.0.1', {port}), 1)\n"
            "    s.sendall(b'leak')\n    return a + b"),
        "signal the parent and the host": (
            f"import os\ndef add(a, b):\n    hit = 0\n    for pid in {host_pids + [-1]!r}:\n"
            "        try:\n            os.kill(pid, 9)\n            hit += 1\n"
            "        except OSError:\n            pass\n    return a + b if hit else None"),
        "daemon that outlives the run": (
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            f"        time.sleep(0.5)\n        open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "        time.sleep(60)\n    os._exit(0)\ndef add(a, b):\n    return a + b\nos._exit(0)"),
        "delete files it can reach": (  # once, before the checks call add twice
            f"import os, shutil\ndeleted = 0\n"
            f"for remove, path in [(os.remove, {str(canary)!r}), (shutil.rmtree, {str(canary.parent)!r})]:\n"
            "    try:\n        remove(path)\n        deleted += 1\n"
            "    except OSError:\n        pass\ndef add(a, b):\n    return a + b if deleted else None"),
    }


@pytest.mark.skipif(not ROOT, reason="the full jail (and the leftover-process check) needs root")
def test_attack_suite_scores_zero_and_leaves_the_host_untouched(tmp_path, monkeypatch):
    tmp_path.chmod(0o777)
    canary, home_canary = tmp_path / "canary.txt", Path.home() / f".r1lab-attack-canary-{os.getpid()}"
    canary.write_text("keep me")
    canary.chmod(0o666)
    home_canary.write_text("host secret")
    monkeypatch.setenv("R1LAB_ATTACK_SECRET", "env-secret-4711")
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        start = time.monotonic()
        with Sandbox() as box:  # started with the secret in our environment
            attacks = attack_suite(listener.getsockname()[1], [os.getpid(), box.server_pid],
                                   canary, home_canary, "env-secret-4711", tmp_path / "daemon.pid")
            rewards = code_rewards([fenced(a) for a in attacks.values()], [ADD] * len(attacks),
                                   sandbox=box)
            assert code_reward(fenced("def add(a, b):\n    return a + b"),
                                                              ADD, sandbox=box) == 1.0
        elapsed = time.monotonic() - start
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
        home_canary.unlink()
    assert dict(zip(attacks, rewards)) == dict.fromkeys(attacks, 0.0)
    assert elapsed < 30
    assert canary.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
    assert not Path("/usr/r1lab-pwned").exists() and not Path(f"/r1lab-pwned-{os.getpid()}").exists()
    assert not (Path(__file__).resolve().parent / "r1lab-pwned.txt").exists()
    time.sleep(1.0)  # the daemon would have written its pid file by now
    assert not (tmp_path / "daemon.pid").exists()
    # this run's or orphaned only: counting every sandbox process on the machine failed whenever
    # another test run's sandbox was busy at the same time
    assert sandbox_processes() == []


# What code a completion in R1-Zero's answer tags runs.
SUM_STDIO = CodeTask.from_stdio([("1 2\n", "3\n")])
ADD_MBPP = CodeTask(kind="mbpp", asserts=("assert add(1, 2) == 3",))


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
    assert (code_reward(stdio, SUM_STDIO), code_reward(mbpp, ADD_MBPP)) == (1.0, 1.0)


# A byte-order mark at the start of the code, as CPython accepts in a file.
@pytest.mark.parametrize("completion", [
    "\ufeffdef add(a, b):\n    return a + b\n",
    "\ufeff```python\ndef add(a, b):\n    return a + b\n```",  # the fence is on the first line
    "<think>ok</think>```python\n\ufeffdef add(a, b):\n    return a + b\n```",
])
def test_a_leading_bom_is_not_code(completion):
    assert extract_code(completion) == "def add(a, b):\n    return a + b"


def test_a_completion_starting_with_a_bom_is_scored_on_its_code():
    assert code_reward("\ufeffdef add(a, b):\n    return a + b\n", ADD_MBPP) == 1.0  # SyntaxError, 0 before


# Which fenced blocks a completion's code is taken from.
ADD_SOURCE = "def add(a, b):\n    return a + b"


@pytest.mark.parametrize("completion, expected", [
    # CommonMark allows tilde fences; the whole answer (fence lines too) ran and scored 0
    (f"<think>ok</think>\n~~~python\n{ADD_SOURCE}\n~~~\n", ADD_SOURCE),
    (f"<think>ok</think>\n~~~\n{ADD_SOURCE}\n~~~\nDone.", ADD_SOURCE),
    (f"<think>ok</think>\n~~~python\n{ADD_SOURCE}\n", ADD_SOURCE),  # left open: runs to the end
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
    def run(k: int) -> None:
        open_tilde = "~~~python\n" + "```\n" * k  # backtick lines inside a block never closed
        texts = ["~~~python" + "x" * 5 * k, "~~~" + " " * 2 * k + "\nx = 1", open_tilde]
        assert [extract_code(text) for text in texts] == [texts[0], "x = 1", open_tilde[10:].rstrip()]

    assert_linear(run, 2_500)


# MBPP records in the sanitized format (test_imports, no test_setup_code).
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


# A fence tagged with a versioned Python name is Python.
@pytest.mark.parametrize("tag", ["python3.11", "Python3.12", "py3.10", "python3.9.1"])
def test_a_versioned_python_tag_is_python(tag):
    # it counted as another language: "only other languages", no code, reward 0
    assert extract_code(f"<think>ok</think>\n```{tag}\nx = 1\n```\n") == "x = 1"
    # and it wins over an untagged block after it (the output, not the program)
    assert extract_code(f"<think>ok</think>\n```{tag}\nx = 1\n```\n```\n1\n```\n") == "x = 1"


@pytest.mark.parametrize("tag", ["python2", "pyth", "python3.x", "cpp"])
def test_other_tags_are_not_python(tag):
    assert extract_code(f"<think>ok</think>\n```{tag}\nx = 1\n```\n") is None


# A line whose backticks close on it is a code span, not a fence (CommonMark).
@pytest.mark.parametrize("completion", [
    f"<think>ok</think>\n```python add(1, 2)``` gives 3. The code:\n```python\n{ADD_SOURCE}\n```\n",
    f"<think>ok</think>\n``` `add` ```\n\n```python\n{ADD_SOURCE}\n```\n",
    f"<think>ok</think>\n```py add```\n```python\n{ADD_SOURCE}\n",  # the block after it left open
])
def test_a_code_span_line_does_not_open_a_fence(completion):
    assert extract_code(completion) == ADD_SOURCE


def test_code_span_lines_stay_linear():
    def run(k: int) -> None:
        assert extract_code("```python x```\n" * k + "```python\nx = 1\n```\n") == "x = 1"

    assert_linear(run, 2_500)


# A fence of more than three backticks or tildes closes only on a run at least as long.
@pytest.mark.parametrize("completion, expected", [
    # ```` wraps text holding ``` lines; it was read as ``` with an info string "`python"
    ("<think>ok</think>\n````python\ns = \'\'\'\n```\n\'\'\'\n````\n", "s = \'\'\'\n```\n\'\'\'"),
    # Markdown shown inside ```` is not the program: the Python block after it is
    ("<think>ok</think>\n````markdown\n```python\nx = 1\n```\n````\n```python\nx = 2\n```\n", "x = 2"),
    ("<think>ok</think>\n````markdown\n```python\nx = 1\n```\n````\n", None),  # only Markdown
    ("<think>ok</think>\n~~~~python\nx = 1\n~~~\ny = 2\n~~~~\n", "x = 1\n~~~\ny = 2"),
    ("<think>ok</think>\n````python\nx = 1\n```\ny = 2\n", "x = 1\n```\ny = 2"),  # left open
    ("<think>ok</think>\n```python\nx = 1\n`````\nDone.", "x = 1"),  # a longer run closes ```
])
def test_a_longer_fence_closes_only_on_a_run_as_long(completion, expected):
    assert extract_code(completion) == expected


def test_longer_fences_stay_linear():
    def run(k: int) -> None:
        inner = "````python\n" + "```\n" * k  # short runs inside a block never closed
        wide = "`" * 2 * k + "\n" + ("`" * (2 * k - 1) + "\n") * 4 + "x"  # runs one short of its close
        assert [extract_code(text) for text in (inner, wide)] == [inner[11:].rstrip(), wide[2 * k + 1:]]

    assert_linear(run, 12_500)


# a dangling decorator at the end of the code cannot wrap the test's check
@pytest.mark.parametrize("tail", ["@lambda check: lambda candidate: None",
                                  "@lambda f: (lambda *a: None)\n# the tests follow"])
def test_a_trailing_decorator_cannot_disarm_check(sandbox, tail):
    assert code_reward(fenced(f"    return None\n\n{tail}"), ADD, sandbox=sandbox) == 0.0
    assert code_reward(fenced(f"    return a + b\n\n{tail}"), ADD, sandbox=sandbox) == 0.0
    assert code_reward(fenced("    return a + b"), ADD, sandbox=sandbox) == 1.0


# blanks between </think> and text on its line are not indentation, as after <answer>
@pytest.mark.parametrize("completion, task", [
    ("<think>t</think> ```python\n    return a + b\n```", ADD),  # a space was shaved off every line
    ("<think>t</think> def add(a, b): return a + b", ADD_MBPP),  # an IndentationError before
])
def test_blanks_after_the_think_tag_are_not_indentation(sandbox, completion, task):
    assert code_reward(completion, task, sandbox=sandbox) == 1.0


# a failed run's debug log names the error, so a wrong answer is told from broken code
def test_a_failed_run_logs_its_error(sandbox, caplog):
    with caplog.at_level("DEBUG", logger="r1lab.rewards.code"):
        rewards = code_rewards(["    return 0\n", "    return a +\n"], [ADD, ADD], sandbox=sandbox)
    assert rewards == [0.0, 0.0]
    wrong, broken = [r.getMessage() for r in caplog.records if "toy/add" in r.getMessage()]
    assert wrong.endswith("failed exit code 1 AssertionError")
    assert broken.startswith("completion 1 ") and "SyntaxError" in broken


# A made-up new turn or question after the reply ends it, as for the format and math rewards, but
# text inside a fenced block is code: a "User:" string, a "\n\nQ:" in a docstring or `class User:`
# there does not end it; with no fence at all, only a turn marker opening a line ends the code.
ADD_BODY = "def add(a, b):\n    return a + b"
MADE_UP_CODE_TURN = "\nUser: now subtract\nAssistant:\n```python\ndef add(a, b):\n    return a - b\n```"


@pytest.mark.parametrize("completion, expected", [
    (fenced(ADD_BODY) + MADE_UP_CODE_TURN, ADD_BODY),
    (fenced(ADD_BODY) + " Done. User: thanks! Assistant: <think>b</think> def add(a, b): return 0", ADD_BODY),
    (fenced(ADD_BODY) + "\n\nQ: now subtract\n```python\ndef sub(a, b):\n    return a - b\n```", ADD_BODY),
    ("<think>a</think>\n" + ADD_BODY + "\nUser: more\nAssistant: <think>b</think>\ndef add(a, b): return 0",
     ADD_BODY),  # no fence: a turn opening a line still ends the code
])
def test_a_made_up_turn_after_the_code_is_not_graded(completion, expected):
    assert extract_code(completion) == expected


@pytest.mark.parametrize("code", [
    'def greet():\n    """Say hi.\n\nQ: who?\n\nProblem: none"""\n    return "User: hi, Assistant: ok"',
    "class User:\n    name = 'a'\n# Assistant: the helper\nUser: type = object",
])
def test_turn_markers_inside_code_are_code(code):
    assert extract_code(fenced(code)) == code
    assert extract_code(f"```python\n{code}\n```\nUser: thanks") == code
    assert extract_code("<think>a</think>\n~~~~python\n" + code) == code  # a block never closed


def test_with_no_fence_only_a_turn_opening_a_line_ends_the_code():
    code = "class User:\n    name = 'a'  # User: its name\nprint('Assistant: hi')"
    assert extract_code(code) == code
    assert extract_code(code + "\nUser: thanks\nAssistant: class User: pass") == code


def test_a_made_up_turn_cannot_replace_the_graded_code(sandbox):
    right, wrong = fenced("    return a + b"), fenced("    return a - b")
    assert code_reward(right + MADE_UP_CODE_TURN.replace("def add(a, b):\n", ""), ADD, sandbox=sandbox) == 1.0
    assert code_reward(wrong + "\nUser: fix it\nAssistant:\n```python\n    return a + b\n```", ADD,
                       sandbox=sandbox) == 0.0


# finding the reply's end outside code blocks is linear: every block, code span and marker is read once
def test_finding_the_end_of_the_reply_is_linear():
    def run(k: int) -> None:
        text = "```python\nx = 'User: a'\n```\nso: ```py x```\n" * k + "Q: a User: b " * k  # 10,000: ~560 KB
        assert extract_code(text) == "x = 'User: a'"

    assert_linear(run, 1_250)


# A block that no fence line closes ends at a line ending in a run as long as its opener's, as
# models write it; without one it still runs to the end of the answer.
@pytest.mark.parametrize("completion, expected", [
    (f"<think>ok</think>\n```python\n{ADD_SOURCE}```", ADD_SOURCE),
    (f"<think>ok</think>\n```python\n{ADD_SOURCE}```  \nThat adds them.", ADD_SOURCE),
    (f"<think>ok</think>\n~~~python\n{ADD_SOURCE}~~~\nDone.", ADD_SOURCE),
    ("<think>ok</think>\n````python\nx = 1```\ny = 2````\n", "x = 1```\ny = 2"),  # too short a run: code
    (f"<think>ok</think>\n```python\n{ADD_SOURCE}```\nUser: and now?\nAssistant: ```python\nx = 2\n```",
     ADD_SOURCE),  # the made-up turn after the block is not this answer
    ("```python\r\ndef f(x):\r\n    return x + 1```\r\nDone.", "def f(x):\r\n    return x + 1"),  # Windows line ends
])
def test_a_run_ending_a_code_line_closes_an_open_block(completion, expected):
    assert extract_code(completion) == expected


def test_a_block_closed_at_a_line_end_is_scored_on_its_code(sandbox):
    assert code_reward(f"<think>ok</think>\n```python\n{ADD_SOURCE}```", ADD_MBPP, sandbox=sandbox) == 1.0


def test_line_end_closes_stay_linear():
    def run(k: int) -> None:
        long_run = "```python\nx = 1  # " + "`" * k + "x"  # one run, not a close: no try per backtick
        assert extract_code(long_run) == long_run[10:]

    assert_linear(run, 20_000)
