"""Rotary position embeddings with DeepSeek-V3's YaRN context extension (V3 §4.3).

YaRN (arXiv 2309.00071) keeps the high-frequency RoPE dimensions as they are (extrapolation),
divides the low-frequency ones by `rope_factor` (interpolation), and blends the two with a
linear ramp between `beta_fast` and `beta_slow` rotations over the original context. It also
rescales attention: cos/sin are multiplied by an amplitude (`yarn_amplitude`) and the softmax
scale by mscale(factor, mscale_all_dim)^2 (see `ModelConfig.softmax_scale`).
"""

from __future__ import annotations

import math

import torch

from r1lab.model.config import ModelConfig
from r1lab.model.layers import Float32Buffers


def _yarn_mscale(factor: float, mscale: float) -> float:
    return 1.0 if factor <= 1.0 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_amplitude(config: ModelConfig) -> float:
    """The cos/sin factor, by transformers' rule (`_compute_yarn_parameters`) so that checkpoints
    mean the same in both: `attention_factor` if set; else mscale(factor, mscale) /
    mscale(factor, mscale_all_dim) when both are non-zero (V3: 1.0); else mscale(factor, 1)."""
    if config.attention_factor is not None:
        return config.attention_factor
    if config.mscale and config.mscale_all_dim:
        return _yarn_mscale(config.rope_factor, config.mscale) / _yarn_mscale(config.rope_factor, config.mscale_all_dim)
    return _yarn_mscale(config.rope_factor, 1.0)


def rope_frequencies(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (qk_rope_head_dim/2,) and the cos/sin amplitude factor."""
    dim, base = config.qk_rope_head_dim, config.rope_theta
    inv_freq = 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    if config.rope_factor <= 1.0:
        return inv_freq, yarn_amplitude(config)  # 1.0 unless attention_factor is set
    factor, orig = config.rope_factor, config.original_max_position_embeddings

    def correction_dim(rotations: float) -> float:  # the dim whose wavelength fits `rotations` times
        return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(config.beta_fast)), 0)
    high = min(math.ceil(correction_dim(config.beta_slow)), dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolate = 1.0 - ramp  # 1 for fast (high-frequency) dims, 0 for slow ones
    inv_freq = inv_freq / factor * (1 - extrapolate) + inv_freq * extrapolate
    return inv_freq, yarn_amplitude(config)


class RotaryEmbedding(Float32Buffers):
    """Computes (cos, sin) for given positions; applied by `apply_rope`."""

    # as a bf16 `from_pretrained` builds it: rounded to bf16's 8 bits, the small preset's cos at
    # position 4000 is off by up to 0.5
    FLOAT32_BUFFERS = ("inv_freq",)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        inv_freq, amplitude = rope_frequencies(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.amplitude = amplitude

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # position_ids: (B, T) -> cos, sin: (B, T, rope_dim/2), float32
        freqs = position_ids.float()[..., None] * self.inv_freq.to(position_ids.device)
        return freqs.cos() * self.amplitude, freqs.sin() * self.amplitude


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleave: bool) -> torch.Tensor:
    """Rotates pairs of dims of x (B, H, T, d) by the angles in cos/sin (B, T, d/2).

    DeepSeek lays the pairs out interleaved, (x0, x1), (x2, x3), ... (`interleave=True`); the
    Llama layout pairs dim i with dim i + d/2. Either way q·k only depends on the relative angle.
    """
    if interleave:  # pairs as complex numbers, rotated by e^{i theta} in float32: one multiply
        xf = x.float()
        # view_as_complex needs an even storage offset and even strides; a float32 slice of q or of
        # [c_KV ; k_rope] has odd ones when qk_nope_head_dim or kv_lora_rank is odd: copy it then
        if xf.storage_offset() % 2 or any(s % 2 for s in xf.stride()[:-1]):
            xf = xf.clone(memory_format=torch.contiguous_format)
        pairs = torch.view_as_complex(xf.reshape(*x.shape[:-1], -1, 2))  # (B, H, T, d/2)
        rotated = pairs * torch.complex(cos, sin)[:, None]
        return torch.view_as_real(rotated).flatten(-2).to(x.dtype)
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)  # (B, 1, T, d/2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
