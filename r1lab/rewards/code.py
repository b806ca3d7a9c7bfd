"""Code reward: run the program a completion contains against its task's tests, in the sandbox.

Contract, like every r1lab reward: `(completion: str, example) -> float`, and a reward never raises
on model text; text without usable code scores 0 (the reason is logged at debug level).

- Extraction (`extract_code`): the reply is the turn up to a made-up new turn or question (the format
  rewards' `reply_body`), where text inside a fenced block is code and never ends it; in a completion
  with no fence the whole text is code, and only a turn marker at the start of a line ends it. The
  answer is what follows the reply's last `</think>` (inside `<answer>`
  tags if there are any, less the blanks after the tag on its line); the code is the last fenced
  Python block of the answer (``` or ~~~, or longer: each closed only by as long a run of its own
  kind, on a line of its own or, as models write it, at the end of a code line: `return x```; a final
  fence left open runs to the end of the answer, as Markdown reads it), else the answer.
- Test formats (`CodeTask.kind`): "humaneval" runs `prompt + code + test + check(entry_point)`, a
  top-level `pass` between code and test (so no dangling decorator in the code can wrap `check`);
  "mbpp" runs `code + test_setup_code (or test_imports) + asserts` (setup after the code: tasks 367
  and 927 need it);
  "stdio" feeds each case's input to the program and compares its output, exactly or with
  whitespace normalised.
- Reward: 1.0 if every test passes (the DeepSeek-R1 rule), else 0.0; with `partial=True`, the
  fraction of tests passed, each test in its own sandbox run (HumanEval's `check` is split into one
  variant per top-level assert), so one test's result cannot leak into another's.
- Proof that the tests ran: a run passes only if the sandbox saw the program reach its end, which
  for HumanEval/MBPP is after the last check; `sys.exit(0)`, `os._exit(0)` or killing the process
  before that scores 0. For stdin/stdout tasks an early clean exit is fine: the output is the test.
- Not caught: a program that games the checks themselves (e.g. returns an object equal to
  everything) passes, as it would under the reference harnesses.
"""
from __future__ import annotations

import ast
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from r1lab.rewards.format import NEW_QUESTION, NEW_TURN, last_answer_block, reply_body, turn_body
from r1lab.rewards.sandbox import ExecutionResult, Job, Limits, Sandbox, default_sandbox

logger = logging.getLogger(__name__)

Kind = Literal["humaneval", "mbpp", "stdio"]
# A fence is a run of 3+ backticks or tildes (CommonMark); a block closes only on a run of its own
# character at least as long (a ```` block may hold ``` lines: models write it to wrap Markdown).
# A backtick fence's info string holds no backtick: a line like ```python x``` is a code span.
# The info string's rest starts with a non-language character: a bare `[^\n]*` after the language
# could take its characters too, and on a fence line with no newline the backtracking is quadratic.
# Groups: the fence's indentation (a fence inside a list item), its run, the language, the body.
# The run of spaces after the fence is possessive (`*+`): else, on a fence that never
# closes, the regex tries every split of it with the info string's rest (quadratic in its length).
_FENCE_START = re.compile(r"^[ \t]*(```|~~~)", re.M)  # where a block may open (group: its kind)
_INFO_REST = {"```": r"[^\w+.#\-\n`][^\n`]*+", "~~~": r"[^\w+.#\-\n][^\n]*+"}
_OPEN_FENCES = {mark: re.compile(rf"^([ \t]*)({mark[0]}{{3,}}+)[ \t]*+([\w+.#-]*)(?:{rest})?\n", re.M)
                for mark, rest in _INFO_REST.items()}  # an opening fence line: (indent, run, language)
# A block closes on a line that opens with its run, or longer; or, as models write it, on a line that
# ends in one (`    return x````): Markdown would run that block on to the end of the text, and the
# code would keep the backticks and fail. A Python line ends in such a run only inside a string.
# The run ending a line is no longer one's tail (`(?<!`)`): one try per run, not one per character.
# `$` matches before "\n" only: a "\r\n" line end (`return x```\r\n`) takes its "\r" first.
_FENCES = {mark: re.compile(opener.pattern + rf"(.*?)(?:^[ \t]*\2|(?<!{mark[0]})\2{mark[0]}*+[ \t]*+\r?$)", re.S | re.M)
           for mark, opener in _OPEN_FENCES.items()}  # a closed block: (indent, run, language, body)
_FENCE = _FENCES["```"]
# python, py, python3, py3, and with a version (python3.11): an untagged fence counts only when none is tagged
_PYTHON_FENCE = re.compile(r"(?:python|py)(?:3(?:\.\d+)*)?", re.I)
# HumanEval / MBPP programs run under this __name__, not "__main__", as their harnesses' exec does
HARNESS_MODULE = "solution"
_BOM = "\ufeff"  # compile() refuses it in a str, though CPython accepts it at the start of a file
# `reply_body`'s ends, only at the start of a line: in code with no fence around it, `class User:`, a
# `# Q: ...` comment or print("Assistant: hi") are code, while a made-up turn after code opens a line
_BARE_REPLY_END = re.compile(rf"^{NEW_TURN.pattern}|{NEW_QUESTION.pattern}", re.M)


@dataclass(frozen=True, kw_only=True)
class StdioCase:
    """One competitive-programming test: the program's standard input and the expected output."""

    stdin: str
    expected: str

    def __post_init__(self) -> None:  # an int expected output scored 0 for every program ("3\n" != 3)
        for name in ("stdin", "expected"):
            if not isinstance(value := getattr(self, name), str):
                raise TypeError(f"StdioCase: {name} must be a str, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class CodeTask:
    """What a completion's code is tested against. Build with the `from_*` constructors."""

    kind: Kind
    task_id: str = ""
    prompt: str = ""  # humaneval: the signature and docstring the code continues
    test: str = ""  # humaneval: defines check(candidate)
    entry_point: str = ""  # humaneval
    setup: str = ""  # mbpp: test_setup_code, run after the code
    asserts: tuple[str, ...] = ()  # mbpp
    cases: tuple[StdioCase, ...] = ()  # stdio
    match: Literal["exact", "whitespace"] = "whitespace"  # stdio
    timeout_s: float = 3.0  # per sandbox run
    memory_mb: int = 1024

    def __post_init__(self) -> None:
        needs = {"humaneval": self.test and self.entry_point, "mbpp": self.asserts,
                 "stdio": self.cases}
        if self.kind not in needs:
            raise ValueError(f"CodeTask {self.task_id!r}: kind must be one of {tuple(needs)}, got {self.kind!r}")
        if not needs[self.kind]:
            raise ValueError(f"CodeTask {self.task_id!r}: kind {self.kind!r} lacks its tests")
        if isinstance(self.asserts, str):  # read as one assert per character: SyntaxError, always 0
            raise TypeError(f"CodeTask {self.task_id!r}: asserts must be a tuple of str, got the str {self.asserts!r}")
        if self.match not in ("exact", "whitespace"):  # any other value was read as "whitespace"
            raise ValueError(f"CodeTask {self.task_id!r}: match must be 'exact' or 'whitespace', got {self.match!r}")
        Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)  # a bad limit is refused here, not mid-batch

    @classmethod
    def from_humaneval(cls, record: Mapping[str, Any], *, timeout_s: float = 3.0) -> CodeTask:
        """From a HumanEval record (task_id, prompt, test, entry_point)."""
        return cls(kind="humaneval", task_id=str(record["task_id"]), prompt=record["prompt"],
                   test=record["test"], entry_point=record["entry_point"], timeout_s=timeout_s)

    @classmethod
    def from_mbpp(cls, record: Mapping[str, Any], *, challenge: bool = False,
                  timeout_s: float = 10.0) -> CodeTask:
        """From an MBPP record, original (test_setup_code) or sanitized (test_imports, run as setup);
        `challenge` adds challenge_test_list, which only the original has. Task 123 needs ~4 s."""
        if challenge and "challenge_test_list" not in record:
            raise ValueError(f"MBPP task {record['task_id']!r} has no challenge_test_list (sanitized format?)")
        asserts = list(record["test_list"]) + (list(record["challenge_test_list"]) if challenge else [])
        setup = [*record.get("test_imports", ()), record.get("test_setup_code", "")]
        return cls(kind="mbpp", task_id=str(record["task_id"]), setup="\n".join(filter(None, setup)),
                   asserts=tuple(asserts), timeout_s=timeout_s)

    @classmethod
    def from_stdio(cls, cases: Sequence[tuple[str, str]], *, task_id: str = "",
                   match: Literal["exact", "whitespace"] = "whitespace",
                   timeout_s: float = 3.0) -> CodeTask:
        """From (stdin, expected stdout) pairs."""
        return cls(kind="stdio", task_id=task_id, match=match, timeout_s=timeout_s,
                   cases=tuple(StdioCase(stdin=i, expected=o) for i, o in cases))


def extract_code(completion: str) -> str | None:
    """The code in a completion, or None if it has none.

    >>> extract_code("<think>try ```python\\nx = 0\\n```</think>Final:\\n```python\\nx = 1\\n```")
    'x = 1'
    >>> extract_code("    return a + b\\n")  # no fence: the answer itself, indentation kept
    '    return a + b'
    >>> extract_code("<think>still thinking...") is None
    True

    Only the reply counts (`_reply`: a made-up turn after it is not this answer); the last block
    tagged as Python wins over untagged ones (a trailing "Output:" block is not the program); a
    fence indented inside a list item loses that indentation, as Markdown reads it.
    """
    completion = _reply(completion)
    thought = "</think>" in completion
    if thought:
        answer = completion.rsplit("</think>", 1)[1]
    elif "<think>" in completion:
        return None  # never finished thinking: no answer
    else:
        answer = completion
    tagged = last_answer_block(answer)
    answer = answer if tagged is None else tagged
    # R1's template writes `</think> <answer> answer here </answer>`: blanks between a tag and text
    # on its own line separate them; they are not the code's (or a fence's) indentation. A bare
    # completion keeps its leading blanks: they indent a HumanEval body that continues the prompt
    if thought or tagged is not None:
        answer = re.sub(r"\A[ \t]+(?=\S)", "", answer)
    # a byte-order mark opening the text (or a block) is no character of it, as CPython reads a file
    answer = answer.removeprefix(_BOM)
    fences = _fences(answer)  # (indent, language, body)
    if fences:
        python = [f for f in fences if _PYTHON_FENCE.fullmatch(f[1])] or [f for f in fences if not f[1]]
        if not python:
            return None  # only other languages
        indent, _, answer = python[-1]
        if indent:  # the fence's own indentation is not the code's
            answer = re.sub(rf"(?m)^[ \t]{{0,{len(indent)}}}", "", answer)
    code = re.sub(r"\A(?:[ \t]*\r?\n)+", "", answer.removeprefix(_BOM)).rstrip()
    return code or None


def _reply(completion: str) -> str:
    """The turn up to its end as `reply_body` reads it, except inside fenced blocks: a ``User:``
    string or a ``\\n\\nQ:`` in a docstring there is code. A turn with no fence is code as a whole
    (a HumanEval body): there only a marker opening a line ends it (`_BARE_REPLY_END`).

    >>> _reply("```python\\nprint('User: hi')\\n```\\nUser: more?\\nAssistant: ```python\\nx = 2\\n```")
    "```python\\nprint('User: hi')\\n```\\n"
    """
    body = turn_body(completion)
    if _FENCE_START.search(body) is None:
        return _BARE_REPLY_END.split(body, maxsplit=1)[0]
    at = 0
    while True:  # prose (read as `reply_body` reads it) up to the next fence, then that block skipped
        start = _FENCE_START.search(body, at)
        prose = body[at:len(body) if start is None else start.start()]
        if len(end := reply_body(prose)) < len(prose):
            return body[:at + len(end)]
        if start is None:
            return body
        block = _FENCES[start.group(1)].match(body, start.start())
        if block is not None:
            at = block.end()
        elif _OPEN_FENCES[start.group(1)].match(body, start.start()) is not None:
            return body  # a block never closed runs to the end of the turn, as Markdown reads it
        else:
            at = start.end()  # no block opens here (a code span on the line): read on as prose


def _fences(answer: str) -> list[tuple[str, str, str]]:
    """The fenced blocks of `answer`, plus a last one left open (a completion cut off, or one that
    never wrote the closing fence): as Markdown reads it, that block runs to the end of the text."""
    fences: list[tuple[str, str, str]] = []
    at = 0
    while (start := _FENCE_START.search(answer, at)) is not None:
        mark = start.group(1)
        block = _FENCES[mark].match(answer, start.start())
        if block is not None:
            fences.append(block.group(1, 3, 4))
            at = block.end()
            continue
        opener = _OPEN_FENCES[mark].match(answer, start.start())
        if opener is None:  # no fence (a code span on the line, or no newline): read on below it
            at = answer.find("\n", start.end()) + 1
            if at == 0:
                break
            continue
        # no fence of its kind closes it: as Markdown reads it, the rest of the text is its body
        if answer[opener.end():].strip():  # cut off at its opening: no block yet
            fences.append((*opener.group(1, 3), answer[opener.end():]))
        break
    return fences


def build_jobs(code: str, task: CodeTask, *, partial: bool = False) -> list[Job]:
    """The sandbox runs that test `code`: one, or one per test with `partial` (and for stdio)."""
    limits = Limits(timeout_s=task.timeout_s, memory_mb=task.memory_mb)
    if task.kind == "humaneval":
        tests = _split_check(task.test) if partial else [task.test]
        # `pass` at the top level ends the solution: a trailing decorator (`@lambda f: None`) would
        # else decorate the test's `def check` and disarm it (100 of 164 HumanEval tests open with it)
        return [Job(source=f"{task.prompt}{code}\npass\n{test}\ncheck({task.entry_point})\n", limits=limits,
                    module=HARNESS_MODULE) for test in tests]
    if task.kind == "mbpp":
        groups = [[a] for a in task.asserts] if partial else [list(task.asserts)]
        return [Job(source="\n".join([code, task.setup, *group]) + "\n", limits=limits, module=HARNESS_MODULE)
                for group in groups]
    return [Job(source=code + "\n", stdin=case.stdin, limits=limits) for case in task.cases]


def run_passed(result: ExecutionResult, task: CodeTask, case_index: int = 0) -> bool:
    """Did one sandbox run pass? Assert-style tests must reach their end; stdio must match."""
    if task.kind != "stdio":
        return result.status == "passed"
    expected = task.cases[case_index].expected
    return result.exited_cleanly and outputs_match(result.stdout, expected, task.match)


def outputs_match(actual: str, expected: str, match: Literal["exact", "whitespace"]) -> bool:
    """Exact: identical strings. Whitespace: same lines after collapsing runs of blanks and
    dropping blank lines at either end.

    >>> outputs_match("1  2 \\n3\\n\\n", "1 2\\n3", "whitespace"), outputs_match("1 2\\n", "1 2", "exact")
    (True, False)
    """
    if match == "exact":
        return actual == expected
    normalise = lambda text: [" ".join(line.split()) for line in text.strip().splitlines()]  # noqa: E731
    return normalise(actual) == normalise(expected)


def code_rewards(completions: Sequence[str], examples: Sequence[CodeTask], *,
                 partial: bool = False, sandbox: Sandbox | None = None) -> list[float]:
    """Score many completions at once (an RL group) through the sandbox's process pool."""
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
    jobs: list[Job] = []
    owners: list[tuple[int, int]] = []  # (completion index, test index) for each job
    for index, (completion, task) in enumerate(zip(completions, examples)):
        if not isinstance(task, CodeTask):  # a raw record raised AttributeError 'timeout_s' or 'task_id'
            raise TypeError(f"examples[{index}] is a {type(task).__name__}, not a CodeTask: build it "
                            "with CodeTask.from_humaneval, from_mbpp or from_stdio")
        code = extract_code(completion) if isinstance(completion, str) else None
        if code is None:
            logger.debug("completion %d (task %s): no code found, reward 0", index, task.task_id)
            continue
        built = build_jobs(code, task, partial=partial)
        jobs += built
        owners += [(index, test) for test in range(len(built))]
    results = (sandbox or default_sandbox()).map(jobs)
    passed = [0] * len(completions)
    totals = [0] * len(completions)
    for (index, test), result in zip(owners, results):
        totals[index] += 1
        if run_passed(result, examples[index], test):
            passed[index] += 1
        else:
            # the error's last line (AssertionError, SyntaxError: ...) tells a wrong answer from broken code
            error = result.stderr.rstrip().rpartition("\n")[2][-200:]
            logger.debug("completion %d (task %s) test %d: %s %s %s", index,
                         examples[index].task_id, test, result.status, result.detail, error)
    return [(p / t if partial else float(p == t)) if t else 0.0 for p, t in zip(passed, totals)]


def code_reward(completion: str, example: CodeTask, *, partial: bool = False,
                sandbox: Sandbox | None = None) -> float:
    """Reward for one completion: 1.0 if its code passes every test of `example`, else 0.0.

    >>> task = CodeTask(kind="mbpp", asserts=("assert add(2, 3) == 5", "assert add(0, 0) == 0"))
    >>> code_reward("<think>easy</think>```python\\ndef add(a, b):\\n    return a + b\\n```", task)
    1.0
    >>> code_reward("def add(a, b):\\n    return 5", task), code_reward("def add(a, b):\\n    return 5",
    ...     task, partial=True)
    (0.0, 0.5)
    """
    return code_rewards([completion], [example], partial=partial, sandbox=sandbox)[0]


def _split_check(test: str) -> list[str]:
    """HumanEval's test with `check` cut to one top-level assert per variant (others kept)."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return [test]
    check = next((node for node in tree.body
                  if isinstance(node, ast.FunctionDef) and node.name == "check"), None)
    if check is None:
        return [test]
    body = check.body
    asserts = [i for i, stmt in enumerate(body)
               if isinstance(stmt, ast.Assert) and not isinstance(stmt.test, ast.Constant)]
    if len(asserts) < 2:
        return [test]
    variants = []
    for keep in asserts:
        check.body = [stmt for i, stmt in enumerate(body) if i == keep or i not in asserts]
        variants.append(ast.unparse(tree))
    check.body = body
    return variants
