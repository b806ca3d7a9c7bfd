"""DeepSeek-V3's architecture in plain PyTorch: MLA, DeepSeekMoE, MTP; Hugging Face checkpoints."""

from r1lab.model.checkpoint import from_pretrained, load_config, save_pretrained
from r1lab.model.config import PRESETS, ModelConfig, preset
from r1lab.model.mla import KVCache, PrefixCache, document_mask
from r1lab.model.transformer import LossOutput, Transformer, max_mean_load_ratio

__all__ = ["ModelConfig", "PRESETS", "preset", "Transformer", "LossOutput", "KVCache", "PrefixCache", "document_mask",
           "save_pretrained",
           "from_pretrained", "load_config", "max_mean_load_ratio"]
