"""The MoE router's balancing state stays float32 when the model is cast to bf16 (V3 §2.1.2)."""

from __future__ import annotations

import torch

from r1lab.model import Transformer, preset


def test_bias_and_load_stay_float32_and_exact_after_a_bf16_cast():
    model = Transformer(preset("tiny"))
    gate = model.moe_layers()[0].gate
    gate.e_score_correction_bias.fill_(1.0)
    model.to(torch.bfloat16)
    assert gate.e_score_correction_bias.dtype == torch.float32
    assert gate.expert_load.dtype == torch.float32
    assert model.lm_head.weight.dtype == torch.bfloat16  # the rest of the model is cast
    # 301 tokens on expert 0, 1 on each other: mean 268/8 = 37.75, so expert 0 is over-loaded
    gate.expert_load.copy_(torch.tensor([300.0, 0, 0, 0, 0, 0, 0, 0]))
    gate.expert_load += 1
    assert gate.expert_load[0].item() == 301.0  # bf16 would hold 300
    model.moe_layers()[0].update_bias()
    expected = torch.tensor([0.999] + [1.001] * 7)  # gamma = 0.001 moves are kept, not rounded away
    assert torch.allclose(gate.e_score_correction_bias, expected, atol=1e-6, rtol=0)


def test_bf16_model_routes_and_balances_after_the_cast():
    torch.manual_seed(0)
    model = Transformer(preset("tiny")).to(torch.bfloat16).train()
    x = torch.randint(0, 1024, (2, 16))
    model.loss(x, x.roll(-1, dims=1))  # float32 routing on a bf16 model: no dtype error
    loads = model.expert_load()
    assert all(l.dtype == torch.float32 and l.sum().item() == 2 * 16 * 2 for l in loads[:3])
