"""Small building blocks shared by attention, MoE and the transformer: RMSNorm, the SwiGLU FFN and
buffers kept in float32 through dtype casts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 for stability (as V3's reference code)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype == torch.float32:  # PyTorch's fused kernel, bit-identical here
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return self.weight * F.rms_norm(x.float(), self.weight.shape, None, self.eps).to(x.dtype)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x)). Used by dense layers and shared experts."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gate and up read the same x: one matmul over the stacked weights
        gate, up = F.linear(x, torch.cat([self.gate_proj.weight, self.up_proj.weight])).chunk(2, dim=-1)
        return self.down_proj(swiglu(gate, up))


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up for gate/up halves of one matmul's output. The gate is copied to contiguous
    memory first: silu and its backward over rows of a strided half are slow on a CPU (bf16,
    4032 x 96 of 192: fwd+bwd 0.96 -> 0.55 ms with the copy)."""
    return F.silu(gate.contiguous()) * up


class Float32Buffers(nn.Module):
    """A module whose buffers named in `FLOAT32_BUFFERS` stay float32 through dtype casts
    (`model.to(torch.bfloat16)`, `.half()`), as transformers keeps such state
    (`_keep_in_fp32_modules_strict`); other casts (device moves) apply to them as usual."""

    FLOAT32_BUFFERS: tuple[str, ...] = ()

    def _apply(self, fn, recurse: bool = True):  # type: ignore[no-untyped-def]  # nn.Module's signature
        before = {name: self._buffers[name] for name in self.FLOAT32_BUFFERS}
        super()._apply(fn, recurse)
        for name, old in before.items():
            new = self._buffers[name]
            if new is not None and old is not None and new.dtype != torch.float32:
                self._buffers[name] = old.to(new.device, torch.float32)  # from the unrounded values
        return self
