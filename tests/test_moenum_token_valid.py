"""token_valid given as a 0/1 integer mask means the same as the bool one (MoE load, MTP loss)."""

from __future__ import annotations

import torch

from r1lab.model import Transformer, preset
from r1lab.model.mla import document_mask


def test_integer_token_valid_counts_only_real_tokens_and_keeps_the_mtp_loss():
    torch.manual_seed(0)
    model = Transformer(preset("tiny")).train()
    x = torch.randint(0, 1024, (2, 8))
    valid = torch.ones(2, 8, dtype=torch.bool)
    valid[1, 5:] = False  # 3 pads: 13 real tokens
    mask = document_mask(torch.zeros(2, 8, dtype=torch.long))  # one document per row (4-D mask)
    ref = model.loss(x, x, attention_mask=mask, token_valid=valid)
    ref_loads = model.expert_load()
    for moe in model.moe_layers():  # fresh counters, same routing (the bias stays 0)
        moe.gate.expert_load.zero_()
    out = model.loss(x, x, attention_mask=mask, token_valid=valid.long())
    loads = model.expert_load()
    assert [l.sum().item() for l in loads[:3]] == [13 * 2] * 3  # K = 2 experts per real token
    assert all(torch.equal(a, b) for a, b in zip(loads, ref_loads))
    assert torch.allclose(out.loss, ref.loss)
