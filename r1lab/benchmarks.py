"""Benchmark problems: one `Problem` type for every source, and loaders for the public files.

R1 reports math reasoning on AIME 2024 and MATH-500 (shared/R1-FACTS.md, "Evaluation
protocol"); GSM8K is the usual small-model check. The files keep their own formats
(shared/data/CONVENTIONS.md), told apart by their fields:

* GSM8K: ``question``, ``answer`` = rationale ending in ``#### N``; the gold is the text
  after the last ``####`` with thousands commas removed;
* MATH-500 and AIME: ``problem``, ``answer`` (the final answer only);
* generic: ``prompt``, ``answer`` (e.g. a dump of the miniature world's held-out split,
  whose problems are `Problem` objects too).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One question with a rule-checkable answer, whatever its source."""

    id: str  # stable within its source (a record's own id, else its 0-based position)
    prompt: str  # the question text, without any instruction or chat template
    answer: str  # the gold final answer, as text ("18", "\\frac{1}{2}", "025")
    source: str  # where it came from, e.g. "gsm8k/test" or "world/held-out"


def load_problems(path: str | Path) -> list[Problem]:
    """All problems of a benchmark jsonl file, in file order (blank lines skipped).

    Raises FileNotFoundError for a missing file, ValueError for a directory and, naming the file and
    line, for a line that is not UTF-8, not a JSON object or has no known format.
    """
    path = check_jsonl_file(path, "data file")
    source = f"{path.resolve().parent.name}/{path.stem}"
    problems: list[Problem] = []
    for line_no, record in jsonl_objects(path):
        problems.append(_problem_from_record(record, len(problems), source, f"{path}:{line_no}"))
    if not problems:
        raise ValueError(f"{path}: no records")
    return problems


def check_jsonl_file(path: str | Path, what: str) -> Path:
    """`path` as a Path if it is a plain JSONL file, else FileNotFoundError ("`what` not found") or a
    ValueError for a directory or a gzip file, which would otherwise read as "not found" or "not valid
    UTF-8 (byte 0x8b ...)", hiding why."""
    path = Path(path)
    if path.is_dir():  # a benchmark's folder (shared/data/aime24) given for its file: "not found" misled
        files = sorted(p.name for p in path.glob("*.jsonl*"))
        raise ValueError(f"{path} is a directory, not a JSONL file" + (f"; it holds {', '.join(files)}" if files else ""))
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with path.open("rb") as head:
        if head.read(2) == b"\x1f\x8b":
            _refuse_gzip(path)
    return path


def _refuse_gzip(path: Path) -> None:
    """ValueError for a gzip file; for a code task (HumanEval ships as .jsonl.gz) the code-task error
    itself, as "give the decompressed file" sent the user to decompress it only to be refused again."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            record = json.loads(lines.readline())
    except (OSError, EOFError, ValueError, RecursionError):  # damaged or not JSONL inside: the plain advice
        record = None
    if isinstance(record, dict) and record.get("answer") is None:
        _check_not_code_task(record, f"{path} (gzip-compressed), line 1")
    raise ValueError(f"{path}: gzip-compressed; give the decompressed JSONL file")


def _check_not_code_task(record: dict[str, Any], where: str) -> None:
    if "test" in record or "test_list" in record:  # HumanEval, MBPP
        raise ValueError(f"{where}: a code task (fields {sorted(record)}), not a problem with a final answer; "
                         "code benchmarks are scored by running their tests (r1lab.rewards.code)")


def jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a JSONL file: read as bytes and decoded line
    by line (a bad byte is reported with its line), a UTF-8 byte-order mark (Windows editors)
    accepted; ValueError naming the file and line for a line that is not a JSON object."""
    with path.open("rb") as lines:
        for line_no, raw in enumerate(lines, start=1):
            line = decode_line(raw, f"{path}:{line_no}")
            if line_no == 1:
                line = line.removeprefix("\ufeff")
            if line.strip():
                yield line_no, read_json_object(line, path, line_no)


def decode_line(raw: bytes, where: str) -> str:
    """One line of a UTF-8 file, or a ValueError naming `where` (file:line) and the bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1} "
                         "of the line)") from None


def read_json_object(line: str, path: Path, line_no: int) -> dict[str, Any]:
    """One jsonl line as a dict, or a ValueError that names the file and line."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg})") from None
    except (ValueError, RecursionError) as err:  # an integer of > 4,300 digits; nesting too deep
        raise ValueError(f"{path}:{line_no}: not readable JSON ({str(err)[:80]})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
    return record


def _problem_from_record(record: dict[str, Any], position: int, source: str, where: str) -> Problem:
    """A `Problem` from one record, its format told by its fields."""
    own_id = record.get("unique_id", record.get("id"))
    problem_id = str(own_id) if own_id is not None else str(position)
    answer = record.get("answer")
    if isinstance(answer, int) and not isinstance(answer, bool):
        answer = str(answer)  # some AIME copies store the answer as a number
    if answer is None:
        _check_not_code_task(record, where)
    if not isinstance(answer, str):
        # a present answer of another type (0.5, null) was reported as missing, its name listed as present
        found = f"got {type(answer).__name__} {answer!r}" if "answer" in record else f"fields are {sorted(record)}"
        raise ValueError(f"{where}: needs a text (or integer) field 'answer'; {found}")
    if isinstance(record.get("problem"), str):  # MATH-500, AIME
        prompt = record["problem"]
    elif isinstance(record.get("question"), str) and "####" in answer:  # GSM8K
        prompt, answer = record["question"], gsm8k_gold(answer)
    elif isinstance(record.get("prompt"), str):  # generic
        prompt = record["prompt"]
    else:
        raise ValueError(f"{where}: unknown format: fields {sorted(record)}; expected "
                         "'question'+'answer' with '#### N' (GSM8K), 'problem'+'answer' (MATH/AIME) "
                         "or 'prompt'+'answer'")
    if not answer.strip():
        raise ValueError(f"{where}: empty gold answer")
    return Problem(id=problem_id, prompt=prompt, answer=answer.strip(), source=source)


def gsm8k_gold(rationale: str) -> str:
    """The gold of a GSM8K answer: after the last ``####``, commas removed (CONVENTIONS.md).

    >>> gsm8k_gold("2 + 3 = <<2+3=5>>5 boxes\\n#### 2,125")
    '2125'
    """
    return rationale.rsplit("####", 1)[-1].strip().replace(",", "")
