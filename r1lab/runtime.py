"""The process and device settings every stage shares: seeds, threads, the allocator, the device
check and bf16 autocast. Checked in each stage config's `__post_init__` and applied when a run
starts (`training.start_run`), so that a bad setting fails before anything is loaded or written.
"""

from __future__ import annotations

import contextlib
import random
import warnings

import torch

from r1lab.fields import check_int_fields, is_int  # noqa: F401 (re-exported: every stage config calls them here)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def check_seed(seed: int, owner: str = "config") -> None:
    """A config's `seed` in [0, 2^32): stages derive per-step seeds as seed * 1,000,003 + step,
    which must stay a 64-bit integer for torch's generators (else an overflow deep in a run)."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"{owner}.seed must be in [0, 2^32), got {seed}")


def check_threads(threads: int, owner: str = "config") -> None:
    """A config's `threads` (0 = keep the process's count), refused by name before anything is built."""
    if threads < 0:
        raise ValueError(f"{owner}.threads must be >= 0 (0 = keep the process's count), got {threads}")


def keep_freed_memory() -> bool:
    """Makes glibc keep freed memory for reuse instead of handing it back to the OS.

    glibc serves every block over 128 KiB with its own mmap and unmaps it on free, so each new
    activation tensor page-faults fresh zeroed pages in: for small models on a CPU a share of a
    step (a tiny GRPO step in bf16, in two processes without and with this:
    benchmarks/design_choices.py, key `keep_freed_memory`).
    Blocks up to 32 MiB now come from the heap, and up to 1 GiB of free heap is kept. Returns
    False (and changes nothing) where the C library has no `mallopt` (macOS, musl).
    """
    import ctypes

    try:  # the symbols already loaded into this process (libc among them); no library search
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


def check_device(device: str, owner: str = "config") -> None:
    """A torch device string that this machine has, checked before anything is loaded or written;
    `owner` names the config in the message (e.g. "SFTConfig")."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # TypeError: None (unset) or a number; torch's message is a signature list
        raise ValueError(f"{owner}.device: {device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, ... checked by their torch module; meta holds no data
        backend = getattr(torch, dev.type, None)
        if not callable(getattr(backend, "is_available", None)) or not backend.is_available():
            raise ValueError(f"{owner}.device is {device!r} but no {dev.type} device is available here")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{owner}.device is {device!r} but CUDA is not available here")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{owner}.device is {device!r} but only {torch.cuda.device_count()} CUDA device(s) exist")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether `device` multiplies bf16 matrices in hardware: a CUDA GPU, or an x86 CPU with
    AVX-512 BF16 or AMX. Other CPUs emulate bf16 (oneDNN): on a 2-core AMD EPYC with
    AVX2 only (Zen 3), SFT steps of the tiny model took 14x as long in bf16 as in float32 (285 against
    4,000 tokens/s) and a GRPO update 10x (benchmarks/results/cpu-2026-12-01.jsonl)."""
    kind = torch.device(device).type
    if kind == "cuda":  # not torch.cuda.is_bf16_supported(): it would start CUDA on GPU 0 in every torchrun process
        return torch.cuda.is_available()
    if kind == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def default_bf16() -> bool:
    """The default of a stage's `bf16` where bf16 is the faster choice: on where this machine computes
    bf16 in hardware (its GPU if it has one, else its CPU); a run may always ask for either."""
    return native_bf16("cuda" if torch.cuda.is_available() else "cpu")


def autocast(enabled: bool, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """bf16 autocast (AMX or AVX-512 BF16 on CPUs, tensor cores on GPUs); a no-op when disabled.
    Warns (once per place) when the device only emulates bf16: it runs, many times slower."""
    device_type = torch.device(device).type
    if not enabled:
        return contextlib.nullcontext()
    if device_type == "cpu" and not native_bf16("cpu"):
        warnings.warn("bf16 on a CPU without AVX-512 BF16 or AMX is emulated and many times slower than "
                      "float32 here (pass --no-bf16)", stacklevel=2)
    return torch.autocast(device_type, dtype=torch.bfloat16)
