"""The DeepSeek-V3 transformer: embedding, `first_k_dense_replace` dense blocks, MoE blocks,
final norm, output head, and the multi-token-prediction modules (V3 §2.2).

Module names match Hugging Face's `DeepseekV3ForCausalLM` (`model.layers.3.self_attn.kv_b_proj`,
...), so checkpoints map one to one except for the stacked expert weights (see checkpoint.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model.config import ModelConfig
from r1lab.model.layers import MLP, RMSNorm
from r1lab.model.mla import MLA, KVCache, PrefixCache, attention_mask_4d
from r1lab.model.moe import MoE
from r1lab.model.rope import RotaryEmbedding


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + ffn(norm(x)); the FFN is dense or MoE."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = MLA(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp: nn.Module = (MoE(config) if config.is_moe_layer(layer_idx)
                               else MLP(config.hidden_size, config.intermediate_size))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attention_mask: torch.Tensor | None = None, cache: KVCache | PrefixCache | None = None,
                token_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """token_valid (B, T) bool, True on real tokens: what the MoE balancing counts (None = all)."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attention_mask, cache)
        h = self.post_attention_layernorm(x)
        if isinstance(self.mlp, MoE):
            out, aux = self.mlp(h, token_valid)
            return x + out, aux
        return x + self.mlp(h), None


class MTPModule(nn.Module):
    """One MTP depth k: h'_i = W[norm(Emb(t_{i+k})); norm(h_i^{k-1})], then a block, predicting
    t_{i+k+1} with the shared output head (V3 eq. 21-23). The [embedding; hidden] order follows
    the published checkpoint's `eh_proj`. h_i^{k-1} is the state as the previous head reads it,
    after the main model's final norm (k = 1) or depth k-1's `norm`: what vLLM and SGLang feed the
    published MTP weights (`DeepseekV2Model` returns normed states) and Megatron-LM trains on."""

    def __init__(self, config: ModelConfig, layer_idx: int) -> None:
        super().__init__()
        d = config.hidden_size
        self.enorm = RMSNorm(d, config.rms_norm_eps)
        self.hnorm = RMSNorm(d, config.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * d, d, bias=False)
        self.block = Block(config, layer_idx)
        self.norm = RMSNorm(d, config.rms_norm_eps)  # `shared_head.norm` in the checkpoint


@dataclass
class LossOutput:
    loss: torch.Tensor  # what to backpropagate: ce + mtp_loss_weight * mtp + aux
    ce: torch.Tensor  # next-token cross-entropy (mean over target tokens)
    mtp: torch.Tensor | None  # mean MTP cross-entropy over depths, None without MTP
    aux: torch.Tensor | None  # sequence-wise balance loss of every MoE layer, MTP blocks' included (times alpha), None if off


class DecoderModel(nn.Module):
    """The body, named like HF's `DeepseekV3Model`: embed_tokens, layers, norm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = DecoderModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        n = config.num_hidden_layers
        self.mtp = nn.ModuleList(MTPModule(config, n + k) for k in range(config.num_nextn_predict_layers))
        self.rotary = RotaryEmbedding(config)
        if self.lm_head.weight.device.type != "meta":
            self.init_weights()

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """Normal(0, initializer_range) for matrices, ones for norms, zero balancing bias."""
        std = self.config.initializer_range
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, std, generator=generator)
        for m in self.modules():
            if hasattr(m, "e_score_correction_bias"):
                m.e_score_correction_bias.zero_()

    # ------------------------------------------------------------------ forward

    def hidden_states(self, input_ids: torch.Tensor, *, position_ids: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None,
                      cache: KVCache | PrefixCache | None = None,
                      token_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """input_ids (B, T) -> final hidden states before the output norm (B, T, D) and the
        MoE balance losses. attention_mask (B, S): True for real tokens over all positions seen
        so far (cache included), or a ready (B, 1, T, S) bool mask (packed documents: each sees
        only itself); position_ids (B, T) default to cache.length + arange(T); token_valid (B, T)
        bool: the real tokens (not padding), which alone count toward the MoE balancing load; read
        from a 2-D mask, to be given with a 4-D one (None: every token counts)."""
        B, T = input_ids.shape
        start = cache.length if cache is not None else 0
        # the query tokens' own validity, for MoE balancing: a 4-D packing mask marks no padding, so
        # its caller passes token_valid; a 2-D mask is it
        if attention_mask is not None and attention_mask.dim() == 2:
            token_valid = attention_mask[:, start:start + T]  # (B, T)
        # bool whatever the caller's dtype: a 0/1 integer mask (transformers' convention) would index
        # the routed experts by position (rows 0 and 1) instead of selecting the real tokens
        token_valid = token_valid.bool() if token_valid is not None else None
        if position_ids is None:
            position_ids = torch.arange(start, start + T, device=input_ids.device).expand(B, T)
        self._check_positions(position_ids, token_valid)
        cos, sin = self.rotary(position_ids)
        mask = attention_mask if attention_mask is not None and attention_mask.dim() == 4 else \
            attention_mask_4d(attention_mask, start, T, start + T, input_ids.device)  # once for all layers
        x = self.model.embed_tokens(input_ids)
        aux: list[torch.Tensor] = []
        for layer in self.model.layers:
            x, a = layer(x, cos, sin, mask, cache, token_valid)
            if a is not None:
                aux.append(a)
        if cache is not None:
            cache.length += T
        return x, aux

    def _check_positions(self, position_ids: torch.Tensor, token_valid: torch.Tensor | None) -> None:
        """A ValueError if a real token sits at or past max_position_embeddings: RoPE would rotate
        it by angles the model never trained on, silently. Padding slots may (rollout batches
        round their widths up, and padding is masked)."""
        limit = self.config.max_position_embeddings
        real = position_ids if token_valid is None else position_ids.expand_as(token_valid)[token_valid]
        last = int(real.max()) if real.numel() else -1
        if last >= limit:
            raise ValueError(f"position {last} is past the model's max_position_embeddings ({limit}): "
                             f"positions must be in [0, {limit})")

    def forward(self, input_ids: torch.Tensor, *, position_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, cache: KVCache | PrefixCache | None = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, vocab)."""
        h, _ = self.hidden_states(input_ids, position_ids=position_ids, attention_mask=attention_mask, cache=cache)
        return self.lm_head(self.model.norm(h))

    def loss(self, input_ids: torch.Tensor, labels: torch.Tensor, *, attention_mask: torch.Tensor | None = None,
             position_ids: torch.Tensor | None = None, token_valid: torch.Tensor | None = None) -> LossOutput:
        """Next-token + MTP loss. labels (B, T): the target of each position (input shifted by
        one), -100 where no loss is taken. attention_mask, position_ids and token_valid (the real
        tokens, with a 4-D mask) as in `hidden_states`."""
        token_valid = token_valid.bool() if token_valid is not None else None  # the MTP depths' masks too
        h, aux = self.hidden_states(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                    token_valid=token_valid)
        ce = self.head_loss(h, labels)
        mtp, mtp_aux = self._mtp_loss(h, input_ids, labels, attention_mask, position_ids, token_valid) \
            if len(self.mtp) else (None, [])
        aux = aux + mtp_aux
        total = ce
        if mtp is not None:
            total = total + self.config.mtp_loss_weight * mtp
        aux_total = torch.stack(aux).sum() if aux else None
        if aux_total is not None:
            total = total + aux_total
        return LossOutput(loss=total, ce=ce, mtp=mtp, aux=aux_total)

    def head_loss(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the output head on hidden states h (B, T, D) against labels (B, T),
        -100 ignored; float32 log-softmax over the vocabulary. A batch without any target (every
        response cut off by the length limit) gives 0 with a zero gradient, not NaN, as the MTP
        depths do. Its own method so that a trainer can compile it (logits are the largest
        activations of a step)."""
        logits = self.lm_head(self.model.norm(h))  # (B, T, V)
        ce = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
        return ce / (labels != -100).sum().clamp(min=1)

    def _mtp_loss(self, h: torch.Tensor, input_ids: torch.Tensor, labels: torch.Tensor,
                  attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None = None,
                  token_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Depth k sees position i's depth-(k-1) state (normed, see MTPModule) and token t_{i+k};
        predicts t_{i+k+1}.
        The mean over the D depths of each depth's mean cross-entropy (V3 eq. 25, without lambda);
        a depth without any target (a short or mostly unlabelled window) adds 0, not NaN. Also
        returns the MoE blocks' balance losses: each balances its layer's experts as any other MoE
        layer's does (V3 eq. 17-20), so it is not weighted by lambda."""
        losses, balances = [], []
        h = self.model.norm(h)  # h_i^0 as the main head reads it (see MTPModule)
        keys = attention_mask.bool() if attention_mask is not None and attention_mask.dim() == 2 else token_valid  # (B, S)
        valid = keys  # (B, T) validity of depth k's rows
        for k, module in enumerate(self.mtp, start=1):
            T = h.shape[1] - 1  # each depth predicts one token further, so one position fewer
            if T <= 0:
                break
            emb = self.model.embed_tokens(input_ids[:, k:k + T])  # (B, T, D) = Emb(t_{i+k})
            x = module.eh_proj(torch.cat([module.enorm(emb), module.hnorm(h[:, :T])], dim=-1))
            pos = torch.arange(T, device=h.device).expand(h.shape[0], T) if position_ids is None \
                else position_ids[:, :T]  # row i sits at position i
            cos, sin = self.rotary(pos)
            target = labels[:, k:k + T]  # (B, T): t_{i+k+1}
            if valid is not None:  # 2-D: row i is real only if its state and t_{i+k} are (pads on either side)
                valid = valid[:, :T] & keys[:, k:k + T]  # (B, T)
                target = target.masked_fill(~valid, -100)  # a left pad's state predicts nothing
            if attention_mask is not None and attention_mask.dim() == 4:  # packed: t_{i+k} in row i's document
                same_doc = attention_mask[:, 0, k:k + T, :T].diagonal(dim1=-2, dim2=-1)  # (B or 1, T)
                target = target.masked_fill(~same_doc.bool(), -100)
            # a 4-D (packed) mask keeps row i's document; a 2-D one is the rows' validity
            mask = valid if attention_mask is None or attention_mask.dim() == 2 else attention_mask[:, :, :T, :T]
            out, balance = module.block(x, cos, sin, mask, token_valid=valid)
            if balance is not None:
                balances.append(balance)
            h = module.norm(out)  # h_i^k as this depth's head reads it, and depth k+1's input
            logits = self.lm_head(h)
            ce = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=-100, reduction="sum")
            losses.append(ce / (target != -100).sum().clamp(min=1))
        mtp = torch.stack(losses).sum() / len(self.mtp) if losses else h.new_zeros((), dtype=torch.float32)
        return mtp, balances

    # ------------------------------------------------------------------ MoE balancing

    def moe_layers(self) -> list[MoE]:
        return [m for m in self.modules() if isinstance(m, MoE)]

    def update_router_bias(self) -> None:
        """Call after each optimizer step: aux-loss-free balancing (V3 §2.1.2)."""
        for moe in self.moe_layers():
            moe.update_bias()

    def expert_load(self) -> list[torch.Tensor]:
        """Tokens routed to each expert since the last bias update, one (E,) tensor per MoE layer."""
        return [moe.gate.expert_load.clone() for moe in self.moe_layers()]

    def make_cache(self, batch_size: int, max_len: int, dtype: torch.dtype | None = None) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.config, batch_size, max_len, device=p.device, dtype=dtype or p.dtype)


def max_mean_load_ratio(loads: list[torch.Tensor]) -> float:
    """Balance metric: max over layers of (max expert load / mean expert load); 1.0 = balanced."""
    ratios = [float(l.max() / l.mean()) for l in loads if l.sum() > 0]
    return max(ratios) if ratios else 1.0
