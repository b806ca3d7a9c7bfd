"""What every trainer shares: optimizer, LR schedule, precision, metrics log, checkpoints + resume.

Kept apart from the stages so each stage's `run(config)` reads as its algorithm alone. Nothing
here knows about parallelism either: a distributed launcher wraps the model (FSDP2's
`fully_shard`) before handing it to a stage, and these helpers work on whatever module they get.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from r1lab import parallel
from r1lab.data import check_output_dir, fsync
from r1lab.metrics import MetricsLog, Throughput  # noqa: F401 (stages and tests reach them here)
from r1lab.model import Transformer, save_pretrained
from r1lab.runtime import keep_freed_memory, seed_everything, set_threads


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices (embeddings and output head included), none on 1-D
    tensors (norm weights, biases, router biases)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # the fused kernel: one pass over each tensor instead of a dozen foreach ops (CPU, 6.2M
    # parameters: 15.4 -> 3.1 ms a step, benchmarks/design_choices.py, key `adamw`; updates equal
    # up to float32 rounding)
    fused = all(p.device.type in ("cpu", "cuda") for p in decay + no_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8, fused=fused)


def lr_at(step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warmup to `lr`, then cosine decay to `lr * min_lr_ratio` at `total_steps`.

    Step `step` is 0-based: the warmup's last step (warmup_steps - 1) and the decay's first both
    use the peak, and the last step (total_steps - 1) stays a little above the floor. A convention,
    kept because the shipped base model and the demo's numbers were trained with it.

    R1's SFT stages: 5e-5 -> 5e-6 (min_lr_ratio 0.1) by cosine (R1-FACTS.md, "Cold start and SFT")."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def warn_if_all_warmup(warmup_steps: int, total_steps: int) -> None:
    """Says when `lr_at` only ramps up (a run no longer than its warmup): no decay, the peak late or never."""
    if 0 < total_steps <= warmup_steps:
        print(f"warning: warmup_steps {warmup_steps} >= the run's {total_steps} steps: the learning rate only "
              f"rises, to {total_steps / warmup_steps:.0%} of --lr on the last step, and never decays "
              "(lower --warmup-steps)")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# training stages (the name of their `<name>_config.json`): each owns its run directory's metrics.jsonl and checkpoints/
TRAINING_RUNS = ("pretrain", "grpo", "sft", "reward_model")


def check_run_dir(out_dir: str | Path, name: str) -> None:
    """Refuses a run directory that holds another training stage's run: this run would overwrite its
    metrics.jsonl and, starting fresh, delete its checkpoints/ (with --resume too: it has none of ours).
    Each training command calls it before its `run`, whose --resume reads the directory before `start_run`."""
    for other in TRAINING_RUNS:
        saved = Path(out_dir) / f"{other}_config.json"
        if other != name and saved.is_file():
            raise ValueError(f"--out-dir {out_dir} holds another stage's run ({saved}); give another --out-dir")


def start_run(config: Any, name: str, *, fresh: bool = False, own: tuple[str, ...] = ("checkpoints",),
              world: parallel.World = parallel.World()) -> Path:
    """Common start of every stage: threads, allocator, seeds, the run directory and `<name>_config.json`.

    `fresh` (a training run that is not resuming): the stage's own directories `own` left by an
    earlier run in this out_dir are removed, as its metrics log is emptied: old checkpoints would
    otherwise be pruned against the new ones by name and picked up by a later --resume. In a
    distributed run rank 0 alone touches the directory; the others wait for it."""
    set_threads(getattr(config, "threads", 0))
    keep_freed_memory()
    seed_everything(config.seed)
    # an --out-dir that is (or lies under) a file: this message, not mkdir's bare "File exists: X"
    out = check_output_dir(config.out_dir)
    if not world.main:
        parallel.barrier(world)
        return out
    if fresh:
        stale_dirs = [out / d for d in own if (out / d).exists()]
        init = getattr(config, "init", None)
        for stale in stale_dirs:  # a checkpoint of the earlier run given as --init: loaded, then deleted
            if init and Path(init).resolve().is_relative_to(stale.resolve()):
                raise ValueError(f"--init {init} lies in {stale}, which a fresh run in {out} removes; copy it "
                                 "elsewhere first, or continue that run with --resume")
        for stale in stale_dirs:
            print(f"fresh run: removing {stale} left by an earlier run in {out}")
            shutil.rmtree(stale)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / f"{name}_config.json")
    parallel.barrier(world)
    return out


def open_log(path: str | Path, resume_step: int, world: parallel.World = parallel.World()) -> MetricsLog:
    """A metrics log for a run starting at `resume_step`: kept up to it when resuming, else emptied.
    Rank 0's alone in a distributed run."""
    log = MetricsLog(path, enabled=world.main)
    if not world.main:
        return log
    if resume_step:
        log.truncate_after(resume_step)
    else:
        log.path.write_text("")
    return log


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n")


def save_checkpoint(model: Transformer, directory: str | Path, *, step: int, config: Any,
                    optimizer: torch.optim.Optimizer | None = None, tokenizer: Any = None,
                    extra_state: dict[str, Any] | None = None,
                    extra_models: dict[str, Transformer] | None = None,
                    extra_files: dict[str, str] | None = None,
                    world: parallel.World = parallel.World()) -> Path:
    """A Hugging Face checkpoint (+ tokenizer, + the stage's resolved config as `r1lab_config.json`)
    and, for resuming, `trainer_state.pt` with the optimizer and RNG states.

    A sharded model (and its optimizer state) is gathered first, a collective every process
    calls; rank 0 writes the one-process format, and all return once it is on disk.

    The tokenizer files go into the same atomic save as the weights: the directory never exists
    without them. `extra_models` (name -> model, e.g. GRPO's KL reference) are saved as
    subdirectories before `trainer_state.pt`, which marks a resumable checkpoint complete;
    `extra_files` (name -> text) go into the checkpoint beside its config."""
    directory = Path(directory)
    optimizer_state = parallel.optimizer_state(model, optimizer, world) if optimizer is not None else None
    whole = parallel.unsharded(model, world)
    extra_models = {name: parallel.unsharded(sub, world) for name, sub in (extra_models or {}).items()}
    if not world.main:
        parallel.barrier(world)
        return directory
    extra = {"r1lab_config.json": json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n",
             **(tokenizer.files() if tokenizer is not None else {}), **(extra_files or {})}
    path = save_pretrained(whole, directory, extra_files=extra)
    for name, sub in extra_models.items():
        save_pretrained(sub, path / name)
    if optimizer_state is not None:
        state = {"step": step, "optimizer": optimizer_state, **_rng_states(), **(extra_state or {})}
        tmp = path / "trainer_state.pt.tmp"
        _write_state(state, tmp)  # on disk before the rename marks the checkpoint complete for --resume
        os.replace(tmp, path / "trainer_state.pt")
        fsync(path)
    parallel.barrier(world)
    return path


def _write_state(state: dict[str, Any], tmp: Path) -> None:
    """torch.save through a Python file, synced. A failed write (disk full, quota) raises the OSError
    naming the file, not torch's "[enforce fail at inline_container.cc] unexpected pos" RuntimeError,
    and the partial file is removed: it would hold on to the space a retry needs."""
    try:
        with tmp.open("wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = err if isinstance(err, OSError) else err.__context__  # torch wraps the file's OSError
        if isinstance(cause, OSError) and cause.errno is not None:
            raise OSError(cause.errno, cause.strerror, str(tmp)) from err
        raise


def _step_of(path: Path) -> int:
    digits = path.name.removeprefix("step_")
    # ASCII digits only: "²".isdigit() is true but int("²") raises, which crashed the checkpoint listing
    return int(digits) if digits.isascii() and digits.isdigit() else -1


def _complete_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """The `step_N` directories with a trainer state, oldest first (by number: step_1000000 > step_999999)."""
    found = (p.parent for p in Path(checkpoint_dir).glob("step_*/trainer_state.pt"))
    return sorted((p for p in found if _step_of(p) >= 0), key=_step_of)  # not a copy: step_000010_copy


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest `step_NNNNNN` directory that has a complete trainer state."""
    candidates = _complete_checkpoints(checkpoint_dir)
    return candidates[-1] if candidates else None


def check_optimizer_settings(config: Any) -> None:
    """The optimizer and schedule fields every training stage has: lr, grad_clip, weight_decay,
    warmup_steps and min_lr_ratio; a ValueError naming the config class and the field."""
    for field in ("lr", "grad_clip", "weight_decay", "min_lr_ratio"):  # a str (YAML reads 3e-3 as one) or
        value = getattr(config, field)  # None failed below as "'<' not supported ...", naming neither; True ran as 1
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{type(config).__name__}.{field} must be a number, got {value!r}")
    checks = (("lr", 0 < config.lr < math.inf, "> 0 and finite"),  # NaN fails every comparison
              ("grad_clip", 0 < config.grad_clip, "> 0"),
              ("weight_decay", 0 <= config.weight_decay < math.inf, ">= 0 and finite"),
              ("warmup_steps", config.warmup_steps >= 0, ">= 0"),
              ("min_lr_ratio", 0 <= config.min_lr_ratio <= 1, "in [0, 1]"))
    for field, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{type(config).__name__}.{field} must be {allowed}, got {getattr(config, field)}")


def resume_checkpoint(config: Any, fields: tuple[str, ...], total_steps: int | None = None) -> Path | None:
    """The checkpoint a run continues from: with `config.resume`, the newest complete one in
    out_dir/checkpoints, checked to be the stopped run's (`check_same_run`) and, given
    `total_steps`, not past this run's end; None without --resume, or (said on stdout) when there
    is none yet: the run starts afresh. An out_dir that is (or lies under) a file is refused here, at
    each training stage's first step, before a corpus or a model is built for nothing."""
    check_output_dir(config.out_dir)
    if not config.resume:
        return None
    directory = Path(config.out_dir) / "checkpoints"
    checkpoint = latest_checkpoint(directory)
    if checkpoint is None:
        print(f"--resume: no complete checkpoint in {directory}; starting afresh")
        return None
    check_same_run(checkpoint, config, fields)
    if total_steps is not None:
        check_resume_step(checkpoint, total_steps)
    return checkpoint


def check_resume_step(checkpoint: Path | None, total_steps: int) -> None:
    """A resumed run must not be past its end: step 4 resumed with 2 steps in all would do
    nothing and save a 4-step model as the 2-step one."""
    if checkpoint is not None and _step_of(checkpoint) > total_steps:
        raise ValueError(f"--resume from {checkpoint}: past this run's {total_steps} steps; give at "
                         "least as many steps, or start afresh without --resume")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex): what a resumed run checks its data file against."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_same_run(checkpoint: Path, config: Any, fields: tuple[str, ...]) -> None:
    """A resumed run must be the one that stopped: the `fields` of `config` that decide its data and
    their order must equal those saved with `checkpoint` (`r1lab_config.json`), else the step count
    would index another plan (a resumed SFT with a new batch size finished at once, half trained)."""
    path = Path(checkpoint) / "r1lab_config.json"
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # cut short or edited by hand: the run cannot be checked, so not resumed
        raise ValueError(f"--resume: {path} is not readable JSON ({err}); "
                         "remove that checkpoint or start afresh without --resume") from None
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {path} holds a JSON {type(saved).__name__}, not the saved config object")
    now = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    changed = [f"{f} {saved[f]!r} -> {now[f]!r}" for f in fields if f in saved and not same_setting(saved[f], now[f])]
    if changed:
        raise ValueError(f"--resume from {checkpoint}: changed since it was saved: {', '.join(changed)}; "
                         "resume with the run's settings, or start afresh without --resume")


def same_setting(saved: object, now: object) -> bool:
    """Equal settings; paths however spelled (runs/demo/zero vs /abs/runs/./demo/zero): a rerun of
    an interrupted demo with its --out spelled otherwise must still resume."""
    if saved == now:
        return True
    return isinstance(saved, str) and isinstance(now, str) and Path(saved).resolve() == Path(now).resolve()


def load_training_state(path: Path, optimizer: torch.optim.Optimizer, *, rng: bool = True,
                        model: torch.nn.Module | None = None) -> dict[str, Any]:
    """The optimizer state (and, with `rng`, the RNG states) of a checkpoint; returns the whole state.

    rng=False where the run is not started yet: `start_run` seeds the RNGs, so the caller restores
    them after it (`restore_rng`), else the resumed run would draw from the fresh seed's stream.
    Read onto the CPU: a GPU run's state resumes anywhere (the optimizer moves it to its parameters)."""
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    # torch's load_state_dict takes the saved groups' settings too: a run resumed with another
    # --weight-decay trained on with the old one in silence (lr is set every step). This run's
    # settings are kept; only the moments and step counts come from the checkpoint.
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    if model is None:
        optimizer.load_state_dict(state["optimizer"])
    else:  # by parameter name where the model is sharded or the state was saved sharded
        parallel.load_optimizer_state(model, optimizer, state["optimizer"])
    for group, setting in zip(optimizer.param_groups, settings):
        group.update(setting)
    if rng:
        restore_rng(state)
    return state


def _rng_states() -> dict[str, Any]:
    """The RNG states a resumed run needs to draw what the uninterrupted one would have: a GPU
    run samples with the CUDA generators, so theirs too once CUDA is in use."""
    states = {"torch_rng": torch.get_rng_state(), "python_rng": random.getstate()}
    if torch.cuda.is_initialized():
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(state: dict[str, Any]) -> None:
    """Restores the RNG states `save_checkpoint` stored. The CUDA ones only on as many GPUs as they
    were saved from: a GPU run's checkpoint also resumes on a CPU (which draws no CUDA numbers),
    and a checkpoint saved on a CPU, or before they were stored, has none."""
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    cuda = state.get("cuda_rng")
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)


def prune_checkpoints(checkpoint_dir: str | Path, keep: int) -> None:
    """Removes all but the newest `keep` (>= 1) step checkpoints."""
    if keep < 1:  # [:-0] would keep none removed and [:-(-1)] would remove the newest
        raise ValueError(f"keep must be >= 1, got {keep}")
    complete = _complete_checkpoints(checkpoint_dir)
    if len(complete) <= keep:
        return
    oldest_kept = _step_of(complete[-keep])  # only complete checkpoints count: a newer half-saved one is no backup
    for old in Path(checkpoint_dir).glob("step_*"):
        if old.is_dir() and 0 <= _step_of(old) < oldest_kept:  # a copy saved as step_000010_copy is the user's
            (old / "trainer_state.pt").unlink(missing_ok=True)  # first: a half-removed one is never resumed
            shutil.rmtree(old, ignore_errors=True)
    for tmp in Path(checkpoint_dir).glob(".step_*"):  # `.step_N.XXXXXXXX`: a save killed outright left it
        if tmp.is_dir() and 0 <= _step_of(Path(tmp.name[1:].split(".")[0])) < oldest_kept:
            shutil.rmtree(tmp, ignore_errors=True)
