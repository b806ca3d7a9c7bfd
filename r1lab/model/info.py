"""`r1lab model-info PRESET`: parameter counts without allocating a single weight.

The model is built on PyTorch's meta device (shapes only), so the 671B preset is counted in a
second. `active` is what one token touches: everything but the routed experts it is not sent
to (shared experts, attention, dense layers, embedding and head included), the paper's
"activated parameters". MTP modules are counted apart (V3 reports 671B without them).
"""

from __future__ import annotations

import argparse
import json

import torch

from r1lab.model.config import PRESETS, ModelConfig, preset
from r1lab.model.transformer import Transformer


def count_parameters(config: ModelConfig) -> dict[str, int]:
    with torch.device("meta"):
        model = Transformer(config)
    mtp = sum(p.numel() for p in model.mtp.parameters())
    total = sum(p.numel() for p in model.parameters()) - mtp
    per_expert = 3 * config.hidden_size * config.moe_intermediate_size
    n_moe = sum(config.is_moe_layer(i) for i in range(config.num_hidden_layers))
    idle_experts = max(config.n_routed_experts - config.num_experts_per_tok, 0)
    return {"total": total, "active": total - n_moe * idle_experts * per_expert, "mtp": mtp}


def _short(count: int) -> str:
    """1.68M, 37.55B: a count in the unit that reads (B printed 0.00B for the CPU presets)."""
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.2f}M"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", choices=sorted(PRESETS), help="model preset")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def main(args: argparse.Namespace) -> int:
    counts = count_parameters(preset(args.preset))
    if args.json:
        print(json.dumps(counts))
    else:
        for key, value in counts.items():
            print(f"{key:>6}: {value:>17,} ({_short(value)})")
    return 0
