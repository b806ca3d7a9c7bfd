"""Expert parallelism (EP) for DeepSeekMoE, applied from outside the model.

DeepSeek-V3 trains its MoE layers with 64-way expert parallelism (V3 §3.2): each process holds
`n_routed_experts / EP` of every MoE layer's routed experts, whole, and the tokens travel to them.
An all-to-all sends every (token, chosen expert) pair to the process that owns the expert, the
experts run, and a second all-to-all brings their outputs back to be weighted by the gates and
summed (dispatch and combine, V3 §3.2.2). Against FSDP alone, no process ever gathers another's
experts, which is what lets 256 experts a layer fit; the price is two all-to-alls a MoE layer and
direction, of the tokens rather than of the weights.

Here EP spans all the processes (its degree is the world size) and composes with FSDP2:
`parallel.parallelize(..., expert_parallel=True)` calls `shard_experts` first. It turns every
`Experts` module's two stacked weights into DTensors sharded on the expert dimension (`Shard(0)`,
the layout FSDP2 would give them at rest) that FSDP2 then leaves alone (`ignored_params`), and
swaps the module's class for `ExpertParallelExperts`, whose forward is the all-to-all above around
the model's own expert math (`Experts.compute` on the local shard). Checkpoints, the engine's whole
copy and the optimizer state gather these DTensors as they gather the rest (torch's state-dict
API). The router, the shared experts and attention stay as FSDP2 shards them: every process routes
its own tokens with the same (gathered) gate, and the load counters are summed as before.

Gradients: an expert's gradient on its owner sums what every process's tokens contribute (the
backward of the combine all-to-all brings them there). FSDP2 averages the other gradients over the
processes, so expert gradients are divided by the number of processes to match (`_ScaleGrad`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._functional_collectives import all_to_all_single_autograd
from torch.distributed.tensor import DeviceMesh, Shard, distribute_tensor

from r1lab.model.moe import Experts, Routing


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by `factor`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


class ExpertParallelExperts(Experts):
    """An `Experts` module holding this process's share of the experts (DTensors, `Shard(0)` over
    the processes: rank r owns experts [r L, (r + 1) L), L = n_routed_experts / processes). Made
    by `shard_experts`; every process must call it for every forward, as for FSDP2's units."""

    def forward(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """x (N, D) with its routing over all the experts -> (N, D), what `Experts` computes."""
        group = self.gate_up_proj.device_mesh.get_group()
        size = dist.get_world_size(group)
        gate_up = _ScaleGrad.apply(self.gate_up_proj.to_local(), 1.0 / size)  # (L, 2I, D)
        down = _ScaleGrad.apply(self.down_proj.to_local(), 1.0 / size)  # (L, D, I)
        local = gate_up.shape[0]
        N, K = routing.indices.shape
        flat = routing.indices.flatten()  # (N*K,) slot n*K + k: token n's k-th expert
        order = flat.argsort(stable=True)  # slots grouped by expert, hence by owner
        token = order // K  # (N*K,) the token of each grouped slot
        send = torch.bincount(flat // local, minlength=size)  # (S,) slots for each process
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send, group=group)  # (S,) slots from each process
        send_sizes, recv_sizes = send.tolist(), recv.tolist()  # the one host sync: shapes follow the routing
        rows = _exchange(x.index_select(0, token), recv_sizes, send_sizes, group)  # (M, D) dispatch
        with torch.no_grad():
            experts = _exchange(flat[order] % local, recv_sizes, send_sizes, group)  # (M,) local expert of each row
        ones = torch.ones(experts.shape[0], 1, device=x.device)
        ys = self.compute(rows, Routing(weights=ones, indices=experts[:, None], scores=ones), gate_up, down)  # (M, D)
        back = _exchange(ys, send_sizes, recv_sizes, group)  # (N*K, D) combine, in `order`
        gates = routing.weights.flatten()[order].to(back.dtype)  # (N*K,)
        out = torch.zeros(N, back.shape[1], dtype=back.dtype, device=back.device)
        return out.index_add(0, token, back * gates[:, None])  # (N, D): each token's K outputs summed


def _exchange(t: torch.Tensor, out_sizes: list[int], in_sizes: list[int], group: dist.ProcessGroup) -> torch.Tensor:
    """All-to-all of t's rows: in_sizes[r] rows go to process r, out_sizes[r] come from it.
    Differentiable (its backward is the reverse exchange)."""
    if not torch.is_grad_enabled() or not t.requires_grad:
        out = t.new_empty((sum(out_sizes), *t.shape[1:]))
        dist.all_to_all_single(out, t.contiguous(), out_sizes, in_sizes, group=group)
        return out
    # torch's functional collective with a backward, as torchtitan's MoE dispatch uses it
    return all_to_all_single_autograd(t.contiguous(), out_sizes, in_sizes, group)


def shard_experts(model: nn.Module, mesh: DeviceMesh) -> set[nn.Parameter]:
    """Shards every `Experts` module of `model` over `mesh` (1-D, every process) by expert and makes
    it an `ExpertParallelExperts`; returns the new parameters (for FSDP2's `ignored_params`)."""
    sharded: set[nn.Parameter] = set()
    size = mesh.size()
    for module in model.modules():
        if type(module) is not Experts:
            continue
        n_experts = module.gate_up_proj.shape[0]
        if n_experts % size:
            raise ValueError(f"expert parallelism over {size} processes needs a multiple of {size} routed "
                             f"experts per layer; this model has {n_experts}")
        for name in ("gate_up_proj", "down_proj"):
            weight = getattr(module, name)
            param = nn.Parameter(distribute_tensor(weight.detach(), mesh, [Shard(0)]),
                                 requires_grad=weight.requires_grad)
            setattr(module, name, param)
            sharded.add(param)
        module.__class__ = ExpertParallelExperts
    return sharded
