"""Data parallelism with FSDP2, applied from outside the model (as torchtitan's `parallelize`).

A training stage run under `torchrun --nproc_per_node N` (one process per GPU, or per group of
CPU cores) calls `init` once; on a plain `r1lab ...` run it returns a one-process `World` and every
helper here is a no-op, so a stage reads the same either way. With N > 1 processes:
- the model is sharded with `fully_shard` (FSDP2): each decoder block, each MTP block, the final
  norm and an untied output head are units of their own, the rest (embedding, MTP projections)
  belongs to the root. Parameters become DTensors; forwards all-gather them a unit at a time and
  backwards reduce-scatter (average) the gradients. A stage's `bf16` makes them gather bf16
  copies of the float32 shards (not the MoE gates, nor a reward model's head) and reduce in float32;
- each process trains on its share of every global batch (`shard`), and `loss_weight` rescales its
  mean loss so that the averaged gradient is the one of the global batch's mean, exactly as one
  process would compute it (R1's losses are token or sequence means over the whole batch);
- with `expert_parallel`, the routed experts are split by expert instead, whole, and tokens travel
  to them (r1lab/expert_parallel.py, V3 §3.2);
- the MoE load counters are summed over processes before the aux-loss-free bias update
  (`sync_expert_load`), so every process moves the same biases by the global batch's load (V3 §2.1.2);
- checkpoints stay the one-process format: the weights and the optimizer state are gathered
  (`unsharded`, `optimizer_state`) and written by rank 0, so any number of processes resumes them.

Nothing in `r1lab/model/` knows about any of this. On a CPU the processes talk over gloo, on GPUs
over NCCL.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's RANK and WORLD_SIZE)."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"  # where this process trains: cuda:LOCAL_RANK on GPUs

    @property
    def main(self) -> bool:
        """Rank 0 writes files, logs and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init(device: str = "cpu") -> World:
    """The World of this process. Under torchrun (WORLD_SIZE > 1 in the environment) the process
    group is created here, once (gloo on a CPU, NCCL on CUDA), a CUDA `device` becomes this
    process's GPU (LOCAL_RANK), and the other ranks' standard output is silenced; otherwise a
    one-process World on `device`."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
        if rank != 0:  # one copy of every report: rank 0's (errors and warnings still reach stderr)
            sys.stdout = open(os.devnull, "w")
    return World(rank=rank, size=size, device=device)


def parallelize(model: torch.nn.Module, world: World, *, bf16: bool = False,
                expert_parallel: bool = False) -> torch.nn.Module:
    """Shards `model` (an r1lab Transformer, or a RewardModel: both keep their decoder in `.model`)
    over the world's processes with FSDP2; unchanged in a one-process world. Units are modules that
    are always entered through their `__call__` (blocks, the final norm, the untied head): FSDP2
    gathers a unit's weights in its forward hook, so a unit whose submodules were called directly
    would see shards. The root's methods that stages call instead of `forward` are registered to
    gather the root's weights too.

    With `bf16` (a stage's `bf16`) the units gather and compute with bf16 weights, FSDP2's
    `MixedPrecisionPolicy` as torchtitan trains: the shards, the optimizer and the gradients'
    reduction stay float32, and the all-gathers and gathered weights take half the bytes of float32
    weights under autocast. Two kinds of weight stay float32, as units of their own: the MoE gates
    (V3 §3.3.1 keeps the gating in higher precision) and a reward model's score head
    (model/reward.py). Forward inputs are not cast: the RoPE tables stay float32.

    With `expert_parallel` the routed experts are not FSDP2's: each process keeps its share of them
    whole and the tokens travel to them (r1lab/expert_parallel.py)."""
    if not world.distributed:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(_comm_device(world).split(":")[0], (world.size,))
    ignored: set[torch.nn.Parameter] = set()
    if expert_parallel:
        from r1lab.expert_parallel import shard_experts

        ignored = shard_experts(model, mesh)

    def wrap(module: torch.nn.Module, dtype: torch.dtype | None) -> None:
        reduce = torch.float32 if dtype is not None else None  # None: the gradients' own dtype
        policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=reduce, cast_forward_inputs=False)
        fully_shard(module, mesh=mesh, mp_policy=policy, ignored_params=ignored or None)

    units = [*model.model.layers, *(m.block for m in getattr(model, "mtp", ())), model.model.norm]
    head = getattr(model, "lm_head", None)
    if head is not None and not model.config.tie_word_embeddings:  # tied: the embedding's weight, in the root
        units.append(head)
    param_dtype = torch.bfloat16 if bf16 else None  # None: as the weights are (float32)
    if bf16:  # inner units first: FSDP2 shards bottom-up
        from r1lab.model.moe import Router

        float32_units = [m for m in model.modules() if isinstance(m, Router)]
        if hasattr(model, "score"):
            float32_units.append(model.score)
        for unit in float32_units:
            wrap(unit, torch.float32)
    for unit in units:
        wrap(unit, param_dtype)
    wrap(model, param_dtype)
    for method in ("loss", "hidden_states"):
        if hasattr(model, method):
            register_fsdp_forward_method(model, method)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard(items: Sequence[T], world: World) -> list[T]:
    """This process's share of a global batch: every size-th item from its rank (sizes differ by at most one)."""
    return list(items[world.rank::world.size])


def all_sum(values: Sequence[float], world: World) -> list[float]:
    """Element-wise sums over the processes (the values themselves in a one-process world)."""
    if not world.distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(world))
    dist.all_reduce(t)
    return t.tolist()


def _comm_device(world: World) -> str:
    """Where a collective's tensor lives: NCCL reduces GPU tensors only, gloo CPU ones."""
    return world.device if world.device.startswith("cuda") else "cpu"


def loss_weight(local: float, world: World, total: float | None = None) -> float:
    """The factor on this process's mean loss over `local` items (tokens, sequences) that makes the
    processes' averaged gradients those of the mean over all their items: size * local / total
    (`total`, the sum of `local` over the processes, is summed here unless given). 1 in a
    one-process world; 0 on a process with nothing to train."""
    if not world.distributed:
        return 1.0
    if total is None:
        (total,) = all_sum([local], world)
    return world.size * local / total if total > 0 else 0.0


def scalar(value: torch.Tensor | float) -> float:
    """A Python float of a number, a tensor or a DTensor (the gradient norm of a sharded model)."""
    if isinstance(value, torch.Tensor) and hasattr(value, "full_tensor"):
        value = value.full_tensor()
    return float(value)


def sync_expert_load(model: torch.nn.Module, world: World) -> None:
    """Sums every MoE layer's load counter over the processes (before `update_router_bias`)."""
    if not world.distributed:
        return
    from r1lab.model.moe import MoE

    for moe in (m for m in model.modules() if isinstance(m, MoE)):
        dist.all_reduce(moe.gate.expert_load)


def unsharded(model: torch.nn.Module, world: World) -> torch.nn.Module | None:
    """The whole model as a plain module: `model` itself when it is not sharded; else gathered
    (every process must call this) into a fresh copy on rank 0's CPU, None on the others."""
    if not is_sharded(model):
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not world.main:
        return None
    copy = _empty_like(model, "cpu")
    copy.load_state_dict(state, assign=True)
    return copy.train(model.training)


def sampling_copy(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The module an engine samples from: the policy itself in one process; for a sharded policy a
    whole copy in every process (an inference engine keeps its own weights, as vLLM does in verl and
    OpenRLHF), which `sync_weights` refreshes before each rollout. It costs one model's memory per
    process: the price of sampling without a collective at every decode step."""
    if not is_sharded(model):
        return model
    copy = _empty_like(model, world.device).eval()
    sync_weights(copy, model)
    return copy


def sync_weights(copy: torch.nn.Module, model: torch.nn.Module) -> None:
    """Loads the sharded `model`'s current weights into its `sampling_copy` (a collective); nothing
    to do when the copy is the model itself."""
    if copy is model:
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    copy.load_state_dict(get_model_state_dict(model, options=StateDictOptions(full_state_dict=True)))


def _empty_like(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """A plain module of the sharded `model`'s class, its parameters and persistent buffers
    allocated on `device` but not filled; the non-persistent buffers (RoPE tables, load
    counters), which every process holds whole, copied from `model`."""
    from torch.distributed.fsdp import FSDPModule

    plain = next(c for c in type(model).__mro__[1:] if not issubclass(c, FSDPModule))  # FSDP<Class> -> Class
    with torch.device("meta"):
        copy = plain(model.config)
    copy = copy.to_empty(device=device)
    persistent = set(copy.state_dict())
    for name, buf in model.named_buffers():
        if name not in persistent:
            owner, _, leaf = name.rpartition(".")
            (copy.get_submodule(owner) if owner else copy)._buffers[leaf] = buf.detach().to(device).clone()
    return copy


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, world: World) -> dict[str, Any] | None:
    """The optimizer's state to save: its own `state_dict()` for a plain model; for a sharded one
    (every process must call this) the whole state keyed by parameter name, on rank 0 only."""
    if not is_sharded(model):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    state = get_optimizer_state_dict(model, optimizer,
                                     options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if world.main else None


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Loads what `optimizer_state` saved, in any world: a state keyed by parameter name (saved
    sharded) goes through torch's distributed state-dict API, which shards it again; one keyed by
    position (saved by one process) loads as it is, or is named first for a sharded model."""
    named = any(isinstance(k, str) for k in state["state"])
    if not named and not is_sharded(model):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if not named:  # positions follow the parameter groups' order (`training.make_optimizer`)
        names = {id(p): n for n, p in model.named_parameters()}
        order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
        state = {"state": {order[i]: s for i, s in state["state"].items()},
                 "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in state["param_groups"]]}
    # strict=False: a parameter that never had a gradient (the MTP modules in RL) has no state to load
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True, strict=False))


def gather(obj: T, world: World) -> list[T] | None:
    """Every process's `obj` in rank order, on rank 0 (None on the others); [obj] in one process.
    Pickled over the process group: for records and rollouts, not for tensors of a model's size."""
    if not world.distributed:
        return [obj]
    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(world: World) -> None:
    """Waits for every process (after rank 0 wrote a file the others read or remove)."""
    if world.distributed:
        dist.barrier()


def close() -> None:
    """Destroys the process group, if there is one, at the end of a run that succeeded (PyTorch warns
    on GPUs when a run ends without it). Not after an error: other processes may still be inside a
    collective, and destroying the group would wait for them (a hang instead of an exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def end_process(code: int = 0) -> NoReturn:
    """Exits a torchrun process without Python's finalization: atexit handlers run and the standard
    streams are flushed, then `os._exit`. A process that exits the usual way right after a collective
    can abort ("terminate called without an active exception"): gloo's worker thread, destroying the
    last collective's work (a barrier keeps the works before it), drops tensors whose Python objects
    need the GIL; the finalizing interpreter ends that thread instead, and its unwinding through the
    work's destructor calls std::terminate (a core dump's backtrace). `close` joins those threads only
    when nothing else holds the group, and FSDP2's device meshes stay cached in DTensor. Aborted
    torchrun launches: `benchmarks/teardown.py`. Files are closed by then (checkpoints and logs are
    written atomically or flushed per record)."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
