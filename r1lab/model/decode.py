"""One-token decode steps with packed weights: what an inference engine keeps beside the model.

A decode step feeds one token per row through the whole model. Its matmuls are small, so its
cost is the number of operations more than their FLOPs (on a CPU, ~5 us each; on a GPU, one
launch each). `DecodeWeights(model)` rearranges the model's weights once per `generate`
call (as vLLM keeps its own copy of the policy's weights) so that a step needs few, fat ops:

- attention input: the query (or query-down) projection and the KV-down projection in one matmul,
  the softmax scale folded into the query weights;
- attention in latent space with the key/value up-projections absorbed (DeepSeek-V2 §2.1.2), the
  padding mask added inside the first score matmul (`baddbmm`);
- MoE with few rows: every expert on every row, the shared experts as always-on experts of gate 1,
  so [routed | shared] gate/up is one matmul and their weighted sum through the down-projections
  is another (the sum over experts is the matmul's contraction). Many rows fall back to the
  model's own dispatching `MoE` module.

In float32 a step gives the model's logits up to rounding (tests/test_engine.py); with
`dtype=torch.bfloat16` the projections and experts run in bf16 while norms, residual stream,
router and softmax stay in float32, as under `torch.autocast`. Attention over the cache runs in
`cache_dtype`, the dtype the engine makes its cache in: float32 on a CPU, where these small
batched matmuls are faster in float32 than in bf16 (a bf16 step of 64 rows over 61 keys is faster
with a float32 cache: benchmarks/design_choices.py, key `decode_cache_dtype`), else the matmul dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from r1lab.model.mla import MLA, KVCache
from r1lab.model.moe import DENSE_DECODE_BUDGET, MoE
from r1lab.model.rope import apply_rope
from r1lab.model.transformer import Transformer


@dataclass
class _Attention:
    norm: torch.Tensor  # (D,) input RMSNorm weight, float32
    w_in: torch.Tensor  # rows [q_nope ; c_KV ; q_rope ; k_rope] (full-rank query, scaled), else [q-down ; c_KV ; k_rope]
    q_norm: torch.Tensor | None  # (q_lora_rank,) query-down RMSNorm weight, float32; None = full-rank query
    q_norm_eps: float  # its epsilon: the module's own (1e-6, as transformers), not config.rms_norm_eps
    w_q_up: torch.Tensor | None  # (H * d_qk, q_lora_rank) rows [q_nope ; q_rope] of all heads, scaled; None = full rank
    kv_norm: torch.Tensor  # (c,) latent RMSNorm weight, float32
    kv_norm_eps: float  # its epsilon, likewise the module's own
    w_uk: torch.Tensor  # (H, d_nope, c) key up-projection, absorbed into the query (in cache_dtype)
    w_uv_t: torch.Tensor  # (H, c, d_v) value up-projection, absorbed into the output (in cache_dtype)
    w_o: torch.Tensor  # (D, H * d_v)


@dataclass
class _FFN:
    norm: torch.Tensor  # (D,) post-attention RMSNorm weight, float32
    w_gate_up: torch.Tensor  # (2 * X * I, D): [gate of every (routed, then shared) expert ; up of every expert]
    w_down: torch.Tensor  # (D, X * I)
    moe: MoE | None  # the model's MoE (router, and the dispatching path for many rows); None = dense FFN
    gate_base: torch.Tensor | None  # (1, X): 0 for routed experts (filled per row), 1 for shared ones


def _query_rows(w: torch.Tensor, heads: int, d_nope: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Query weight rows (H * d_qk, ...) per head [nope ; rope] -> (nope rows of every head, rope
    rows of every head), times the softmax scale: q·k * scale = (scale q)·k."""
    w = (w.detach().float() * scale).view(heads, -1, w.shape[-1])  # (H, d_qk, in)
    return w[:, :d_nope].reshape(-1, w.shape[-1]), w[:, d_nope:].reshape(-1, w.shape[-1])


class DecodeWeights:
    """Packed weights of a `Transformer` for one-token steps over a `KVCache` (see module doc)."""

    def __init__(self, model: Transformer, dtype: torch.dtype | None = None) -> None:
        c = model.config
        self.config, self.dtype = c, dtype or model.lm_head.weight.dtype
        self.cache_dtype = torch.float32 if model.lm_head.weight.device.type == "cpu" else self.dtype
        self.embed = model.model.embed_tokens.weight
        self.final_norm = model.model.norm.weight.float()
        self.lm_head = self._cast(model.lm_head.weight)
        self.rotary = model.rotary
        self.attn = [self._pack_attention(layer.self_attn, layer.input_layernorm.weight)
                     for layer in model.model.layers]
        self.ffn = [self._pack_ffn(layer.mlp, layer.post_attention_layernorm.weight) for layer in model.model.layers]

    def _cast(self, w: torch.Tensor) -> torch.Tensor:
        return w.detach().to(self.dtype).contiguous()

    def _pack_attention(self, attn: MLA, norm: torch.Tensor) -> _Attention:
        H, kv_a = attn.n_heads, attn.kv_a_proj_with_mqa.weight.detach().float()
        latent_rows, k_rope_rows = kv_a[:attn.kv_rank], kv_a[attn.kv_rank:]
        if hasattr(attn, "q_proj"):  # the RoPE parts of query and key side by side: rotated in one go
            q_nope, q_rope = _query_rows(attn.q_proj.weight, H, attn.d_nope, attn.scale)
            w_in, q_norm, q_eps, w_q_up = torch.cat([q_nope, latent_rows, q_rope, k_rope_rows]), None, 0.0, None
        else:
            w_in = torch.cat([attn.q_a_proj.weight.detach().float(), latent_rows, k_rope_rows])
            q_norm, q_eps = attn.q_a_layernorm.weight.detach().float(), attn.q_a_layernorm.eps
            w_q_up = self._cast(torch.cat(_query_rows(attn.q_b_proj.weight, H, attn.d_nope, attn.scale)))
        w_kv_b = attn.kv_b_proj.weight.detach().view(H, attn.d_nope + attn.d_v, attn.kv_rank)
        return _Attention(norm=norm.detach().float(), w_in=self._cast(w_in), q_norm=q_norm, q_norm_eps=q_eps,
                          w_q_up=w_q_up, kv_norm=attn.kv_a_layernorm.weight.detach().float(),
                          kv_norm_eps=attn.kv_a_layernorm.eps,
                          w_uk=w_kv_b[:, :attn.d_nope].to(self.cache_dtype),
                          w_uv_t=w_kv_b[:, attn.d_nope:].transpose(1, 2).to(self.cache_dtype),
                          w_o=self._cast(attn.o_proj.weight))

    def _pack_ffn(self, mlp: torch.nn.Module, norm: torch.Tensor) -> _FFN:
        if not isinstance(mlp, MoE):  # a dense SwiGLU: one "expert" of gate 1
            return _FFN(norm=norm.detach().float(), moe=None, gate_base=None,
                        w_gate_up=self._cast(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])),
                        w_down=self._cast(mlp.down_proj.weight))
        E, two_i, D = mlp.experts.gate_up_proj.shape
        gate_up, down = [mlp.experts.gate_up_proj.detach()], [mlp.experts.down_proj.detach().permute(1, 0, 2).reshape(D, -1)]
        if mlp.shared_experts is not None:  # a shared MLP of width n*I is n always-on experts of width I
            s = mlp.shared_experts
            n = s.gate_proj.weight.shape[0] // (two_i // 2)
            gate_up.append(torch.cat([s.gate_proj.weight.detach().view(n, -1, D), s.up_proj.weight.detach().view(n, -1, D)], 1))
            down.append(s.down_proj.weight.detach())
        w_gate_up = torch.cat(gate_up)  # (X, 2I, D)
        # every expert's gate rows, then every expert's up rows: the step's gate and up halves are
        # then X * I wide runs (silu over (R, X, I) slices of width I is slower in bf16:
        # benchmarks/design_choices.py, key `decode_silu_layout`)
        stacked = torch.cat(w_gate_up.chunk(2, dim=1)).reshape(-1, D)  # (2 * X * I, D)
        return _FFN(norm=norm.detach().float(), w_gate_up=self._cast(stacked),
                    w_down=self._cast(torch.cat(down, dim=1)), moe=mlp,
                    gate_base=(torch.arange(w_gate_up.shape[0]) >= E).to(self.dtype)[None].to(w_gate_up.device))

    # ------------------------------------------------------------------ the step

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor,
             cache: KVCache) -> torch.Tensor:
        """tokens, positions (R,); key_valid (R, S) bool over every cache slot so far plus this
        step's; writes this step's latents at slot `cache.length`, advances it, returns float32
        logits (R, V)."""
        slot = cache.length
        bias = torch.zeros(key_valid.shape, dtype=cache.latent.dtype, device=tokens.device)
        bias = bias.masked_fill_(~key_valid, float("-inf"))[:, None]  # (R, 1, S), added to every head's scores
        cos, sin = self.rotary(positions[:, None])  # (R, 1, d_rope / 2)
        rotation = torch.complex(cos, sin) if self.config.rope_interleave else None  # e^{i theta}, all layers
        x = self.embed[tokens].float()  # (R, D) residual stream, float32; sublayers return the matmul
        for i, (attn, ffn) in enumerate(zip(self.attn, self.ffn)):  # dtype, the adds promote to float32
            x = x + self._attention(i, attn, self._norm(x, attn.norm), (cos, sin, rotation), bias, cache, slot)
            h = F.rms_norm(x, ffn.norm.shape, ffn.norm, self.config.rms_norm_eps)  # float32: the router's input
            x = x + self._ffn(ffn, h.to(self.dtype), h)
        cache.length = slot + 1
        return F.linear(self._norm(x, self.final_norm), self.lm_head).float()

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm in float32, output in the matmul dtype."""
        return F.rms_norm(x, weight.shape, weight, self.config.rms_norm_eps).to(self.dtype)

    def _rotate(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]) -> torch.Tensor:
        """RoPE on x (R, n, d_rope), float32: one complex multiply (interleaved pairs), else `apply_rope`."""
        cos, sin, rotation = rope
        if rotation is None:
            return apply_rope(x[:, :, None], cos, sin, False)[:, :, 0]
        # a copy unless already usable: one row's slice is contiguous but can start at an odd offset
        # (odd qk_nope_head_dim or kv_lora_rank), which the complex view refuses
        x = x.contiguous() if x.storage_offset() % 2 == 0 else x.clone()
        pairs = torch.view_as_complex(x.view(*x.shape[:-1], -1, 2))  # (R, n, d_rope / 2)
        return torch.view_as_real(pairs * rotation).flatten(-2)

    def _attention(self, layer: int, w: _Attention, h: torch.Tensor,
                   rope: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None], bias: torch.Tensor,
                   cache: KVCache, slot: int) -> torch.Tensor:
        c = self.config
        R, H, rank = h.shape[0], c.num_attention_heads, c.kv_lora_rank
        d_nope, d_rope = c.qk_nope_head_dim, c.qk_rope_head_dim
        projected = F.linear(h, w.w_in).float()  # (R, ...): one cast for query, latent and RoPE key
        if w.w_q_up is None:  # [q_nope ; c_KV ; q_rope ; k_rope], the scale folded into the query rows
            q_nope, latent, ropes = projected.split([H * d_nope, rank, (H + 1) * d_rope], dim=-1)
        else:  # [query-down ; c_KV ; k_rope], then the query up-projection [q_nope ; q_rope]
            q_down, latent, k_rope = projected.split([c.q_lora_rank, rank, d_rope], dim=-1)
            q = F.linear(F.rms_norm(q_down, (c.q_lora_rank,), w.q_norm, w.q_norm_eps).to(self.dtype), w.w_q_up)
            q_nope, q_rope = q.float().split([H * d_nope, H * d_rope], dim=-1)
            ropes = torch.cat([q_rope, k_rope], dim=-1)
        ropes = self._rotate(ropes.view(R, H + 1, d_rope), rope)  # (R, H + 1, d_rope): H query heads, the key
        cache.latent[layer, :, slot] = F.rms_norm(latent, (rank,), w.kv_norm, w.kv_norm_eps)
        cache.k_rope[layer, :, slot] = ropes[:, H]
        # attention in the cache's dtype (see module doc); the engine's is cache_dtype, as the absorbed
        # weights (cast here for a cache made otherwise: a no-op for the engine's)
        dtype = cache.latent.dtype
        latents, keys = cache.latent[layer, :, :slot + 1], cache.k_rope[layer, :, :slot + 1]  # (R, S, c), (R, S, d_rope)
        q_latent = torch.bmm(q_nope.view(R, H, d_nope).transpose(0, 1).to(dtype), w.w_uk.to(dtype)).transpose(0, 1)  # (R, H, c)
        scores = torch.baddbmm(bias, q_latent, latents.transpose(1, 2))  # (R, H, S) = q_nope W_UK c_KV, masked
        scores = torch.baddbmm(scores, ropes[:, :H].to(dtype), keys.transpose(1, 2))
        probs = scores.softmax(dim=-1, dtype=torch.float32).to(dtype)
        out = torch.bmm(torch.bmm(probs, latents).transpose(0, 1), w.w_uv_t.to(dtype))  # (H, R, d_v) = (p c_KV) W_UV
        return F.linear(out.transpose(0, 1).reshape(R, -1).to(self.dtype), w.w_o)  # (R, D)

    def _ffn(self, w: _FFN, h: torch.Tensor, h32: torch.Tensor) -> torch.Tensor:
        """h: the normed input in the matmul dtype; h32: the same in float32, for the router."""
        R = h.shape[0]
        if w.moe is None:
            gate, up = F.linear(h, w.w_gate_up).chunk(2, dim=-1)
            return F.linear(F.silu(gate) * up, w.w_down)
        E, K = w.moe.config.n_routed_experts, w.moe.config.num_experts_per_tok
        if R * E > DENSE_DECODE_BUDGET * K:  # many rows: dispatching does E/K times fewer FLOPs
            weights = w.moe.experts.gate_up_proj.dtype  # its experts in self.dtype, as the dense path's
            with torch.autocast(h.device.type, dtype=self.dtype, enabled=self.dtype != weights):
                return w.moe(h32.to(weights)[:, None])[0][:, 0].to(self.dtype)  # the router upcasts itself
        routing = w.moe.gate(h32)  # the model's router on float32 input, as under autocast (counts no load: eval)
        gates = w.gate_base.expand(R, -1).scatter(1, routing.indices, routing.weights.to(self.dtype))  # (R, X)
        gate, up = F.linear(h, w.w_gate_up).chunk(2, dim=-1)  # (R, X * I) each
        hidden = (F.silu(gate) * up).view(R, gates.shape[1], -1).mul_(gates[:, :, None])  # (R, X, I), gated
        return F.linear(hidden.view(R, -1), w.w_down)
