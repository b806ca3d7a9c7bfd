"""Multi-head Latent Attention (DeepSeek-V2 §2.1, V3 §2.1.1).

Keys and values are not projected from the hidden state directly: it is first compressed into
a small latent c_KV (`kv_lora_rank` wide), from which per-head keys and values are expanded.
Positional information rides on a separate, decoupled RoPE key (`qk_rope_head_dim` wide) that
all heads share. Queries are optionally low-rank too (`q_lora_rank`, 0 = full rank).

Decoding caches only c_KV and the RoPE key per token and layer: (kv_lora_rank + qk_rope_head_dim)
values instead of 2 * heads * head_dim for multi-head attention of the same heads. For V3
(512 + 64 against 2 * 128 * 128) that is 576 vs 32,768 values, 1,152 vs 65,536 bytes per token
per layer in bf16: 57x less. The engine's decode steps absorb the key/value up-projections into
the query and the output ("weight absorption", `model/decode.py`), so the per-head keys and values
are never rebuilt; this module's forward always expands them (training, prefill).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model.config import ModelConfig
from r1lab.model.layers import RMSNorm
from r1lab.model.rope import apply_rope


# Up to this many (query, key) pairs per row, CPU attention is computed as two plain matmuls, above
# by the fused kernel. bf16: 28 vs 33 ms fwd+bwd for 8 x 8 heads x 256^2; whole GRPO updates of
# 64 rows x 4 heads at 383 x 431 pairs: 1.53 (split) vs 2.01 s. float32 turns earlier: 1.15 (fused)
# vs 1.23 s at 191 x 239 pairs, 1.44 vs 1.74 s at 255 x 303; about even at 127 x 175 (0.70 vs 0.71 s).
SPLIT_ATTENTION_MAX = 512 * 512
SPLIT_ATTENTION_MAX_FLOAT32 = 160 * 160
# ... over at most this many scores (batch x heads x queries x keys) at a time: larger score
# tensors fall out of the caches and, past glibc's 32 MiB mmap threshold, page-fault on every
# allocation. Measured, 64 rows x 4 heads x 255 x 303 (a 256-token GRPO batch), fwd+bwd: 171 ->
# 58 ms in bf16, 182 -> 104 ms in float32 (the fused kernel: 116 / 108 ms); smaller batches unchanged.
SPLIT_ATTENTION_CHUNK = 4_000_000
# The split path takes the softmax in the scores' own dtype, not in float32 cast back to bf16: bf16
# GRPO updates of the tiny model were 1.08-1.09x as fast at 256 tokens and 1.005x at 64, an SFT step
# at 8 x 512 tokens 1.11x (benchmarks/attention_softmax.py). bf16 probabilities differ from the cast
# ones by at most an ulp. True restores the float32 softmax (the benchmark's baseline).
FLOAT32_SOFTMAX = False


class KVCache:
    """The latent decode cache of every layer, preallocated for `max_len` positions.

    Slot s of every row holds the s-th token fed to the model (prompts are left-padded, so pad
    slots are masked by the caller's `attention_mask`). `length` counts filled slots.
    """

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        n_layers = config.num_hidden_layers
        self.latent = torch.zeros(n_layers, batch_size, max_len, config.kv_lora_rank, device=device, dtype=dtype)
        self.k_rope = torch.zeros(n_layers, batch_size, max_len, config.qk_rope_head_dim, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.latent.shape[2]

    def bytes_per_token(self) -> int:
        """Bytes cached per token, all layers together."""
        per_layer = self.latent.shape[-1] + self.k_rope.shape[-1]
        return per_layer * self.latent.shape[0] * self.latent.element_size()

    def repeat_interleave(self, n: int) -> "KVCache":
        """Each row repeated n times: a prompt prefilled once serves n samples (GRPO groups)."""
        out = object.__new__(KVCache)
        out.latent = self.latent.repeat_interleave(n, dim=1)
        out.k_rope = self.k_rope.repeat_interleave(n, dim=1)
        out.length = self.length
        return out

    def select(self, rows: torch.Tensor) -> "KVCache":
        """Keeps only the given rows (e.g. drop finished sequences)."""
        out = object.__new__(KVCache)
        out.latent, out.k_rope, out.length = self.latent[:, rows], self.k_rope[:, rows], self.length
        return out

    def update(self, layer: int, latent: torch.Tensor, k_rope: torch.Tensor,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Writes this step's (B, T, c) latents and (B, T, d_rope) keys after the filled slots;
        returns everything cached so far for the layer (B, S, ...) in `dtype`, and the step's first slot."""
        start, T = self.length, latent.shape[1]
        if start + T > self.max_len:  # the slice write would broadcast or fail with a shape error
            raise ValueError(f"KVCache holds {self.max_len} positions: {start} are filled, {T} more do not fit")
        self.latent[layer, :, start:start + T] = latent.to(self.latent.dtype)
        self.k_rope[layer, :, start:start + T] = k_rope.to(self.k_rope.dtype)
        return self.latent[layer, :, :start + T].to(dtype), self.k_rope[layer, :, :start + T].to(dtype), start


class PrefixCache:
    """Shared prompts for training (GRPO groups): a forward over the prompts records each layer's
    latents and RoPE keys, kept in the autograd graph; `select` gives every completion its
    prompt's, and a forward over the completions attends to them. The G completions of a prompt
    then cost one prompt forward instead of G, with the same logits and gradients as full rows."""

    def __init__(self) -> None:
        self.latent: dict[int, torch.Tensor] = {}  # layer -> (B, S, c)
        self.k_rope: dict[int, torch.Tensor] = {}  # layer -> (B, S, d_rope)
        self.length = 0  # S; the model's forward advances it

    def update(self, layer: int, latent: torch.Tensor, k_rope: torch.Tensor,
               dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        if layer not in self.latent:  # recording the prompts
            self.latent[layer], self.k_rope[layer] = latent, k_rope
            return latent, k_rope, 0
        return (torch.cat([self.latent[layer], latent], dim=1), torch.cat([self.k_rope[layer], k_rope], dim=1),
                self.latent[layer].shape[1])

    def select(self, rows: torch.Tensor) -> "PrefixCache":
        """Row i of the result is prompt rows[i] (index_select: its backward sums over the group)."""
        out = PrefixCache()
        out.latent = {k: v.index_select(0, rows) for k, v in self.latent.items()}
        out.k_rope = {k: v.index_select(0, rows) for k, v in self.k_rope.items()}
        out.length = self.length
        return out


class MLA(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads = config.num_attention_heads
        self.d_nope, self.d_rope, self.d_v = config.qk_nope_head_dim, config.qk_rope_head_dim, config.v_head_dim
        self.kv_rank = config.kv_lora_rank
        self.scale = config.softmax_scale
        self.interleave = config.rope_interleave
        d, h, d_qk = config.hidden_size, self.n_heads, config.qk_head_dim
        if config.q_lora_rank > 0:  # W_DQ, norm, W_UQ (V3 eq. 6-8)
            self.q_a_proj = nn.Linear(d, config.q_lora_rank, bias=False)
            self.q_a_layernorm = RMSNorm(config.q_lora_rank)
            self.q_b_proj = nn.Linear(config.q_lora_rank, h * d_qk, bias=False)
        else:
            self.q_proj = nn.Linear(d, h * d_qk, bias=False)
        # W_DKV and W_KR fused: hidden -> [c_KV ; k_rope]   (V3 eq. 1, 3)
        self.kv_a_proj_with_mqa = nn.Linear(d, self.kv_rank + self.d_rope, bias=False)
        self.kv_a_layernorm = RMSNorm(self.kv_rank)
        # W_UK and W_UV fused: c_KV -> per-head [k_nope ; v]   (V3 eq. 2, 5)
        self.kv_b_proj = nn.Linear(self.kv_rank, h * (self.d_nope + self.d_v), bias=False)
        self.o_proj = nn.Linear(h * self.d_v, d, bias=False)

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The query and [c_KV ; k_rope] from x: both down-projections read x, so they run as
        one matmul over the concatenated weights (one pass over x, one cast under autocast)."""
        first = self.q_proj if hasattr(self, "q_proj") else self.q_a_proj
        q, kv = F.linear(x, torch.cat([first.weight, self.kv_a_proj_with_mqa.weight])).split(
            [first.weight.shape[0], self.kv_rank + self.d_rope], dim=-1)
        if not hasattr(self, "q_proj"):
            q = self.q_b_proj(self.q_a_layernorm(q))
        return q, kv

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attention_mask: torch.Tensor | None = None, cache: KVCache | PrefixCache | None = None) -> torch.Tensor:
        """x: (B, T, D); cos/sin: (B, T, d_rope/2); attention_mask: (B, S) bool over every key
        position so far (cache slots included), True = real token, or the (B, 1, T, S) mask
        `attention_mask_4d` builds from it (the model builds it once for all layers); returns (B, T, D)."""
        B, T, _ = x.shape
        q, kv = self._project(x)
        q = q.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, H, T, d_nope + d_rope)
        q_nope, q_rope = q.split([self.d_nope, self.d_rope], dim=-1)
        q_rope = apply_rope(q_rope, cos, sin, self.interleave)
        latent, k_rope = kv.split([self.kv_rank, self.d_rope], dim=-1)
        latent = self.kv_a_layernorm(latent)  # (B, T, c)
        k_rope = apply_rope(k_rope[:, None], cos, sin, self.interleave)[:, 0]  # (B, T, d_rope)

        start = 0
        if cache is not None:  # add this step's latents, then attend over everything cached
            latent, k_rope, start = cache.update(self.layer_idx, latent, k_rope, x.dtype)
        mask = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else \
            attention_mask_4d(attention_mask, start, T, latent.shape[1], x.device)
        out = self._attend_expanded(q_nope, q_rope, latent, k_rope, mask)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.d_v))

    def _attend_expanded(self, q_nope: torch.Tensor, q_rope: torch.Tensor, latent: torch.Tensor,
                         k_rope: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Training/prefill: rebuild per-head keys and values from the latent, then SDPA."""
        B, S, _ = latent.shape
        kv = self.kv_b_proj(latent).view(B, S, self.n_heads, self.d_nope + self.d_v).transpose(1, 2)
        k_nope, v = kv.split([self.d_nope, self.d_v], dim=-1)  # (B, H, S, d_nope), (B, H, S, d_v)
        T = q_nope.shape[2]
        limit = SPLIT_ATTENTION_MAX_FLOAT32 if q_nope.dtype == torch.float32 else SPLIT_ATTENTION_MAX
        if T * S <= limit and q_nope.device.type == "cpu":
            rows = max(1, SPLIT_ATTENTION_CHUNK // (self.n_heads * T * S))  # batch rows per chunk
            masks = mask.split(rows) if mask is not None and mask.shape[0] == B else [mask] * -(-B // rows)
            out = [self._attend_split(*chunk) for chunk in zip(q_nope.split(rows), q_rope.split(rows),
                                                                 k_nope.split(rows), k_rope.split(rows),
                                                                 v.split(rows), masks)]
            return out[0] if len(out) == 1 else torch.cat(out)  # rows are independent: the numbers of one go
        k = torch.cat([k_nope, k_rope[:, None].expand(-1, self.n_heads, -1, -1)], dim=-1)
        q = torch.cat([q_nope, q_rope], dim=-1)  # (B, H, T, d_qk)
        is_causal = mask is None and q.shape[2] == S
        d_qk = q.shape[-1]
        if self.d_v < d_qk:  # PyTorch's fused (flash) kernels need equal q/k/v widths: zero-pad v
            v = F.pad(v, (0, d_qk - self.d_v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.scale)
        return out[..., :self.d_v]

    def _attend_split(self, q_nope: torch.Tensor, q_rope: torch.Tensor, k_nope: torch.Tensor, k_rope: torch.Tensor,
                      v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Short sequences on a CPU: scores as q_rope·k_rope + q_nope·k_nope in two `baddbmm`s
        that also add the mask (as -inf) and the softmax scale, the RoPE key shared by all heads
        (its queries stacked as rows), no concatenated or zero-padded copies (faster than the
        fused kernel there; the (B, H, T, S) scores are small)."""
        B, H, T, _ = q_nope.shape
        S = k_nope.shape[2]
        if mask is None:
            mask = torch.ones(T, S, dtype=torch.bool, device=q_nope.device).tril(S - T)  # causal
        bias = torch.zeros(mask.shape, dtype=q_nope.dtype, device=q_nope.device).masked_fill_(~mask, float("-inf"))
        bias = bias.expand(B, H, T, S).reshape(B, H * T, S)
        scores = torch.baddbmm(bias, q_rope.reshape(B, H * T, -1), k_rope.transpose(1, 2), alpha=self.scale)
        scores = torch.baddbmm(scores.view(B * H, T, S), q_nope.reshape(B * H, T, -1),
                               k_nope.reshape(B * H, S, -1).transpose(1, 2), alpha=self.scale)  # (B*H, T, S)
        # the scores' dtype (see FLOAT32_SOFTMAX); float32 scores are float32 either way
        probs = scores.softmax(dim=-1, dtype=torch.float32).to(scores.dtype) if FLOAT32_SOFTMAX else scores.softmax(dim=-1)
        return torch.bmm(probs, v.reshape(B * H, S, -1)).view(B, H, T, -1)  # (B, H, T, d_v)


def attention_mask_4d(key_valid: torch.Tensor | None, start: int, T: int, S: int,
                    device: torch.device) -> torch.Tensor | None:
    """(B, 1, T, S) bool: query t (at slot start + t) sees key s if s <= start + t and the key is
    real. A query always sees itself, so padded query rows stay finite. None = plain causal."""
    if key_valid is None and start == 0:
        return None
    q_pos = torch.arange(start, start + T, device=device)[:, None]  # (T, 1)
    k_pos = torch.arange(S, device=device)[None, :]  # (1, S)
    mask = (k_pos <= q_pos)[None, None]  # (1, 1, T, S)
    if key_valid is not None:
        mask = mask & key_valid[:, None, None, :S].bool()
        mask = mask | (k_pos == q_pos)[None, None]
    return mask


def document_mask(document_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) document index of each position -> (B, 1, T, T) bool causal mask in which each
    token sees only earlier tokens of its own document (packed sequences)."""
    T = document_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=document_ids.device).tril()  # (T, T)
    same = document_ids[:, :, None] == document_ids[:, None, :]  # (B, T, T)
    return (same & causal)[:, None]
