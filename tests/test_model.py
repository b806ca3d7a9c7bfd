"""DeepSeek-V3 model behaviour: routing, balancing, latent-cache decoding, MTP, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from r1lab.model import KVCache, Transformer, document_mask, max_mean_load_ratio, preset
from r1lab.model.info import count_parameters
from r1lab.model.moe import route


def small_config(**changes):
    base = dict(vocab_size=64, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                num_hidden_layers=3, num_attention_heads=2, kv_lora_rank=16, qk_nope_head_dim=8,
                qk_rope_head_dim=4, v_head_dim=8, n_routed_experts=8, n_group=4, topk_group=2,
                num_experts_per_tok=2, first_k_dense_replace=1, max_position_embeddings=128,
                rope_factor=1.0)
    base.update(changes)
    return preset("tiny").replace(**base)


def brute_force_route(scores, bias, top_k, n_group, topk_group):
    """For each token: the best `topk_group` groups by top-2 sums, then top-k inside them."""
    N, E = scores.shape
    per = E // n_group
    chosen = []
    for t in range(N):
        biased = (scores[t] + bias).tolist()
        group_score = [sum(sorted(biased[g * per:(g + 1) * per], reverse=True)[:2]) for g in range(n_group)]
        best_groups = max(itertools.combinations(range(n_group), topk_group),
                          key=lambda gs: sum(group_score[g] for g in gs))
        allowed = [e for g in best_groups for e in range(g * per, (g + 1) * per)]
        chosen.append(set(sorted(allowed, key=lambda e: -biased[e])[:top_k]))
    return chosen


def test_group_limited_topk_matches_brute_force():
    logits = torch.randn(200, 16)
    bias = torch.randn(16) * 0.1
    r = route(logits, bias, top_k=3, n_group=4, topk_group=2, scaling=2.5)
    expected = brute_force_route(logits.sigmoid(), bias, 3, 4, 2)
    assert [set(row.tolist()) for row in r.indices] == expected
    # weights: the unbiased affinities of the chosen experts, normalised, times the scaling factor
    s = logits.sigmoid().gather(1, r.indices)
    torch.testing.assert_close(r.weights, s / s.sum(-1, keepdim=True) * 2.5)


def test_bias_changes_choice_not_weights():
    logits = torch.randn(100, 8)
    zero = route(logits, torch.zeros(8), top_k=2, n_group=1, topk_group=1, norm_topk_prob=False)
    bias = torch.zeros(8)
    bias[7] = 10.0  # expert 7 is now always chosen
    biased = route(logits, bias, top_k=2, n_group=1, topk_group=1, norm_topk_prob=False)
    assert (biased.indices == 7).any(-1).all()
    assert not torch.equal(zero.indices.sort(-1).values, biased.indices.sort(-1).values)
    # the weight of a chosen expert is its unbiased affinity, whatever the bias
    torch.testing.assert_close(biased.weights, logits.sigmoid().gather(1, biased.indices))


# balancing drives biases negative: experts of a group left out must lose to allowed experts whose
# biased affinity s + b is below 0, and the gates stay the unbiased affinities (0.5 / (0.5 + 0.5) * 2)
def test_left_out_groups_lose_to_negative_biased_affinities():
    bias = torch.tensor([-1.0, -1.0, -2.0, -2.0])  # s = 0.5 everywhere: s + b = -0.5, -0.5 | -1.5, -1.5
    r = route(torch.zeros(3, 4), bias, top_k=2, n_group=2, topk_group=1, scaling=2.0)
    assert r.indices.sort(-1).values.tolist() == [[0, 1]] * 3  # group 0 (top-2 sum -1 > -3), both experts
    torch.testing.assert_close(r.weights, torch.ones(3, 2))


# softmax gating (V2's scoring_func): affinities over all experts sum to 1, the chosen ones renormalised
def test_softmax_scoring_routes_on_softmax_affinities():
    logits = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
    r = route(logits, torch.zeros(4), top_k=2, n_group=1, topk_group=1, scoring_func="softmax",
              norm_topk_prob=False, scaling=1.5)
    e = torch.exp(logits[0])
    torch.testing.assert_close(r.scores[0], e / e.sum())
    assert r.indices[0].tolist() == [0, 2]
    torch.testing.assert_close(r.weights[0], torch.stack([e[0], e[2]]) / e.sum() * 1.5)


def test_bias_moves_toward_balance_on_skewed_batch():
    config = small_config(n_group=1, topk_group=1, bias_update_speed=0.01)
    model = Transformer(config)
    moe = model.moe_layers()[0]
    with torch.no_grad():  # skew the router: every token strongly prefers expert 0
        moe.gate.weight.normal_(0, 0.3)
        moe.gate.weight[0] += 0.5
    x = torch.randn(4, 64, config.hidden_size) + 1.0
    model.train()
    ratios = []
    for _ in range(60):
        moe(x)
        ratios.append(max_mean_load_ratio([moe.gate.expert_load]))
        moe.update_bias()
    bias = moe.gate.e_score_correction_bias
    assert bias[0] < 0 and bias[1:].mean() > 0  # overloaded expert pushed down, others up
    assert ratios[-1] < ratios[0] / 2


def test_sequence_balance_loss_is_added_when_alpha_positive():
    model = Transformer(small_config(seq_aux_loss_alpha=0.01))
    model.train()
    x = torch.randint(0, 64, (2, 10))
    out = model.loss(x, torch.roll(x, -1, 1))
    assert out.aux is not None and out.aux.item() > 0
    assert out.loss.item() == pytest.approx((out.ce + 0.3 * out.mtp + out.aux).item(), rel=1e-6)


def test_sequence_balance_loss_includes_the_mtp_blocks_moe_layer():
    """V3's MTP block is an MoE layer like the main ones (eq. 17-20 balance each MoE layer): its
    balance loss was dropped, so a model whose only MoE layer is the MTP block had aux None."""
    from r1lab.model.moe import sequence_balance_loss

    model = Transformer(small_config(first_k_dense_replace=3, num_nextn_predict_layers=1, seq_aux_loss_alpha=0.01))
    model.train()
    assert len(model.moe_layers()) == 1  # main layers dense, the MTP block MoE
    moe = model.moe_layers()[0]
    seen = []
    moe.gate.register_forward_hook(lambda module, args, routing: seen.append((args[0].shape[0], routing)))
    x = torch.randint(0, 64, (2, 10))
    out = model.loss(x, torch.roll(x, -1, 1))
    (n, routing), = seen
    assert n == 2 * 9  # the MTP block's rows: one position fewer per sequence
    assert out.aux is not None
    torch.testing.assert_close(out.aux, 0.01 * sequence_balance_loss(routing, 2, 9, 2))
    assert out.loss.item() == pytest.approx((out.ce + 0.3 * out.mtp + out.aux).item(), rel=1e-6)


@pytest.mark.parametrize("q_lora_rank", [0, 8])
def test_latent_cache_decode_equals_full_forward(q_lora_rank):
    config = small_config(q_lora_rank=q_lora_rank, rope_factor=4.0, original_max_position_embeddings=8)
    model = Transformer(config).eval()
    x = torch.randint(0, 64, (3, 12))
    with torch.no_grad():
        full = model(x)  # (B, T, V)
        cache = model.make_cache(3, 12)
        steps = [model(x[:, :5], cache=cache)]  # prefill 5 tokens, then one token at a time
        steps += [model(x[:, t:t + 1], cache=cache) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_left_padded_batch_matches_unpadded_rows():
    model = Transformer(small_config()).eval()
    a, b = torch.randint(2, 64, (1, 9)), torch.randint(2, 64, (1, 6))
    pad = torch.zeros(1, 3, dtype=torch.long)
    batch = torch.cat([a, torch.cat([pad, b], 1)])  # (2, 9), row 1 left-padded
    mask = batch != 0
    mask[0] = True
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        cache = model.make_cache(2, 11)
        logits = model(batch, position_ids=pos, attention_mask=mask, cache=cache)
        nxt = torch.tensor([[5], [7]])
        mask2 = torch.cat([mask, torch.ones(2, 1, dtype=torch.bool)], 1)
        step = model(nxt, position_ids=pos[:, -1:] + 1, attention_mask=mask2, cache=cache)
        ref_b = model(torch.cat([b, nxt[1:]], 1))
        ref_a = model(torch.cat([a, nxt[:1]], 1))
    torch.testing.assert_close(logits[1, 3:], ref_b[0, :6], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step[1, 0], ref_b[0, 6], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step[0, 0], ref_a[0, 9], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("first,second", [(3, 3), (4, 1)])
def test_a_full_cache_is_a_value_error_naming_it(first, second):
    """More tokens than the cache holds: a shape RuntimeError from the slice write or the mask
    before (a write past the end broadcast to an empty slice); the cache is left as it was."""
    model = Transformer(small_config()).eval()
    cache = model.make_cache(1, 4)
    with torch.no_grad():
        model(torch.randint(0, 64, (1, first)), cache=cache)
        with pytest.raises(ValueError, match="KVCache holds 4 positions"):
            model(torch.randint(0, 64, (1, second)), cache=cache)
    assert cache.length == first


# GRPO prefills a batch of prompts once and samples n completions per prompt: row r * n + j is prompt r's
def test_cache_repeat_interleave_gives_each_prompt_n_consecutive_rows():
    model = Transformer(small_config()).eval()
    x = torch.randint(0, 64, (2, 6))
    with torch.no_grad():
        full = model(x.repeat_interleave(3, dim=0))  # (6, 6, V): rows 0-2 prompt 0, rows 3-5 prompt 1
        cache = model.make_cache(2, 6)
        model(x[:, :5], cache=cache)
        step = model(x[:, 5:].repeat_interleave(3, dim=0), cache=cache.repeat_interleave(3))
    torch.testing.assert_close(step[:, 0], full[:, 5], atol=1e-5, rtol=1e-5)


def test_cache_is_latent_only():
    config = preset("deepseek-v3-671b")
    cache = KVCache(config.replace(num_hidden_layers=1), 1, 1, device="meta", dtype=torch.bfloat16)
    assert cache.bytes_per_token() == (512 + 64) * 2  # 1,152 bytes per token per layer
    mha = 2 * config.num_attention_heads * 128 * 2  # K and V of 128 heads x 128 dims
    assert mha / cache.bytes_per_token() > 50


def test_mtp_loss_present_finite_and_gradients_reach_every_parameter():
    model = Transformer(small_config(seq_aux_loss_alpha=0.001, q_lora_rank=8))
    model.train()
    x = torch.randint(0, 64, (2, 16))
    out = model.loss(x, torch.roll(x, -1, 1))
    assert out.mtp is not None and torch.isfinite(out.mtp) and out.mtp.item() > 0
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_dense_only_model_and_no_mtp():
    model = Transformer(small_config(n_routed_experts=0, num_nextn_predict_layers=0))
    x = torch.randint(0, 64, (2, 8))
    out = model.loss(x, torch.roll(x, -1, 1))
    assert out.mtp is None and model.moe_layers() == []


def test_published_config_counts_671b_and_37b_active():
    counts = count_parameters(preset("deepseek-v3-671b"))
    assert abs(counts["total"] - 671e9) / 671e9 < 0.005
    assert 36e9 < counts["active"] < 38e9
    assert 11e9 < counts["mtp"] < 12.5e9
    tiny = count_parameters(preset("tiny"))
    assert 1e6 <= tiny["total"] <= 5e6


def test_invalid_config_is_rejected_with_field_name():
    with pytest.raises(ValueError, match="topk_group"):
        small_config(topk_group=5)
    with pytest.raises(ValueError, match="qk_rope_head_dim"):
        small_config(qk_rope_head_dim=3)


def test_dense_decode_path_equals_dispatch():
    from r1lab.model import moe
    from r1lab.model.moe import Experts, route

    config = small_config()
    experts = Experts(config)
    torch.nn.init.normal_(experts.gate_up_proj, std=0.1)
    torch.nn.init.normal_(experts.down_proj, std=0.1)
    x = torch.randn(10, config.hidden_size)
    r = route(torch.randn(10, 8), torch.zeros(8), top_k=2, n_group=4, topk_group=2)
    with torch.no_grad():
        weights = experts.gate_up_proj, experts.down_proj
        torch.testing.assert_close(moe.dense(x, r, *weights), moe.dispatch(x, r, *weights), atol=1e-5, rtol=1e-5)


def test_packed_documents_match_separate_forwards():
    """Two documents packed in one row, with a document mask and positions restarting at 0,
    give each the logits it gets alone (what SFT packing relies on)."""
    from r1lab.model import document_mask

    config = preset("tiny").replace(num_nextn_predict_layers=1)
    model = Transformer(config).eval()
    a, b = torch.randint(0, config.vocab_size, (1, 7)), torch.randint(0, config.vocab_size, (1, 5))
    packed = torch.cat([a, b], dim=1)
    docs = torch.tensor([[0] * 7 + [1] * 5])
    pos = torch.tensor([list(range(7)) + list(range(5))])
    with torch.no_grad():
        out = model(packed, attention_mask=document_mask(docs), position_ids=pos)
        assert torch.allclose(out[:, :7], model(a), atol=1e-5)
        assert torch.allclose(out[:, 7:], model(b), atol=1e-5)
        labels = torch.cat([packed[:, 1:], torch.full((1, 1), -100)], dim=1)
        loss = model.loss(packed, labels, attention_mask=document_mask(docs), position_ids=pos)
    assert torch.isfinite(loss.loss) and loss.mtp is not None


@pytest.mark.parametrize("equal_blocks,top_k,grouped", [(False, 2, False), (True, 2, False), (False, 3, False),
                                                        (False, 2, True), (False, 3, True)])
def test_dispatch_gradients_equal_a_per_token_loop(equal_blocks, top_k, grouped, monkeypatch):
    """The expert dispatch (row gathers both ways; a loop over experts, one batched matmul over
    blocks padded to equal size, or grouped GEMMs) gives the outputs and gradients of the plain
    definition, with one expert given no token at all."""
    from r1lab.model import moe
    from r1lab.model.moe import Experts, ExpertSlots, route

    monkeypatch.setattr(moe, "PER_EXPERT_OVERHEAD_MACS", 10**12 if equal_blocks else 0)
    n_tokens = 100
    config = small_config()
    experts = Experts(config)
    torch.nn.init.normal_(experts.gate_up_proj, std=0.1)
    torch.nn.init.normal_(experts.down_proj, std=0.1)
    x = torch.randn(n_tokens, config.hidden_size, requires_grad=True)
    skew = torch.tensor([3.0] + [0.0] * 6 + [-1e4])  # expert 0 takes every token, expert 7 none
    r = route(torch.randn(n_tokens, 8) + skew, torch.zeros(8), top_k=top_k, n_group=4, topk_group=2)
    assert ExpertSlots.build(r.indices, 8, max_waste_rows=10**9 if equal_blocks else 0).equal_blocks == equal_blocks
    assert not (r.indices == 7).any()
    y = torch.randn(n_tokens, config.hidden_size)
    experts.grouped_mm = grouped
    dispatched = experts(x, r)
    (dispatched * y).sum().backward()
    got = [dispatched, x.grad, experts.gate_up_proj.grad, experts.down_proj.grad]
    x.grad = experts.gate_up_proj.grad = experts.down_proj.grad = None
    out = []
    for n in range(n_tokens):  # every token through its K experts, weighted
        acc = 0
        for k in range(top_k):
            e = int(r.indices[n, k])
            gate, up = (experts.gate_up_proj[e] @ x[n]).chunk(2)
            acc = acc + r.weights[n, k] * (experts.down_proj[e] @ (torch.nn.functional.silu(gate) * up))
        out.append(acc)
    (torch.stack(out) * y).sum().backward()
    for a, b in zip(got, [torch.stack(out), x.grad, experts.gate_up_proj.grad, experts.down_proj.grad]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def logits_and_grads(model, ids, valid, monkeypatch, setting: str, value: int) -> list[torch.Tensor]:
    """Logits and every parameter gradient of one forward+backward, with `mla.<setting> = value`."""
    from r1lab.model import mla

    monkeypatch.setattr(mla, setting, value)
    model.zero_grad()
    logits = model(ids, attention_mask=valid)
    (logits * torch.linspace(-1, 1, logits.numel()).view(logits.shape)).sum().backward()
    return [logits.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("padded", [False, True])
def test_attention_in_batch_chunks_equals_one_go(padded, monkeypatch):
    """Long batches attend a few rows at a time (`SPLIT_ATTENTION_CHUNK`): the same logits and
    gradients as attending all rows at once, with or without a padding mask."""
    torch.manual_seed(0)
    model = Transformer(small_config())
    ids = torch.randint(0, 64, (5, 12))
    valid = torch.ones(5, 12, dtype=torch.bool)
    if padded:
        valid[1, :4] = valid[3, :7] = False  # left padding, different per row
    args = (model, ids, valid if padded else None, monkeypatch, "SPLIT_ATTENTION_CHUNK")
    whole, rows = logits_and_grads(*args, 10**9), logits_and_grads(*args, 2 * 12 * 12 * 2)  # 2 rows of 2 heads
    assert len(whole) == len(rows) > 10
    for a, b in zip(whole, rows):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# YaRN: the softmax scale is 1/sqrt(d_qk) * mscale^2, not SDPA's default 1/sqrt(d_qk)
@pytest.mark.parametrize("rope", [dict(), dict(rope_factor=40.0, original_max_position_embeddings=8)])
def test_fused_attention_path_equals_split_path(monkeypatch, rope):
    """Above `SPLIT_ATTENTION_MAX(_FLOAT32)` pairs CPU attention runs PyTorch's fused kernel (v
    zero-padded to the query width): the same logits and gradients as the two-matmul path."""
    torch.manual_seed(0)
    model = Transformer(small_config(**rope))
    with torch.no_grad():  # sharper attention than at init, where a wrong scale barely shows
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "kv_b_proj.weight")):
                p.mul_(8.0)
    ids = torch.randint(0, 64, (3, 10))
    valid = torch.ones(3, 10, dtype=torch.bool)
    valid[1, :3] = False  # left padding
    args = (model, ids, valid, monkeypatch, "SPLIT_ATTENTION_MAX_FLOAT32")
    split, fused = logits_and_grads(*args, 10**9), logits_and_grads(*args, 0)
    assert len(split) == len(fused) > 10
    for a, b in zip(split, fused):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_router_stays_float32_under_bf16_autocast():
    """V3 §3.3.1 keeps the MoE gating in higher precision: autocast must not run it in bf16."""
    from r1lab.model.moe import Router

    router = Router(small_config())
    torch.nn.init.normal_(router.weight, std=0.5)
    x = torch.randn(64, 32)
    reference = router(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = router(x)
    assert torch.equal(under_autocast.scores, reference.scores)
    assert torch.equal(under_autocast.indices, reference.indices)


def left_padded(row: torch.Tensor, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A (1, T) row -> (ids, labels, key mask, positions) of the same row after `pad` left pads."""
    T = row.shape[1]
    ids = torch.cat([torch.zeros(1, pad, dtype=torch.long), row], 1)
    labels = torch.cat([torch.full((1, pad), -100), row[:, 1:], torch.full((1, 1), -100)], 1)
    mask = torch.arange(pad + T)[None] >= pad
    return ids, labels, mask, (mask.long().cumsum(-1) - 1).clamp(min=0)


def test_mtp_loss_of_a_left_padded_row_equals_the_unpadded_row():
    """A left pad's hidden state neither attends as a key nor predicts a target in the MTP blocks."""
    model = Transformer(small_config(num_nextn_predict_layers=2)).eval()
    row = torch.randint(2, 64, (1, 10))
    ref = model.loss(*left_padded(row, 0)[:2])
    ids, labels, mask, pos = left_padded(row, 3)
    out = model.loss(ids, labels, attention_mask=mask, position_ids=pos)
    torch.testing.assert_close(out.ce, ref.ce, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.mtp, ref.mtp, atol=1e-5, rtol=1e-5)


def test_mtp_depth_without_targets_adds_zero_not_nan():
    model = Transformer(small_config(num_nextn_predict_layers=2))
    x = torch.randint(0, 64, (2, 6))
    labels = torch.full_like(x, -100)
    labels[:, 0] = x[:, 1]  # only position 0 has a target: no MTP depth has one
    out = model.loss(x, labels)
    assert out.mtp.item() == 0.0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    labels[:, 1] = x[:, 2]  # a target for depth 1 (row 0 predicts t_2), still none for depth 2
    out = model.loss(x, labels)
    assert 0 < out.mtp.item() < float("inf")


def test_head_loss_without_any_target_is_zero_not_nan():
    """An SFT batch whose responses were all cut off has no label: the loss is 0 and the step a
    no-op, not a NaN that poisons the weights through AdamW."""
    model = Transformer(small_config(num_nextn_predict_layers=0))
    x = torch.randint(0, 64, (2, 6))
    out = model.loss(x, torch.full_like(x, -100))
    assert out.ce.item() == 0.0
    out.ce.backward()
    assert all((p.grad == 0).all() for p in model.parameters() if p.grad is not None)
    labels = torch.full_like(x, -100)
    labels[0, :3] = x[0, 1:4]  # the mean over the three real targets, as F.cross_entropy's
    h, _ = model.hidden_states(x)
    logits = model.lm_head(model.model.norm(h))
    expected = F.cross_entropy(logits[0, :3].float(), x[0, 1:4])
    torch.testing.assert_close(model.loss(x, labels).ce, expected, atol=1e-6, rtol=1e-6)


def test_padding_counts_neither_in_expert_load_nor_in_balance_loss():
    """Aux-loss-free balancing (V3 §2.1.2) counts only real tokens; outputs do not change."""
    from r1lab.model.moe import Routing, sequence_balance_loss

    config = small_config(num_nextn_predict_layers=1, seq_aux_loss_alpha=0.01)
    model = Transformer(config).train()
    ids, labels, mask, pos = left_padded(torch.randint(2, 64, (1, 10)), 4)  # 10 real tokens, 4 pads
    model.loss(ids, labels, attention_mask=mask, position_ids=pos)
    loads = [load.sum().item() for load in model.expert_load()]  # 2 main MoE layers, then the MTP block's
    K = config.num_experts_per_tok
    assert loads == [10 * K, 10 * K, 9 * K]  # MTP rows: a real state and a real next token (9 of 13)
    # the balance loss over a sequence's real tokens = the loss of those tokens alone
    r = route(torch.randn(12, 8), torch.zeros(8), top_k=2, n_group=4, topk_group=2)
    valid = torch.arange(12)[None] >= 5  # (1, 12): 5 pads
    real = Routing(weights=r.weights[5:], indices=r.indices[5:], scores=r.scores[5:])
    torch.testing.assert_close(sequence_balance_loss(r, 1, 12, 2, valid), sequence_balance_loss(real, 1, 7, 2))


# GRPO's completion forward attends to a PrefixCache of its prompts with a 2-D mask over prompt and
# completion: the completion's own slice of that mask (not the prompt's) says which tokens are real
def test_expert_load_after_a_prefix_cache_counts_the_completions_real_tokens():
    from r1lab.model import PrefixCache

    config = small_config()
    model = Transformer(config).train()
    prompt_mask = torch.tensor([[False] + [True] * 5, [True] * 6])  # row 0: one left pad
    comp_valid = torch.tensor([[True, False, False, False], [True] * 4])  # row 0: finished after 1 token
    prefix = PrefixCache()
    model.hidden_states(torch.randint(2, 64, (2, 6)), attention_mask=prompt_mask,
                        position_ids=(prompt_mask.long().cumsum(-1) - 1).clamp(min=0), cache=prefix)
    model.hidden_states(torch.randint(2, 64, (2, 4)), attention_mask=torch.cat([prompt_mask, comp_valid], 1),
                        position_ids=prompt_mask.sum(-1, keepdim=True) + torch.arange(4), cache=prefix)
    real = int(prompt_mask.sum() + comp_valid.sum())  # 11 + 5
    assert [load.sum().item() for load in model.expert_load()] == [real * config.num_experts_per_tok] * 2 + [0]


# SFT batches are right-padded: an MTP row whose state is real but whose t_{i+k} is a pad is no row either
def test_right_padding_counts_in_no_mtp_expert_load():
    config = small_config(num_nextn_predict_layers=1)
    model = Transformer(config).train()
    ids = torch.cat([torch.randint(2, 64, (1, 10)), torch.zeros(1, 4, dtype=torch.long)], 1)  # 10 real, 4 pads
    valid = torch.arange(14)[None] < 10
    labels = torch.roll(ids, -1, 1).masked_fill(~torch.roll(valid, -1, 1), -100)
    model.loss(ids, labels, attention_mask=valid)
    K = config.num_experts_per_tok
    assert [load.sum().item() for load in model.expert_load()] == [10 * K, 10 * K, 9 * K]


def test_moe_mtp_block_of_an_all_dense_model_is_validated():
    # first_k_dense_replace == num_hidden_layers: main layers dense, the MTP block (layer 3) MoE
    with pytest.raises(ValueError, match="topk_group"):
        small_config(first_k_dense_replace=3, num_nextn_predict_layers=1, topk_group=5)
    model = Transformer(small_config(first_k_dense_replace=3, num_nextn_predict_layers=1))
    assert len(model.moe_layers()) == 1


def test_small_preset_counts_match_its_docstring():
    counts = count_parameters(preset("small"))
    assert (round(counts["total"] / 1e6), round(counts["active"] / 1e6), round(counts["mtp"] / 1e6)) == (298, 142, 23)


def test_packed_mtp_loss_takes_no_target_across_documents():
    """V3 eq. 21-24 within a document: a packed row's MTP loss = its documents' MTP losses, token-weighted
    (the last token of document a must not predict b's second token from a's state)."""
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(num_nextn_predict_layers=1)).eval()
    V = model.config.vocab_size
    a, b = torch.randint(2, V, (1, 7)), torch.randint(2, V, (1, 5))
    lab = lambda r: torch.cat([r[:, 1:], torch.full((1, 1), -100)], 1)  # next token, within the document
    packed, labels = torch.cat([a, b], 1), torch.cat([lab(a), lab(b)], 1)
    docs, pos = torch.tensor([[0] * 7 + [1] * 5]), torch.tensor([list(range(7)) + list(range(5))])
    with torch.no_grad():
        la, lb = model.loss(a, lab(a)).mtp, model.loss(b, lab(b)).mtp  # 5 and 3 depth-1 targets
        lp = model.loss(packed, labels, attention_mask=document_mask(docs), position_ids=pos,
                        token_valid=torch.ones(1, 12, dtype=torch.bool)).mtp
    torch.testing.assert_close(lp, (la * 5 + lb * 3) / 8, atol=1e-5, rtol=1e-5)


# The MoE router's balancing state stays float32 when the model is cast to bf16 (V3 §2.1.2).
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


# token_valid given as a 0/1 integer mask means the same as the bool one (MoE load, MTP loss).
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


# Only training forwards (train mode, gradients on) count toward the expert load that moves the bias.
def test_no_grad_and_eval_forwards_count_no_expert_load():
    torch.manual_seed(0)
    model = Transformer(small_config()).train()
    x = torch.randint(0, 64, (2, 5))
    with torch.no_grad():
        model(x)  # e.g. old log-probs computed in train mode: no optimizer step follows from them
    model.eval()
    model(x)
    assert [l.sum().item() for l in model.expert_load()] == [0.0, 0.0, 0.0]  # 2 main MoE layers, the MTP block's
    before = [m.gate.e_score_correction_bias.clone() for m in model.moe_layers()]
    model.update_router_bias()
    assert all(torch.equal(m.gate.e_score_correction_bias, b) for m, b in zip(model.moe_layers(), before))
    model.train()
    model(x)
    assert [l.sum().item() for l in model.expert_load()] == [2 * 5 * 2] * 2 + [0.0]  # K = 2; no MTP in forward


# a negative balancing, balance-loss or MTP weight trains the opposite of what it is for; a negative
# init std failed inside torch's normal_ without naming the field
@pytest.mark.parametrize("field,value", [("bias_update_speed", -0.001), ("seq_aux_loss_alpha", -1e-4),
                                         ("mtp_loss_weight", -0.3), ("routed_scaling_factor", 0.0),
                                         ("routed_scaling_factor", -2.5), ("initializer_range", -0.02)])
def test_training_weights_of_the_wrong_sign_are_rejected_by_name(field, value):
    with pytest.raises(ValueError, match=f"ModelConfig: {field}"):
        small_config(**{field: value})
    small_config(**{field: 0.0 if field != "routed_scaling_factor" else 1.0})  # the boundary is allowed


# a float size failed deep in torch ("empty(): argument 'size' failed to unpack"), a str at a comparison
@pytest.mark.parametrize("field,value", [("hidden_size", 192.0), ("hidden_size", "128"), ("n_group", 2.0),
                                         ("first_k_dense_replace", True), ("max_position_embeddings", 512.0)])
def test_a_size_that_is_not_an_int_is_rejected_by_name(field, value):
    with pytest.raises(TypeError, match=f"ModelConfig: {field} must be an integer, got {value!r}"):
        small_config(**{field: value})
    assert small_config(bos_token_id=None).bos_token_id is None  # ids are not sizes: a config.json may hold null


# RoPE frequencies stay float32 through a dtype cast, as a bf16 load (from_pretrained) builds them:
# bf16-rounded ones put cos at position 4000 off by up to 0.5 (the small preset)
def test_rope_frequencies_stay_float32_after_a_bf16_cast():
    config = small_config(qk_rope_head_dim=16)
    model = Transformer(config)
    before = model.rotary(torch.tensor([[4000]]))
    model.to(torch.bfloat16)
    assert model.rotary.inv_freq.dtype == torch.float32
    after = model.rotary(torch.tensor([[4000]]))
    assert all(torch.equal(a, b) for a, b in zip(before, after))


# MTP depth k reads the representation the output head reads: the main model's (or depth k-1's)
# state after its final norm, as V3's MTP serves in vLLM/SGLang and trains in Megatron-LM
def test_mtp_depths_read_the_states_after_the_final_norm():
    torch.manual_seed(0)
    model = Transformer(small_config(num_nextn_predict_layers=2)).eval()
    with torch.no_grad():  # non-uniform norm weights: with ones, RMSNorm(RMSNorm(h)) == RMSNorm(h)
        model.model.norm.weight.uniform_(0.2, 3.0)
        model.mtp[0].norm.weight.uniform_(0.2, 3.0)
        for m in model.mtp:  # and distinct enorm / hnorm weights: with ones, swapping them changes nothing
            m.enorm.weight.uniform_(0.2, 3.0)
            m.hnorm.weight.uniform_(0.2, 3.0)
    x = torch.randint(0, 64, (2, 9))
    labels = torch.roll(x, -1, 1)
    h, _ = model.hidden_states(x)
    state, losses = model.model.norm(h), []  # h_i^0: what the main head reads
    for k, m in enumerate(model.mtp, start=1):
        T = state.shape[1] - 1
        emb = model.model.embed_tokens(x[:, k:k + T])
        inp = m.eh_proj(torch.cat([m.enorm(emb), m.hnorm(state[:, :T])], -1))
        cos, sin = model.rotary(torch.arange(T).expand(2, T))
        out, _ = m.block(inp, cos, sin)
        state = m.norm(out)  # h_i^k as its head reads it, the input of depth k + 1
        losses.append(F.cross_entropy(model.lm_head(state).flatten(0, 1), labels[:, k:k + T].flatten()))
    torch.testing.assert_close(model.loss(x, labels).mtp, torch.stack(losses).mean(), atol=1e-5, rtol=1e-5)


# a real token at or past max_position_embeddings (128 here) is a ValueError naming both, raised before
# any work (a cache keeps its length); padding slots past it are masked and allowed
def test_positions_past_the_limit_are_a_value_error_naming_position_and_limit():
    torch.manual_seed(0)
    model = Transformer(small_config()).eval()
    x = torch.randint(0, 64, (1, 4))
    with pytest.raises(ValueError, match=r"position 128 .*max_position_embeddings \(128\)"):
        model(x, position_ids=torch.tensor([[125, 126, 127, 128]]))
    with pytest.raises(ValueError, match=r"position 128 .*\(128\)"):
        model(torch.randint(0, 64, (1, 129)))  # default positions 0..128
    cache = model.make_cache(1, 130)
    cache.length = 126
    with pytest.raises(ValueError, match=r"position 129 .*\(128\)"):
        model(x, cache=cache)  # a cached prefill at 126..129
    assert cache.length == 126
    model(x[:, :2], cache=cache)  # 126, 127: the last positions allowed
    mask = torch.tensor([[True, True, False, False]])  # the pads sit at 128, 129
    model(x, position_ids=torch.tensor([[126, 127, 128, 129]]), attention_mask=mask)


# a sequence made only of padding is left out of the sequence-wise balance loss's batch average
def test_an_all_padding_row_does_not_dilute_the_balance_loss():
    from r1lab.model.moe import Routing, sequence_balance_loss

    # E = 2, K = 1; row 0's two real tokens both pick expert 0, with s / sum s = (0.75, 0.25) each:
    # f = 2 / (1 * 2) * (2, 0) = (2, 0), P = (0.75, 0.25), loss 2 * 0.75 = 1.5. Row 1 is all padding.
    scores = torch.tensor([[0.6, 0.2], [0.3, 0.1], [0.5, 0.5], [0.5, 0.5]])
    routing = Routing(weights=torch.ones(4, 1), indices=torch.tensor([[0], [0], [1], [1]]), scores=scores)
    valid = torch.tensor([[True, True], [False, False]])
    torch.testing.assert_close(sequence_balance_loss(routing, 2, 2, 1, valid), torch.tensor(1.5))
    none = torch.zeros(2, 2, dtype=torch.bool)  # a batch of padding only: 0, not NaN
    torch.testing.assert_close(sequence_balance_loss(routing, 2, 2, 1, none), torch.tensor(0.0))


# the sequence-wise balance loss by hand with K = 2 (the all-padding case above has K = 1, where a
# dropped K in f_i = E / (K T) * count went unseen)
def test_sequence_balance_loss_by_hand_with_two_experts_per_token():
    from r1lab.model.moe import Routing, sequence_balance_loss

    # E = 4, K = 2, T = 2: f_i = 4 / (2 * 2) * count_i = count_i. Row 0 routes to {0, 1} and {0, 2}:
    # f = (2, 1, 1, 0); s / sum s = (0.4, 0.3, 0.2, 0.1) and (0.5, 0.1, 0.3, 0.1), P = (0.45, 0.2, 0.25, 0.1);
    # loss 0.9 + 0.2 + 0.25 = 1.35. Row 1 routes both tokens to {0, 1}: f = (2, 2, 0, 0), P = (0.4, 0.4, 0.1, 0.1),
    # loss 1.6. The batch average: 1.475.
    scores = torch.tensor([[0.8, 0.6, 0.4, 0.2], [0.5, 0.1, 0.3, 0.1], [0.4, 0.4, 0.1, 0.1], [0.4, 0.4, 0.1, 0.1]])
    indices = torch.tensor([[0, 1], [2, 0], [0, 1], [1, 0]])
    routing = Routing(weights=torch.ones(4, 2), indices=indices, scores=scores)
    torch.testing.assert_close(sequence_balance_loss(routing, 2, 2, 2), torch.tensor(1.475))


# V3 eq. 18 counts a token for expert i when s_i,t is among its K highest affinities: the balancing
# bias (and the group limit) decide where the token goes, not what the balance loss counts
def test_sequence_balance_loss_counts_the_unbiased_top_k_not_the_biased_choice():
    from r1lab.model.moe import sequence_balance_loss

    # E = 2, K = 1, one sequence of T = 2: both tokens prefer expert 0 (s = 0.6, 0.7), but a bias of
    # 0.5 on expert 1 routes them there. Eq. 18: f = 2 / (1 * 2) * (2, 0) = (2, 0); P = (0.65, 0.35):
    # loss 2 * 0.65 = 1.3 (counting the biased choice gave f = (0, 2), 0.7)
    scores = torch.tensor([[0.6, 0.4], [0.7, 0.3]])
    routing = route(torch.logit(scores), torch.tensor([0.0, 0.5]), top_k=1, n_group=1, topk_group=1)
    assert routing.indices.flatten().tolist() == [1, 1]
    torch.testing.assert_close(sequence_balance_loss(routing, 1, 2, 1), torch.tensor(1.3))


# In float64 the expert dispatch equals the per-token definition to float64 precision, K > 2 included.
@pytest.mark.parametrize("top_k", [2, 3])
def test_float64_dispatch_equals_a_per_token_loop_to_float64_precision(top_k):
    from r1lab.model import moe
    from r1lab.model.moe import Experts, route

    torch.manual_seed(0)
    config = small_config()
    experts = Experts(config).double()
    torch.nn.init.normal_(experts.gate_up_proj, std=0.3)
    torch.nn.init.normal_(experts.down_proj, std=0.3)
    x = torch.randn(8, config.hidden_size, dtype=torch.float64, requires_grad=True)
    r = route(torch.randn(8, 8, dtype=torch.float64), torch.zeros(8), top_k=top_k, n_group=4, topk_group=2)
    r.weights = r.weights.double()

    def one_token(n: int) -> torch.Tensor:
        out = torch.zeros(config.hidden_size, dtype=torch.float64)
        for k, e in enumerate(r.indices[n].tolist()):
            gate, up = (experts.gate_up_proj[e] @ x[n]).chunk(2)
            out = out + r.weights[n, k] * (experts.down_proj[e] @ (F.silu(gate) * up))
        return out

    expected = torch.stack([one_token(n) for n in range(8)])
    weights = experts.gate_up_proj, experts.down_proj
    torch.testing.assert_close(moe.dispatch(x, r, *weights), expected, atol=1e-12, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda v: moe.dispatch(v, r, *weights), (x,))


def test_model_info_prints_counts_in_a_unit_that_reads(capsys):
    import argparse

    from r1lab.model import info
    info.main(argparse.Namespace(preset="tiny", json=False))
    assert "total:         1,679,744 (1.68M)" in capsys.readouterr().out  # was (0.00B)
    info.main(argparse.Namespace(preset="deepseek-v3-671b", json=False))
    assert "(671.03B)" in capsys.readouterr().out


# V3 §2.1.2 by hand: b_i += gamma * sign(mean load - load_i), each update on the load counted since the last
def test_bias_update_by_hand_reads_only_the_load_since_the_last_update():
    moe = Transformer(small_config(bias_update_speed=0.01)).moe_layers()[0]
    gate = moe.gate
    gate.expert_load.copy_(torch.tensor([3.0, 1, 0, 0, 1, 1, 1, 1]))  # mean 1
    moe.update_bias()
    assert gate.expert_load.tolist() == [0.0] * 8  # the counter starts again
    torch.testing.assert_close(gate.e_score_correction_bias, 0.01 * torch.tensor([-1.0, 0, 1, 1, 0, 0, 0, 0]))
    gate.expert_load.copy_(torch.tensor([0.0, 0, 0, 8, 0, 0, 0, 0]))  # mean 1; with 3, 1, 0, 8, ... left: mean 2
    moe.update_bias()
    torch.testing.assert_close(gate.e_score_correction_bias, 0.01 * torch.tensor([0.0, 1, 2, 0, 1, 1, 1, 1]))
