"""DeepSeekMoE with auxiliary-loss-free load balancing (V3 §2.1.2).

Each token goes through `n_shared_experts` shared experts and `num_experts_per_tok` of the
`n_routed_experts` routed ones. Routing (V3 eq. 12-16):
  s_i  = sigmoid(u · e_i)                        affinity of the token to expert i
  choose the top `topk_group` of `n_group` groups by the sum of each group's top-2 (s_i + b_i),
  then the top-K experts inside them by s_i + b_i,
  g_i  = s_i / sum_{chosen} s_j * routed_scaling_factor     (the bias never enters g_i)
The bias b_i balances load without an auxiliary loss: after each optimizer step,
b_i += bias_update_speed * sign(mean load - load_i)  (`MoE.update_bias`). An optional
sequence-wise balance loss (V3 eq. 17-20, weight `seq_aux_loss_alpha`) complements it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model.config import ModelConfig
from r1lab.model.layers import MLP, Float32Buffers, swiglu


# Without gradients, N tokens take the dense path when N * E / K <= this: the dense path does E / K
# times the expert FLOPs of dispatching, worth it only while per-op overhead dominates (decoding).
DENSE_DECODE_BUDGET = 512


@dataclass
class Routing:
    weights: torch.Tensor  # (N, K) float32 gate values g
    indices: torch.Tensor  # (N, K) chosen experts
    scores: torch.Tensor  # (N, E) float32 affinities s (unbiased)


def route(logits: torch.Tensor, bias: torch.Tensor, *, top_k: int, n_group: int, topk_group: int,
          scoring_func: str = "sigmoid", norm_topk_prob: bool = True, scaling: float = 1.0) -> Routing:
    """Group-limited top-k routing on (N, E) router logits; pure function of its inputs."""
    N, E = logits.shape
    scores = logits.float().sigmoid() if scoring_func == "sigmoid" else logits.float().softmax(dim=-1)
    biased = scores + bias.float()  # (N, E): the bias only decides *which* experts
    # groups score by their top-2 biased affinities with either scoring_func, as DeepSeek's reference
    # Gate does whenever it has a balancing bias (r1lab always has one); V2's bias-free
    # `group_limited_greedy` (max per group) is not implemented, and checkpoints that use it are refused
    if 1 < n_group and topk_group < n_group:  # with every group allowed the limit is a no-op
        group_scores = biased.view(N, n_group, E // n_group).topk(2, dim=-1).values.sum(-1)  # (N, G)
        top_groups = group_scores.topk(topk_group, dim=-1).indices  # (N, topk_group)
        group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, top_groups, True)
        biased = biased.masked_fill(~group_mask.repeat_interleave(E // n_group, dim=1), float("-inf"))
    indices = biased.topk(top_k, dim=-1).indices  # (N, K)
    weights = scores.gather(1, indices)  # (N, K): from the unbiased affinities
    if norm_topk_prob:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return Routing(weights=weights * scaling, indices=indices, scores=scores)


class Router(Float32Buffers):
    """The gate: expert centroids e_i and the balancing bias b_i (`e_score_correction_bias`)."""

    # in bf16, gamma = 0.001 updates to a bias near 1 round away (bf16 steps there by 0.008) and
    # token counts above 256 lose units
    FLOAT32_BUFFERS = ("e_score_correction_bias", "expert_load")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.weight = nn.Parameter(torch.empty(config.n_routed_experts, config.hidden_size))
        self.register_buffer("e_score_correction_bias", torch.zeros(config.n_routed_experts))
        # tokens routed to each expert since the last bias update (not saved in checkpoints)
        self.register_buffer("expert_load", torch.zeros(config.n_routed_experts), persistent=False)

    def forward(self, x: torch.Tensor, token_valid: torch.Tensor | None = None) -> Routing:
        """x (N, D) -> routing; token_valid (N,) bool: only real tokens count toward the load
        (padding would skew the balancing bias toward the experts pads happen to choose), and only
        in training mode with gradients enabled."""
        c = self.config
        # float32 routing: V3 §3.3.1 keeps the MoE gating in higher precision; autocast would run
        # this matmul in bf16 even on float32 inputs, so it is switched off around it
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(x.float(), self.weight.float())  # (N, E)
        routing = route(logits, self.e_score_correction_bias, top_k=c.num_experts_per_tok, n_group=c.n_group,
                        topk_group=c.topk_group, scoring_func=c.scoring_func,
                        norm_topk_prob=c.norm_topk_prob, scaling=c.routed_scaling_factor)
        # only forwards that train count: a no-grad pass in train mode (old log-probs, a metric) is
        # no optimizer step, and its tokens would move the bias as if they had been trained on
        if self.training and torch.is_grad_enabled():
            chosen = routing.indices if token_valid is None else routing.indices[token_valid]  # (N', K)
            with torch.no_grad():
                self.expert_load += torch.bincount(chosen.flatten(), minlength=c.n_routed_experts)
        return routing


class Experts(nn.Module):
    """All routed experts' SwiGLU weights as stacked tensors (E, ...), dispatched without a
    Python loop over tokens: tokens are sorted by expert and each expert runs one matmul."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        E, D, I = config.n_routed_experts, config.hidden_size, config.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * I, D))  # [gate ; up] per expert
        self.down_proj = nn.Parameter(torch.empty(E, D, I))
        # grouped GEMM (`torch._grouped_mm`, one kernel for all experts): None = where PyTorch
        # has a fast one (bf16 on Hopper or newer GPUs); True/False forces it (benchmarks, tests)
        self.grouped_mm: bool | None = None

    def forward(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        return self.compute(x, routing, self.gate_up_proj, self.down_proj)

    def compute(self, x: torch.Tensor, routing: Routing, gate_up_proj: torch.Tensor,
                down_proj: torch.Tensor) -> torch.Tensor:
        """x (N, D) through the experts `routing.indices` name, weighted by `routing.weights`, with
        the experts' weights given: these modules' own, or one process's share of them under
        expert parallelism (r1lab/expert_parallel.py)."""
        E, K = gate_up_proj.shape[0], routing.indices.shape[1]
        if not torch.is_grad_enabled() and x.shape[0] * E <= DENSE_DECODE_BUDGET * K:
            return dense(x, routing, gate_up_proj, down_proj)
        if self.grouped_mm if self.grouped_mm is not None else fast_grouped_mm(x):
            return grouped(x, routing, gate_up_proj, down_proj)
        return dispatch(x, routing, gate_up_proj, down_proj)


def dense(x: torch.Tensor, routing: Routing, gate_up_proj: torch.Tensor, down_proj: torch.Tensor) -> torch.Tensor:
    """Few tokens (decoding): run every expert on every token in three batched matmuls and
    weight the outputs by the gates (0 for experts not chosen). More FLOPs than dispatching,
    but a third of the operations (15 vs 45 aten ops in float32), and per-op overhead is what
    a decode step costs (benchmarks/design_choices.py, key `moe_dense`)."""
    E, two_i, D = gate_up_proj.shape
    N = x.shape[0]
    gate, up = F.linear(x, gate_up_proj.reshape(E * two_i, D)).view(N, E, two_i).chunk(2, dim=-1)
    gates = torch.zeros(N, E, dtype=x.dtype, device=x.device)
    gates.scatter_(1, routing.indices, routing.weights.to(x.dtype))  # (N, E), 0 for unchosen experts
    h = F.silu(gate) * up * gates[:, :, None]  # (N, E, I)
    return torch.bmm(h.transpose(0, 1), down_proj.transpose(1, 2)).sum(0)  # (E, N, D) -> (N, D)


def dispatch(x: torch.Tensor, routing: Routing, gate_up_proj: torch.Tensor, down_proj: torch.Tensor) -> torch.Tensor:
    E, two_i, D = gate_up_proj.shape
    macs = PER_EXPERT_OVERHEAD_MACS
    if x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type):
        # float32 matmuls: fewer FLOP/s than bf16 (3.3x fewer on an AMX Xeon, 2.1x on an AVX-512
        # BF16 EPYC: train_precision.py's matmul_ms_4032_rows; design_choices.py, key
        # `matmul_float32_vs_bf16`), so each padding multiply-add is counted 4x dearer
        macs //= 4
    slots = ExpertSlots.build(routing.indices, E, max_waste_rows=E * macs // (D * two_i // 2))
    xs = _Slots.apply(x, slots)  # (P, D): each expert's tokens in a block of rows
    if slots.equal_blocks:  # one batched matmul per projection for all experts
        gate, up = torch.bmm(xs.view(E, -1, D), gate_up_proj.transpose(1, 2)).chunk(2, dim=-1)  # (E, M, I)
        ys = torch.bmm(swiglu(gate, up), down_proj.transpose(1, 2)).view(-1, D)  # (P, D)
        return _combine(ys, routing, slots)
    # unbind once: indexing the stacked weight per expert would make autograd build a full
    # (E, ...) zero gradient for every expert (O(E^2) memory traffic); unbind's backward is one stack
    gate_up, down = gate_up_proj.unbind(0), down_proj.unbind(0)
    outs = []
    for e, chunk in enumerate(xs.split(slots.sizes)):
        if chunk.shape[0] == 0:
            continue
        gate, up = F.linear(chunk, gate_up[e]).chunk(2, dim=-1)
        outs.append(F.linear(swiglu(gate, up), down[e]))
    return _combine(torch.cat(outs), routing, slots)


def grouped(x: torch.Tensor, routing: Routing, gate_up_proj: torch.Tensor, down_proj: torch.Tensor) -> torch.Tensor:
    """Tokens grouped by expert as in `dispatch`, then each projection is one grouped GEMM
    over the blocks (`offs` = where each expert's rows end), as torchtitan's MoE on GPUs:
    two kernels per direction instead of two per expert, no padding to equal blocks."""
    E = gate_up_proj.shape[0]
    slots = ExpertSlots.build(routing.indices, E)
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    xs = _Slots.apply(x, slots).to(dtype)  # (P, D)
    offs = slots.ends.to(torch.int32)  # (E,)
    # weights as (E, D, 2I) and (E, I, D) views of the stored (E, out, in) tensors
    gate, up = torch._grouped_mm(xs, gate_up_proj.to(dtype).transpose(1, 2), offs=offs).chunk(2, dim=-1)
    ys = torch._grouped_mm(swiglu(gate, up), down_proj.to(dtype).transpose(1, 2), offs=offs)  # (P, D)
    return _combine(ys, routing, slots)


def _combine(ys: torch.Tensor, routing: Routing, slots: "ExpertSlots") -> torch.Tensor:
    """Expert outputs ys (P, D), grouped by expert -> (N, D): each row times its gate (0 on
    padding rows), then each token's K rows summed."""
    weights = F.pad(routing.weights.flatten(), (0, 1)).index_select(0, slots.slot_of)  # (P,)
    return _Tokens.apply(ys * weights[:, None].to(ys.dtype), slots)


def fast_grouped_mm(x: torch.Tensor) -> bool:
    """Whether `torch._grouped_mm` has a fused kernel for x's device and (autocast) dtype: bf16
    on CUDA devices of compute capability 9.0+ (elsewhere PyTorch loops over the groups)."""
    if not (x.is_cuda and hasattr(torch, "_grouped_mm") and torch.cuda.get_device_capability(x.device) >= (9, 0)):
        return False
    autocast = torch.is_autocast_enabled("cuda")
    return (torch.get_autocast_dtype("cuda") if autocast else x.dtype) == torch.bfloat16


# Each expert's block of rows is padded to a multiple of this. On CPUs, bf16 matmuls (oneDNN)
# build a kernel per new shape (a 1000 x 128 x 192 matmul's first call at a new row count is
# several times slower than at a repeated one: benchmarks/design_choices.py, key `bf16_new_shape`),
# and the tokens per expert change every step; with padding the shapes repeat after a few steps.
ROWS_MULTIPLE = 32
# All experts run as one batched matmul (a few ops instead of a few per expert) when padding every
# block to the largest wastes fewer multiply-adds than this per expert, about what the ~15 ops an
# expert costs fwd+bwd take on a CPU. The tiny preset's MoE layer in a GRPO update (forward and
# backward, bf16 autocast) is faster with the bmm than with the loop (benchmarks/design_choices.py,
# key `moe_bmm_vs_loop`); the `mid` benchmark model (larger experts) was faster with the loop (not
# reproduced by design_choices.py).
PER_EXPERT_OVERHEAD_MACS = 2**22


@dataclass
class ExpertSlots:
    """Where each (token, k) slot goes when tokens are grouped by expert, blocks padded."""
    slot_of: torch.Tensor  # (P,) slot n*K + k held by each grouped row; N*K on padding rows
    token_of: torch.Tensor  # (P,) token n of each grouped row; a copy of token N - 1 on padding rows
    row_of: torch.Tensor  # (N*K,) grouped row of each slot (the inverse of slot_of)
    sizes: list[int]  # rows per expert block (multiples of ROWS_MULTIPLE)
    ends: torch.Tensor  # (E,) row after each expert's block (cumulative sizes), on the device
    k: int  # experts per token
    equal_blocks: bool  # every block as large as the largest: the experts can run as one bmm

    @classmethod
    @torch.compiler.disable  # data-dependent shapes (a host sync): bookkeeping that compiling cannot fuse
    def build(cls, indices: torch.Tensor, n_experts: int, max_waste_rows: int = 0) -> "ExpertSlots":
        """`max_waste_rows`: padding rows allowed for equal blocks (0: only if it costs nothing)."""
        flat = indices.flatten()  # (N*K,)
        NK, dev = flat.shape[0], flat.device
        order = flat.argsort(stable=True)  # slots grouped by expert
        counts = torch.bincount(flat, minlength=n_experts)  # (E,)
        padded = (counts + ROWS_MULTIPLE - 1) // ROWS_MULTIPLE * ROWS_MULTIPLE
        sizes = padded.tolist()  # the one host-device sync (shapes depend on the routing)
        block = max(sizes)
        equal = n_experts * block - sum(sizes) <= max_waste_rows
        if equal:
            padded, sizes = torch.full_like(padded, block), [block] * n_experts
        expert = flat[order]  # (N*K,) expert of each grouped slot
        rank = torch.arange(NK, device=dev) - (counts.cumsum(0) - counts)[expert]  # place within its expert
        ends = padded.cumsum(0)  # (E,)
        dest = (ends - padded)[expert] + rank  # (N*K,) padded row of each grouped slot
        slot_of = torch.full((sum(sizes),), NK, dtype=torch.long, device=dev).index_copy_(0, dest, order)
        row_of = torch.empty_like(order).index_copy_(0, order, dest)
        token_of = (slot_of // indices.shape[1]).clamp_(max=indices.shape[0] - 1)
        return cls(slot_of=slot_of, token_of=token_of, row_of=row_of, sizes=sizes, ends=ends, k=indices.shape[1],
                   equal_blocks=equal)


class _Slots(torch.autograd.Function):
    """x (N, D) -> (P, D): every token copied to its K expert rows. Padding rows hold a copy of
    some token: their routing weight is 0, so they add nothing to outputs or gradients, and no
    zero row has to be appended to x. The backward sums each token's K rows (`_Tokens`). Both
    ways are row gathers; autograd's own backward of x[index] would be a scatter-add, several
    times slower on a CPU."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slots: ExpertSlots) -> torch.Tensor:
        ctx.slots = slots
        return x.index_select(0, slots.token_of)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _Tokens.apply(grad, ctx.slots), None


class _Tokens(torch.autograd.Function):
    """ys (P, D) grouped by expert -> (N, D): the sum of each token's K rows (the adjoint of `_Slots`)."""

    @staticmethod
    def forward(ctx, ys: torch.Tensor, slots: ExpertSlots) -> torch.Tensor:
        ctx.slots = slots
        rows = ys.index_select(0, slots.row_of).view(-1, slots.k, ys.shape[-1])  # (N, K, D)
        # K slices added, not .sum(1): a reduction over the middle dim is a slow kernel on CPUs
        # (~1 ms vs 0.14 ms for 8192 x 256 bf16 rows, K = 2: benchmarks/design_choices.py, key
        # `combine_sum`); at least float32 accumulation beyond
        # two terms (float64 stays float64: `.float()` would round its first term to float32)
        total = rows[:, 0] if slots.k <= 2 else rows[:, 0].to(torch.promote_types(ys.dtype, torch.float32))
        for k in range(1, slots.k):
            total = total + rows[:, k]
        return total.to(ys.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return _Slots.apply(grad, ctx.slots), None


class MoE(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.gate = Router(config)
        self.experts = Experts(config)
        self.shared_experts = (MLP(config.hidden_size, config.moe_intermediate_size * config.n_shared_experts)
                               if config.n_shared_experts > 0 else None)

    def forward(self, x: torch.Tensor,
                token_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, D) -> (output (B, T, D), sequence-wise balance loss or None). token_valid
        (B, T) bool marks real tokens: padding counts neither toward the expert load nor in the
        balance loss; outputs are the same either way (every token is routed)."""
        B, T, D = x.shape
        flat = x.reshape(B * T, D)
        valid = token_valid.reshape(B * T) if token_valid is not None else None
        routing = self.gate(flat, valid)
        out = self.experts(flat, routing).view(B, T, D)
        if self.shared_experts is not None:
            out = out + self.shared_experts(x)
        aux = None
        if self.training and self.config.seq_aux_loss_alpha > 0:
            aux = sequence_balance_loss(routing, B, T, self.config.num_experts_per_tok, token_valid)
            aux = aux * self.config.seq_aux_loss_alpha
        return out, aux

    @torch.no_grad()
    def update_bias(self) -> None:
        """b_i += gamma * sign(mean load - load_i), then reset the load counter (V3 §2.1.2)."""
        load = self.gate.expert_load
        if load.sum() > 0:
            self.gate.e_score_correction_bias += self.config.bias_update_speed * torch.sign(load.mean() - load)
        load.zero_()


def sequence_balance_loss(routing: Routing, B: int, T: int, top_k: int,
                          token_valid: torch.Tensor | None = None) -> torch.Tensor:
    """sum_i f_i * P_i per sequence, averaged over the batch (V3 eq. 17-20, without alpha).

    f_i = E / (K T) * #tokens of the sequence whose K highest affinities s include i;
    P_i = mean_t s_i,t / sum_j s_j,t, with T and the mean over the sequence's real tokens only when
    token_valid (B, T) is given; a sequence without any (a batch's all-padding row) is left out of
    the batch average. f_i counts the top-K of the unbiased s over all experts (V3 eq. 18, as
    Megatron-LM's `compute_routing_scores_for_aux_loss`), not `routing.indices`: the balancing
    bias and the group limit change which experts a token goes to, not what this loss counts.
    """
    E = routing.scores.shape[-1]
    w = torch.ones(B, T, 1, device=routing.scores.device) if token_valid is None \
        else token_valid.view(B, T, 1).float()  # (B, T, 1): 1 on tokens that count
    n = w.sum(1).clamp(min=1)  # (B, 1) real tokens per sequence
    top = routing.scores.topk(top_k, dim=-1).indices  # (N, K): eq. 18's Topk({s_j,t}, K), bias-free
    chosen = torch.zeros_like(routing.scores).scatter_(1, top, 1.0).view(B, T, E)
    f = (chosen * w).sum(1) * E / (top_k * n)  # (B, E), no gradient (counts)
    p = ((routing.scores / routing.scores.sum(-1, keepdim=True)).view(B, T, E) * w).sum(1) / n  # (B, E)
    per_seq = (f * p).sum(-1)  # (B,)
    if token_valid is None:
        return per_seq.mean()
    # an all-padding row has f = P = 0: averaged in, it would shrink every real sequence's loss
    real = token_valid.view(B, T).any(1).float()  # (B,)
    return (per_seq * real).sum() / real.sum().clamp(min=1)
