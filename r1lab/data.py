"""Supervised chat data on disk: one JSON object per line, ``prompt``, ``response``, optional ``system``.

Every SFT-shaped dataset r1lab writes or reads goes through here: the cold-start set (R1 §2.3.1),
the rejection-sampled set (R1 §2.3.3) and a user's own file for `r1lab sft`. Any other fields of
a record (provenance: source checkpoint, prompt id, filters passed, ...) are kept in ``meta``
and written back as top-level fields, so a dataset stays one flat, greppable JSONL file.

A response in R1's output format is ``<think>reasoning</think>`` followed by a summary
(R1 §2.3.1); nothing here enforces it, the builders of each dataset do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1lab.benchmarks import jsonl_objects
from r1lab.tokenizer import find_control_token

_FIELDS = ("prompt", "response", "system")


@dataclass(frozen=True, kw_only=True)
class SFTExample:
    """One supervised turn: the user's message, the assistant's reply, an optional system text."""

    prompt: str
    response: str
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # any other fields: provenance, kind, ids

    def __post_init__(self) -> None:
        # meta is written as top-level fields: a "prompt" in it would silently replace the real one
        # in the file, so a builder's mistake is refused here rather than written into a dataset
        clash = sorted(set(self.meta) & set(_FIELDS))
        if clash:
            raise ValueError(f"meta must not hold the example's own fields {clash}: they would replace "
                             "them when the example is written")

    def messages(self) -> list[dict[str, str]]:
        """The chat messages, for `Tokenizer.apply_chat_template` (the response last)."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, {"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.response}]

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"prompt": self.prompt, "response": self.response}
        if self.system is not None:
            record["system"] = self.system
        return {**record, **self.meta}


def example_from_record(record: Any, where: str) -> SFTExample:
    """An `SFTExample` from a parsed JSON line; ValueError naming ``where`` (file:line) if malformed."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in ("prompt", "response"):
        value = record.get(name)
        if name not in record:
            raise ValueError(f"{where}: needs a text field {name!r}; fields are {sorted(record)}")
        if not isinstance(value, str):  # present but not text: listing it among the fields read as missing
            raise ValueError(f"{where}: field {name!r} must be text, got {type(value).__name__} {value!r:.40}")
    system = record.get("system")
    if system is not None and not isinstance(system, str):
        raise ValueError(f"{where}: field 'system' must be text or absent, got {type(system).__name__}")
    if not record["response"].strip():
        raise ValueError(f"{where}: empty 'response'")
    for name in _FIELDS:
        _check_text(record.get(name), name, where)
    meta = {k: v for k, v in record.items() if k not in _FIELDS}
    _check_meta(meta, where)
    return SFTExample(prompt=record["prompt"], response=record["response"], system=system, meta=meta)


def _check_text(text: str | None, name: str, where: str) -> None:
    """Text the tokenizer can take as it is: no lone surrogate (JSON's "\\ud83d", left by a cut
    emoji, parses but cannot be encoded), no control token (the chat template places those: a
    ``<|eos|>`` inside a response, trained as text, decodes as an end of turn in its middle)."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where}: field {name!r} is not valid Unicode (a lone surrogate "
                         f"{text[err.start]!r} at character {err.start + 1})") from None
    control = find_control_token(text)
    if control is not None:
        raise ValueError(f"{where}: field {name!r} contains the control token {control}, which the chat "
                         "template adds itself")


def _check_meta(meta: dict[str, Any], where: str) -> None:
    """The other fields are written back as they are: a lone surrogate in any of their texts (or
    names, at any depth) would make that write fail, so it is refused here, naming the field."""
    for name, value in meta.items():
        try:
            json.dumps({name: value}, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}: field {name!r} is not valid Unicode (a lone surrogate)") from None


def read_sft_jsonl(path: str | os.PathLike) -> list[SFTExample]:
    """Every example of a chat JSONL file, in order; blank lines skipped.

    FileNotFoundError for a missing file; ValueError for a directory, or naming the file and line
    for a malformed one (bad JSON, missing fields, or bytes that are not UTF-8).
    """
    return [example for _, example in read_sft_jsonl_lines(path)]


def read_sft_jsonl_lines(path: str | os.PathLike) -> list[tuple[int, SFTExample]]:
    """`read_sft_jsonl` with each example's line number (1-based; blank lines skipped still count),
    so that a later error about an example (too long for --seq-len) can name its line."""
    path = Path(path)
    if path.is_dir():  # a dataset builder's run directory given for the file it wrote there
        raise ValueError(f"{path} is a directory, not a chat JSONL file (a dataset builder writes "
                         f"{path / 'data.jsonl'})")
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    examples = [(line_no, example_from_record(record, f"{path}:{line_no}")) for line_no, record in jsonl_objects(path)]
    if not examples:
        raise ValueError(f"{path}: no examples")
    return examples


def check_output_file(path: str | os.PathLike) -> Path:
    """`path`, or a ValueError when no file can be written there: it is a directory, or one of its
    parents is a file. Stages call it before their slow part, so a typo in --out costs nothing."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a directory, not a file")
    _check_parents(path)
    return path


def check_output_dir(path: str | os.PathLike) -> Path:
    """`path`, or a ValueError when it cannot be a run directory: it, or one of its parents, is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot use {path} as a directory: it is a file")
    _check_parents(path)
    return path


def _check_parents(path: Path) -> None:
    for parent in path.parents:
        if parent.exists():  # the nearest existing ancestor decides; the ones above it exist as directories
            if not parent.is_dir():
                raise ValueError(f"cannot write {path}: {parent} is a file, not a directory")
            return


def write_sft_jsonl(path: str | os.PathLike, examples: Iterable[SFTExample]) -> Path:
    """Writes the examples atomically (a crash never leaves half a dataset); returns the path.

    ValueError naming the example (1-based, its line in the file) for one `read_sft_jsonl` would
    refuse, e.g. an empty response, or for no example at all: the file is then not written, an
    earlier one stays as it was.
    """
    path = check_output_file(path)
    return write_text_atomically(path, _checked_lines(path, examples))


def _checked_lines(path: Path, examples: Iterable[SFTExample]) -> Iterator[str]:
    number = 0
    for number, example in enumerate(examples, start=1):
        record = example.to_record()
        example_from_record(record, f"{path}: example {number}")  # the reader's checks, so it can read it back
        yield json.dumps(record, ensure_ascii=False) + "\n"
    if number == 0:  # an empty file is one read_sft_jsonl refuses ("no examples")
        raise ValueError(f"{path}: no examples to write")


def fsync(path: Path) -> None:
    """Flushes a file, or a directory's entries (POSIX only: Windows cannot open a directory), to disk."""
    if path.is_dir() and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR)  # Windows fsyncs only a writable handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path: str | os.PathLike, text: str | Iterable[str]) -> Path:
    """Writes `text` (or its pieces, in order) via a temporary file renamed into place: a crash never
    leaves half a file, nor a stray temporary one; returns the path. The directory is synced after
    the rename too: else a power cut can undo it, leaving the old file (or none) in its place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines([text] if isinstance(text, str) else text)
            f.flush()  # on disk before the rename publishes it: else a power cut can leave an empty
            os.fsync(f.fileno())  # file in its place (a dataset, or a pipeline stamp saying it is built)
        os.replace(tmp, path)
    except BaseException:  # no stray .tmp next to the file when writing or renaming fails
        tmp.unlink(missing_ok=True)
        raise
    fsync(path.parent)  # the rename itself
    return path
