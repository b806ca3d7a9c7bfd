"""config.json of a Hugging Face checkpoint (model_type deepseek_v3) <-> `ModelConfig`.

transformers' `DeepseekV3Config` names are r1lab's field names; what differs is YaRN (nested in
`rope_parameters` / the legacy `rope_scaling` there, flat fields here), fields a missing key
defaults to (transformers' defaults: the published V3 values but for the context, see
`_HF_DEFAULTS`), and r1lab's own training settings
(balancing speed, MTP loss weight), kept under their own names.
"""

from __future__ import annotations

from typing import Any

import torch

from r1lab.model.config import ModelConfig

_R1LAB_EXTRAS = ("mtp_loss_weight", "bias_update_speed", "seq_aux_loss_alpha")
# What transformers' DeepseekV3Config assumes when config.json lacks a field (its defaults: the
# published V3 values, except the context: 4,096 positions with plain RoPE, where V3 has 163,840
# with YaRN factor 40): a missing field must mean the same model here (tests/test_checkpoint.py
# compares this table with DeepseekV3Config()). A field present as null keeps its own meaning.
_HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
    "num_hidden_layers": 61, "num_attention_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
    "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "qk_nope_head_dim": 128, "n_group": 8, "topk_group": 4, "num_experts_per_tok": 8,
    "first_k_dense_replace": 3, "norm_topk_prob": True, "max_position_embeddings": 4096,
    "initializer_range": 0.02, "rms_norm_eps": 1e-6, "bos_token_id": 0, "eos_token_id": 1,
    "tie_word_embeddings": False, "rope_interleave": True, "num_nextn_predict_layers": 1,
}
# rope_parameters keys r1lab honours; any other one would be silently ignored, so it is an error
_ROPE_KEYS = {"rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings", "beta_fast",
              "beta_slow", "mscale", "mscale_all_dim", "attention_factor", "truncate", "partial_rotary_factor"}



def to_hf_config(config: ModelConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    c = config
    if c.scoring_func != "sigmoid":  # the field would be written, then ignored on load
        raise ValueError(f"scoring_func={c.scoring_func!r} cannot be saved in Hugging Face format: transformers' "
                         "DeepseekV3 always routes with sigmoid and would load a different model")
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": c.rope_theta}
    if c.rope_factor > 1.0 or c.attention_factor is not None:
        rope.update(rope_type="yarn", factor=c.rope_factor, beta_fast=c.beta_fast, beta_slow=c.beta_slow,
                    mscale=c.mscale, mscale_all_dim=c.mscale_all_dim,
                    original_max_position_embeddings=c.original_max_position_embeddings)
        if c.attention_factor is not None:
            rope["attention_factor"] = c.attention_factor
    return {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "moe_intermediate_size": c.moe_intermediate_size, "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_attention_heads,
        "q_lora_rank": c.q_lora_rank or None, "kv_lora_rank": c.kv_lora_rank,
        "qk_nope_head_dim": c.qk_nope_head_dim, "qk_rope_head_dim": c.qk_rope_head_dim, "v_head_dim": c.v_head_dim,
        "first_k_dense_replace": c.first_k_dense_replace if c.n_routed_experts else c.num_hidden_layers,
        "n_shared_experts": c.n_shared_experts, "n_routed_experts": c.n_routed_experts,
        "num_experts_per_tok": c.num_experts_per_tok, "n_group": c.n_group, "topk_group": c.topk_group,
        "topk_method": "noaux_tc", "scoring_func": c.scoring_func, "norm_topk_prob": c.norm_topk_prob,
        "routed_scaling_factor": c.routed_scaling_factor, "num_nextn_predict_layers": c.num_nextn_predict_layers,
        "max_position_embeddings": c.max_position_embeddings, "rope_theta": c.rope_theta,
        "rope_parameters": rope, "rope_interleave": c.rope_interleave, "rms_norm_eps": c.rms_norm_eps,
        "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0,
        "tie_word_embeddings": c.tie_word_embeddings, "initializer_range": c.initializer_range,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
        "dtype": str(dtype).removeprefix("torch."),
        "r1lab": {k: getattr(c, k) for k in _R1LAB_EXTRAS},
    }


def _unsupported(field: str, value: Any, why: str) -> ValueError:
    return ValueError(f"config.json field {field}={value!r} is not supported: {why}")


def from_hf_config(d: dict[str, Any]) -> ModelConfig:
    """ModelConfig from a config.json dict; anything r1lab cannot represent is a clear error, and
    a missing field means what it means to transformers' DeepseekV3Config."""
    if d.get("model_type") != "deepseek_v3":
        raise _unsupported("model_type", d.get("model_type"), "r1lab reads deepseek_v3 checkpoints")
    # scoring_func: transformers' DeepseekV3 routes with sigmoid whatever the field says, so a
    # softmax-gated checkpoint would be a different model in each library (and saving refuses it)
    checks = [("hidden_act", "silu"), ("attention_bias", False), ("topk_method", "noaux_tc"),
              ("scoring_func", "sigmoid"), ("pretraining_tp", 1), ("quantization_config", None)]
    for field, ok in checks:
        if field in d and d[field] != ok:
            raise _unsupported(field, d[field], f"only {ok!r} is implemented")
    d = {**_HF_DEFAULTS, **d}
    heads = d["num_attention_heads"]
    # MLA's keys and values come per head from one latent, so transformers' DeepseekV3 ignores this field
    # unless it is below num_attention_heads (then it repeats the keys and crashes); DeepseekV3Config's
    # default 128 stays in the config.json of any smaller model built without it, and loads there
    kv_heads = d.get("num_key_value_heads")
    if kv_heads is not None and kv_heads < heads:
        raise _unsupported("num_key_value_heads", kv_heads, "MLA uses one KV latent for all heads")
    routing = {k: d[k] if d[k] is not None else _HF_DEFAULTS[k]
               for k in ("num_experts_per_tok", "n_group", "topk_group", "routed_scaling_factor")}
    extras = d.get("r1lab", {})
    return ModelConfig(
        vocab_size=d["vocab_size"], hidden_size=d["hidden_size"], intermediate_size=d["intermediate_size"],
        moe_intermediate_size=d["moe_intermediate_size"] or 0, num_hidden_layers=d["num_hidden_layers"],
        num_attention_heads=heads, q_lora_rank=d["q_lora_rank"] or 0, kv_lora_rank=d["kv_lora_rank"],
        qk_nope_head_dim=d["qk_nope_head_dim"], qk_rope_head_dim=d["qk_rope_head_dim"], v_head_dim=d["v_head_dim"],
        first_k_dense_replace=d["first_k_dense_replace"] or 0,
        n_shared_experts=d["n_shared_experts"] or 0, n_routed_experts=d["n_routed_experts"] or 0,
        norm_topk_prob=d["norm_topk_prob"], **routing,
        num_nextn_predict_layers=d["num_nextn_predict_layers"] or 0,
        max_position_embeddings=d["max_position_embeddings"], **_rope_fields(d),
        rope_interleave=d["rope_interleave"], rms_norm_eps=d["rms_norm_eps"],
        tie_word_embeddings=d["tie_word_embeddings"], initializer_range=d["initializer_range"],
        bos_token_id=d["bos_token_id"], eos_token_id=_first(d["eos_token_id"]),
        pad_token_id=d.get("pad_token_id"), **{k: extras[k] for k in _R1LAB_EXTRAS if k in extras},
    )


def _rope_fields(d: dict[str, Any]) -> dict[str, Any]:
    """ModelConfig's RoPE / YaRN fields, read as transformers' `_compute_yarn_parameters` reads them."""
    rope = dict(d.get("rope_scaling") or d.get("rope_parameters") or {})  # transformers: rope_scaling wins
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    fields: dict[str, Any] = {"rope_theta": rope.get("rope_theta", d.get("rope_theta", 10000.0)), "rope_factor": 1.0}
    if rope_type == "default":  # transformers' DeepseekV3 reads only rope_theta then
        return fields
    if rope_type != "yarn":
        raise _unsupported("rope_parameters.rope_type", rope_type, "only default RoPE and YaRN are implemented")
    unknown = sorted(set(rope) - _ROPE_KEYS)
    if unknown:
        raise _unsupported(f"rope_parameters.{unknown[0]}", rope[unknown[0]], "r1lab's YaRN does not implement it")
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise _unsupported("rope_parameters.partial_rotary_factor", rope["partial_rotary_factor"],
                           "r1lab's YaRN rotates all qk_rope_head_dim dims")
    if rope.get("truncate", True) is not True:
        raise _unsupported("rope_parameters.truncate", rope["truncate"],
                           "r1lab rounds the YaRN correction range to whole dims (truncate=true, as DeepSeek-V3)")
    if rope.get("factor") is None:
        raise ValueError("config.json rope_parameters (yarn) has no factor: YaRN needs its context-extension factor")
    # a top-level original_max_position_embeddings takes precedence in transformers, as here
    orig = d.get("original_max_position_embeddings") or rope.get("original_max_position_embeddings") \
        or d.get("max_position_embeddings", 4096)
    # absent mscale / mscale_all_dim read as 0: "not given", which selects transformers' other amplitude rule
    return fields | dict(rope_factor=rope["factor"], original_max_position_embeddings=orig,
                         beta_fast=rope.get("beta_fast") or 32.0, beta_slow=rope.get("beta_slow") or 1.0,
                         mscale=rope.get("mscale") or 0.0, mscale_all_dim=rope.get("mscale_all_dim") or 0.0,
                         attention_factor=rope.get("attention_factor"))


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, list) else x
