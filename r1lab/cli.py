"""The `r1lab` command line.

Each sub-command lives in its own module, which exposes

    add_arguments(parser: argparse.ArgumentParser) -> None
    main(args: argparse.Namespace) -> int

Modules are imported only when their command runs, so `r1lab --help` stays fast and one
command's heavy imports never slow another.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import shlex
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

from r1lab import __version__

C = TypeVar("C")

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "model-info": ("r1lab.model.info", "count a preset's parameters (total, activated, MTP) without allocating them"),
    "demo": ("r1lab.demo", "run the main job on the embedded miniature world"),
    "pretrain": ("r1lab.stages.pretrain", "pretrain a base model on the miniature world's corpus"),
    "zero": ("r1lab.stages.grpo", "R1-Zero: GRPO with rule-based rewards from a base model (also reasoning RL)"),
    "sft": ("r1lab.stages.sft", "supervised fine-tuning on chat JSONL (cold start, rejection-sampled data)"),
    "reward-model": ("r1lab.stages.reward_model", "train a reward model on preference pairs or safe/unsafe labels"),
    "preference-data": ("r1lab.stages.preference_data",
                        "reward-model data: world-written pairs and a model's replies judged by the world"),
    "all-scenario": ("r1lab.stages.all_scenario",
                     "all-scenario RL: GRPO on reasoning (rules) and general prompts (reward models)"),
    "cold-start": ("r1lab.stages.cold_start", "build readable long-CoT cold-start data (R1-Zero samples + long CoT)"),
    "rejection-sample": ("r1lab.stages.rejection_sampling",
                         "sample N answers per prompt, keep verified readable ones, add chat data"),
    "eval": ("r1lab.stages.evaluate", "score completions (or sample a checkpoint) with pass@1, pass@k and cons@k"),
}

# the commands that run under torchrun as data-parallel processes (r1lab/parallel.py); the others
# would each do the whole job in every process, writing the same files
DISTRIBUTED_COMMANDS = ("pretrain", "sft", "zero", "all-scenario", "reward-model")


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> None:
    """One --flag per field of a stage's config dataclass (bools get --x/--no-x); the field's
    comment in the source is the documentation, `r1lab CMD --help` shows the defaults."""
    types = typing.get_type_hints(config_cls)  # classes, with or without `from __future__ import annotations`
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kind = types[f.name]
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=f"(default: {default})")
        elif kind in (int, float, str):
            parser.add_argument(flag, type=kind, default=default, help=f"(default: {default})")
        else:  # a field with no flag would silently keep its default
            raise TypeError(f"{config_cls.__name__}.{f.name}: no command-line flag for type {kind}")


OUTPUT_FIELDS = frozenset({"out_dir", "out"})  # config fields where a stage writes


def config_from_args(config_cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls) if hasattr(args, f.name)}
    for name in OUTPUT_FIELDS & values.keys():
        check_output_path(name, values[name])
    return config_cls(**{**values, **overrides})


def check_output_path(name: str, value: object) -> None:
    """Path("") is the working directory: a run given a blank --out/--out-dir would write (and clear) there."""
    if not str(value).strip():
        raise ValueError(f"--{name.replace('_', '-')} must name a path, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r1lab", description="The DeepSeek-R1 recipe, end to end.")
    parser.add_argument("--version", action="version", version=f"r1lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints usage / error and exits
        return 2
    name, rest = argv[0], argv[1:]
    distributed = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1  # under torchrun
    if distributed and name not in DISTRIBUTED_COMMANDS:
        print(f"r1lab {name}: error: runs in one process, not under torchrun (WORLD_SIZE "
              f"{os.environ['WORLD_SIZE']}); these do: {', '.join(DISTRIBUTED_COMMANDS)}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])  # torch's import takes seconds: Ctrl-C lands here too
    except KeyboardInterrupt:
        print(f"\nr1lab {name}: interrupted; run again with: {shlex.join(['r1lab', name, *rest])}", file=sys.stderr)
        return 130
    parser = argparse.ArgumentParser(prog=f"r1lab {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        code = int(module.main(args) or 0)
    except (ValueError, OSError) as err:  # bad input or an unusable path (disk full, no permission): one line
        print(f"r1lab {name}: error: {error_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: how to go on, not a traceback; 130 = 128 + SIGINT, as shells report it
        print(f"\nr1lab {name}: {interrupted_line(name, rest, args)}", file=sys.stderr)
        return 130
    if distributed and code == 0:  # under torchrun, an exit that cannot abort after the run's work is done
        from r1lab import parallel

        parallel.close()
        parallel.end_process(code)
    return code


def interrupted_line(name: str, rest: list[str], args: argparse.Namespace) -> str:
    """What a Ctrl-C leaves and how to go on. Metrics logs are flushed at each record and checkpoints
    saved atomically, so a training stage (`resume` and `out_dir` flags) continues from its newest
    complete checkpoint; the demo continues when rerun as it was; other commands start again."""
    command = shlex.join(["r1lab", name, *rest])
    if hasattr(args, "resume") and hasattr(args, "out_dir"):
        from r1lab.training import latest_checkpoint  # torch is loaded by now: the stage ran

        checkpoint = latest_checkpoint(Path(args.out_dir) / "checkpoints")
        if checkpoint is None:
            return f"interrupted before the first checkpoint in {args.out_dir}; start again with: {command}"
        resume = command if args.resume else f"{command} --resume"  # the last of --resume/--no-resume wins
        return (f"interrupted; the newest checkpoint is {checkpoint} (steps after it are redone); "
                f"resume with: {resume}")
    if name == "demo":
        return ("interrupted; finished stages are kept and an interrupted one continues from its newest "
                f"checkpoint: resume with the same command: {command}")
    return f"interrupted; run again with: {command}"


def error_line(err: Exception) -> str:
    """The error for the one-line report: an OS error as "what: path" (no "[Errno N]"), else its text.

    >>> error_line(IsADirectoryError(21, "Is a directory", "runs/x.tmp", None, "runs/x"))
    'Is a directory: runs/x.tmp -> runs/x'
    >>> error_line(FileNotFoundError("checkpoint not found: ckpt"))
    'checkpoint not found: ckpt'
    """
    if not isinstance(err, OSError) or not err.strerror:
        return str(err)
    paths = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{err.strerror}: {paths}" if paths else err.strerror


if __name__ == "__main__":
    raise SystemExit(main())
