"""DeepSeek-V3 model configuration and presets.

Field names follow the Hugging Face `DeepseekV3Config` (and so the published `config.json`)
where it has them; the YaRN settings are flattened from its `rope_parameters`, and the balancing
and MTP-loss settings are r1lab's own (`checkpoint.py` converts both ways). Values quoted as "V3"
are the published 671B configuration (DeepSeek-V3, arXiv 2412.19437; see ../shared/R1-FACTS.md,
"DeepSeek-V3 architecture").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from r1lab.fields import is_int


@dataclass(kw_only=True)
class ModelConfig:
    # --- sizes ---
    vocab_size: int = 129280  # tokens in the vocabulary; V3: 129,280
    hidden_size: int = 7168  # model width d; V3: 7168
    intermediate_size: int = 18432  # FFN width of the dense layers; V3: 18,432
    moe_intermediate_size: int = 2048  # FFN width of each routed/shared expert; V3: 2048
    num_hidden_layers: int = 61  # transformer blocks (MTP excluded); V3: 61
    num_attention_heads: int = 128  # attention heads; V3: 128
    # --- Multi-head Latent Attention (V3 §2.1.1) ---
    q_lora_rank: int = 1536  # rank of the low-rank query; 0 = full-rank query (V2-Lite); V3: 1536
    kv_lora_rank: int = 512  # width of the compressed KV latent c_KV; V3: 512
    qk_nope_head_dim: int = 128  # per-head query/key width without RoPE; V3: 128
    qk_rope_head_dim: int = 64  # per-head decoupled RoPE width (key shared by all heads); V3: 64
    v_head_dim: int = 128  # per-head value width; V3: 128
    # --- DeepSeekMoE (V3 §2.1.2) ---
    first_k_dense_replace: int = 3  # the first k layers use a dense FFN, the rest MoE; V3: 3
    n_shared_experts: int = 1  # shared experts every token goes through; V3: 1
    n_routed_experts: int = 256  # routed experts per MoE layer; V3: 256 (0 = all layers dense)
    num_experts_per_tok: int = 8  # routed experts chosen per token (K_r); V3: 8
    n_group: int = 8  # expert groups for group-limited routing; V3: 8
    topk_group: int = 4  # groups a token may route to; V3: 4
    scoring_func: str = "sigmoid"  # affinity function: "sigmoid" (V3) or "softmax" (V2)
    norm_topk_prob: bool = True  # normalise the chosen gate weights to sum to 1; V3: true
    routed_scaling_factor: float = 2.5  # gate weights are multiplied by this; V3: 2.5
    bias_update_speed: float = 0.001  # gamma of aux-loss-free balancing, per optimizer step; V3: 0.001
    seq_aux_loss_alpha: float = 0.0  # alpha of the sequence-wise balance loss; V3: 0.0001
    # --- multi-token prediction (V3 §2.2) ---
    num_nextn_predict_layers: int = 1  # MTP depth D; V3: 1
    mtp_loss_weight: float = 0.3  # lambda, weight of the MTP loss; V3: 0.3 early, 0.1 later
    # --- positions: RoPE with the YaRN extension (V3 §4.3) ---
    max_position_embeddings: int = 163840  # longest context; V3: 163,840
    rope_theta: float = 10000.0  # RoPE base; V3: 10,000
    rope_factor: float = 40.0  # YaRN context-extension factor s (1 = plain RoPE); V3: 40
    original_max_position_embeddings: int = 4096  # pre-extension context; V3: 4096
    beta_fast: float = 32.0  # YaRN ramp bound (rotations, extrapolation side); V3: 32
    beta_slow: float = 1.0  # YaRN ramp bound (rotations, interpolation side); V3: 1
    mscale: float = 1.0  # YaRN attention-temperature multiplier; V3: 1.0
    mscale_all_dim: float = 1.0  # YaRN mscale applied to all dims of the softmax scale; V3: 1.0
    # cos/sin amplitude of YaRN; None = from rope_factor, mscale, mscale_all_dim (see rope.yarn_amplitude).
    # HF's rope_parameters["attention_factor"]; unset in V3
    attention_factor: float | None = None
    rope_interleave: bool = True  # RoPE dims laid out as interleaved pairs (DeepSeek's layout)
    # --- misc ---
    rms_norm_eps: float = 1e-6  # RMSNorm epsilon; V3: 1e-6
    tie_word_embeddings: bool = False  # share input embedding and output head; V3: false
    initializer_range: float = 0.02  # std of the normal weight init
    bos_token_id: int = 0  # begin-of-sequence token id
    eos_token_id: int = 1  # end-of-sequence token id
    pad_token_id: int | None = None  # padding token id

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"ModelConfig: {msg}")

        # sizes by name: a float (hidden_size=128 * 1.5) failed deep in torch ("empty(): argument 'size'
        # failed to unpack"), a str ("128") at a comparison naming neither. Token ids are not sizes (a
        # config.json may hold "bos_token_id": null) and stay as given
        for f in dataclasses.fields(self):
            if f.type == "int" and not f.name.endswith("_token_id") and not is_int(getattr(self, f.name)):
                raise TypeError(f"ModelConfig: {f.name} must be an integer, got {getattr(self, f.name)!r}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "kv_lora_rank", "qk_nope_head_dim", "v_head_dim"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        need(self.q_lora_rank >= 0, f"q_lora_rank must be >= 0 (0 = full rank), got {self.q_lora_rank}")
        need(self.qk_rope_head_dim > 0 and self.qk_rope_head_dim % 2 == 0,
             f"qk_rope_head_dim must be even and > 0, got {self.qk_rope_head_dim}")
        need(0 <= self.first_k_dense_replace, "first_k_dense_replace must be >= 0")
        need(self.n_routed_experts >= 0, f"n_routed_experts must be >= 0 (0 = all dense), got {self.n_routed_experts}")
        need(self.n_shared_experts >= 0, f"n_shared_experts must be >= 0, got {self.n_shared_experts}")
        if self.n_routed_experts == 0 or self.first_k_dense_replace > 0:  # some block has the dense FFN
            need(self.intermediate_size > 0, f"intermediate_size (dense FFN width) must be > 0, got {self.intermediate_size}")
        need(self.rms_norm_eps >= 0, f"rms_norm_eps must be >= 0, got {self.rms_norm_eps}")  # a negative one gives NaN
        need(self.rope_theta > 1.0, f"rope_theta must be > 1, got {self.rope_theta}")
        need(self.scoring_func in ("sigmoid", "softmax"), f"scoring_func must be sigmoid or softmax, got {self.scoring_func!r}")
        need(self.num_nextn_predict_layers >= 0, "num_nextn_predict_layers must be >= 0")
        need(self.rope_factor >= 1.0, f"rope_factor must be >= 1, got {self.rope_factor}")
        need(self.rope_factor == 1.0 or self.original_max_position_embeddings > 0,
             f"original_max_position_embeddings must be > 0 with YaRN, got {self.original_max_position_embeddings}")
        for name in ("beta_fast", "beta_slow"):  # rotations over the original context: log(orig / (2 pi beta))
            need(self.rope_factor == 1.0 or getattr(self, name) > 0, f"{name} must be > 0 with YaRN, got {getattr(self, name)}")
        need(self.attention_factor is None or self.attention_factor > 0,
             f"attention_factor must be > 0 (or None), got {self.attention_factor}")
        # a negative weight trains the opposite of its purpose (gamma < 0 drives the load apart)
        for name in ("bias_update_speed", "seq_aux_loss_alpha", "mtp_loss_weight", "initializer_range"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        if self.has_moe:
            need(self.moe_intermediate_size > 0, "moe_intermediate_size must be > 0")
            # 0 silences every routed expert, a negative factor flips their outputs' sign
            need(self.routed_scaling_factor > 0, f"routed_scaling_factor must be > 0, got {self.routed_scaling_factor}")
            need(self.n_group >= 1 and self.n_routed_experts % self.n_group == 0,
                 f"n_routed_experts ({self.n_routed_experts}) must divide into n_group ({self.n_group}) groups")
            need(1 <= self.topk_group <= self.n_group, f"topk_group must be in [1, n_group], got {self.topk_group}")
            per_group = self.n_routed_experts // self.n_group
            # transformers' DeepseekV3 takes each group's top-2 even with one group: a single expert crashes it
            need(per_group >= 2, f"each expert group needs >= 2 experts (group score = top-2 sum), got "
                                 f"{self.n_routed_experts} routed experts in {self.n_group} group(s)")
            need(1 <= self.num_experts_per_tok <= self.topk_group * per_group,
                 f"num_experts_per_tok ({self.num_experts_per_tok}) must be in [1, topk_group * experts per group]")

    @property
    def has_moe(self) -> bool:
        """Some block, main or MTP, is MoE (see `is_moe_layer`)."""
        last = self.num_hidden_layers + self.num_nextn_predict_layers - 1  # MTP blocks come last
        return self.n_routed_experts > 0 and self.is_moe_layer(last)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    def is_moe_layer(self, layer_idx: int) -> bool:
        # MTP block k has layer_idx num_hidden_layers + k and follows the same rule: MoE once past the
        # dense layers (V3's MTP block, layer 61, is MoE), so an MTP block can be MoE even when every
        # main layer is dense (first_k_dense_replace == num_hidden_layers).
        return self.n_routed_experts > 0 and layer_idx >= self.first_k_dense_replace

    @property
    def softmax_scale(self) -> float:
        """1/sqrt(d_qk), times YaRN's mscale^2 when the context is extended (as DeepSeek's code)."""
        scale = self.qk_head_dim ** -0.5
        if self.rope_factor > 1.0 and self.mscale_all_dim:
            m = 0.1 * self.mscale_all_dim * math.log(self.rope_factor) + 1.0
            scale = scale * m * m
        return scale

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- presets


def deepseek_v3_671b() -> ModelConfig:
    """The published DeepSeek-V3 / R1 configuration (671B total, ~37B activated)."""
    return ModelConfig(seq_aux_loss_alpha=0.0001)


def v2_lite() -> ModelConfig:
    """A DeepSeek-V2-Lite-sized MoE (~16B total, ~2.7B active by `r1lab model-info`): full-rank
    query, 64 experts.

    V2-Lite uses softmax gating and no groups; this preset keeps V3's sigmoid gating and
    aux-loss-free balancing so that it stays loadable by transformers' DeepseekV3 classes.
    """
    return ModelConfig(
        vocab_size=102400, hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408,
        num_hidden_layers=27, num_attention_heads=16, q_lora_rank=0, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, first_k_dense_replace=1,
        n_shared_experts=2, n_routed_experts=64, num_experts_per_tok=6, n_group=1, topk_group=1,
        routed_scaling_factor=1.0, max_position_embeddings=163840, rope_factor=40.0,
        mscale=0.707, mscale_all_dim=0.707, num_nextn_predict_layers=0,
    )


def small() -> ModelConfig:
    """A GPU preset (MoE, MLA with low-rank query, MTP): 298M parameters, 142M active per token,
    plus 23M in the MTP module (`r1lab model-info small`)."""
    return ModelConfig(
        vocab_size=32000, hidden_size=768, intermediate_size=2048, moe_intermediate_size=512,
        num_hidden_layers=12, num_attention_heads=12, q_lora_rank=384, kv_lora_rank=256,
        qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64, first_k_dense_replace=1,
        n_shared_experts=1, n_routed_experts=16, num_experts_per_tok=4, n_group=4, topk_group=2,
        routed_scaling_factor=2.5, max_position_embeddings=4096, rope_factor=1.0,
    )


def tiny() -> ModelConfig:
    """A ~2M-parameter CPU preset for the miniature world: 4 layers (1 dense + 3 MoE), MTP on."""
    return ModelConfig(
        vocab_size=1024, hidden_size=128, intermediate_size=384, moe_intermediate_size=96,
        num_hidden_layers=4, num_attention_heads=4, q_lora_rank=0, kv_lora_rank=64,
        qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, first_k_dense_replace=1,
        n_shared_experts=1, n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=2,
        routed_scaling_factor=1.0, max_position_embeddings=512, rope_factor=1.0,
        mtp_loss_weight=0.3,
    )


def student() -> ModelConfig:
    """A small dense student for distillation (R1 §2.4 distils into dense Qwen / Llama models; here
    the same architecture with every layer dense and no MTP): 3 layers of width 64, 0.28M parameters
    (`tiny`: 1.68M). At this size the world's student learns to reason from the teacher's samples
    but not by RL alone; at 3 x 96 RL catches up (README, "Distillation")."""
    return ModelConfig(
        vocab_size=1024, hidden_size=64, intermediate_size=192, num_hidden_layers=3, num_attention_heads=2,
        q_lora_rank=0, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=16,
        first_k_dense_replace=3, n_shared_experts=0, n_routed_experts=0, num_experts_per_tok=1, n_group=1,
        topk_group=1, routed_scaling_factor=1.0, max_position_embeddings=512, rope_factor=1.0,
        num_nextn_predict_layers=0,
    )


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "deepseek-v3-671b": deepseek_v3_671b,
    "v2-lite": v2_lite,
    "small": small,
    "tiny": tiny,
    "student": student,
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
