"""Generation engine: cache decoding equals full forwards, seeded sampling, stops, groups."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

from r1lab import engine as engine_module
from r1lab.engine import Engine, SamplingParams, _truncate, sample
from r1lab.model import Transformer, preset

# R1LAB_TEST_DEVICE=cuda runs these tests with the model on a GPU (the engine is device-agnostic)
DEVICE = torch.device(os.environ.get("R1LAB_TEST_DEVICE", "cpu"))


class CharTokenizer:
    """ids 0..1 special, then one id per printable character."""

    def encode(self, text):
        return [ord(c) - 30 for c in text]

    def decode(self, ids):
        return "".join(chr(i + 30) for i in ids if i >= 2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = preset("tiny").replace(vocab_size=100, num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                    kv_lora_rank=32, q_lora_rank=0, num_nextn_predict_layers=0)
    m = Transformer(config)
    with torch.no_grad():  # a peaky output distribution so samples differ visibly from noise
        m.lm_head.weight.mul_(20)
    return m.to(DEVICE).eval()


def greedy_reference(model, prompt, steps):
    ids = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids], device=DEVICE))[0, -1].argmax()))
    return ids[len(prompt):]


def test_greedy_equals_full_forward_for_ragged_prompts(model):
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    out = Engine(model).generate(prompts, SamplingParams(temperature=0, max_new_tokens=8))
    for prompt, (completion,) in zip(prompts, out):
        assert completion.token_ids == greedy_reference(model, prompt, 8)
        assert completion.finish_reason == "length"


def test_logprobs_and_entropies_are_those_of_the_full_forward(model):
    prompt = [5, 6, 7]
    (completion,), = Engine(model).generate([prompt], SamplingParams(temperature=0.7, max_new_tokens=6, seed=3))
    ids = torch.tensor([prompt + completion.token_ids], device=DEVICE)
    with torch.no_grad():
        logp = (model(ids)[0, len(prompt) - 1:-1] / 0.7).log_softmax(-1).cpu()
    expected = logp.gather(1, torch.tensor(completion.token_ids)[:, None]).squeeze(1)
    torch.testing.assert_close(torch.tensor(completion.logprobs), expected, atol=1e-4, rtol=1e-4)
    entropy = -(logp.exp() * logp).sum(-1)  # of the same tempered distribution, at each sampled token
    torch.testing.assert_close(torch.tensor(completion.entropies), entropy, atol=1e-4, rtol=1e-4)


def test_same_seed_same_samples_and_group_of_n(model):
    params = SamplingParams(temperature=1.0, max_new_tokens=10, n=4, seed=7)
    a = Engine(model).generate([[5, 6], [7, 8, 9]], params)
    b = Engine(model).generate([[5, 6], [7, 8, 9]], params)
    assert [[c.token_ids for c in g] for g in a] == [[c.token_ids for c in g] for g in b]
    assert [len(g) for g in a] == [4, 4] and all(c.prompt_index == i for i, g in enumerate(a) for c in g)
    assert len({tuple(c.token_ids) for c in a[0]}) > 1  # the group's samples differ
    c = Engine(model).generate([[5, 6], [7, 8, 9]], SamplingParams(temperature=1.0, max_new_tokens=10, n=4, seed=8))
    assert [[x.token_ids for x in g] for g in a] != [[x.token_ids for x in g] for g in c]


def test_shared_prefill_group_matches_greedy_of_each_row(model):
    out = Engine(model).generate([[20, 21, 22]], SamplingParams(temperature=0, max_new_tokens=5, n=3))
    ref = greedy_reference(model, [20, 21, 22], 5)
    assert all(c.token_ids == ref for c in out[0])


def test_stop_token_ends_row_and_others_continue(model):
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12]]
    free = Engine(model).generate(prompts, SamplingParams(temperature=0, max_new_tokens=8))
    stop = free[0][0].token_ids[2]
    out = Engine(model).generate(prompts, SamplingParams(temperature=0, max_new_tokens=8, stop_token_ids=(stop,)))
    first = out[0][0]
    assert first.finish_reason == "stop" and first.token_ids == free[0][0].token_ids[:free[0][0].token_ids.index(stop) + 1]
    other = out[1][0]
    cut = other.token_ids.index(stop) + 1 if stop in other.token_ids else len(other.token_ids)
    assert other.token_ids == free[1][0].token_ids[:cut]


def test_stop_string_truncates_text(model):
    tok = CharTokenizer()
    free = Engine(model, tok).generate(["ab"], SamplingParams(temperature=0, max_new_tokens=12))[0][0]
    text = free.text
    assert len(text) >= 4
    stop = text[2:4]
    out = Engine(model, tok).generate(["ab"], SamplingParams(temperature=0, max_new_tokens=12, stop_strings=(stop,)))[0][0]
    assert out.finish_reason == "stop" and out.text.endswith(stop) and out.text == text[:text.find(stop) + 2]


class ByteTokenizer:
    """One id per UTF-8 byte, as byte-level BPE may split a character: a few bytes, ids 2..."""

    BYTES = sorted(set("ok x答案".encode()))

    def encode(self, text):
        return [2 + self.BYTES.index(b) for b in text.encode()]

    def decode(self, ids):
        return bytes(self.BYTES[i - 2] for i in ids if i >= 2).decode("utf-8", errors="replace")


def force_tokens(monkeypatch, ids: list[int]) -> None:
    """Makes the engine emit `ids` in turn (every row the same), with the log-probs and entropies it
    computed for its own samples."""
    forced = iter(ids)
    real = engine_module.sample

    def forced_sample(logits, params, gen):
        token, logprob, entropy = real(logits, params, gen)
        return torch.full_like(token, next(forced)), logprob, entropy

    monkeypatch.setattr(engine_module, "sample", forced_sample)


def test_stop_string_of_multibyte_characters_is_found(model, monkeypatch):
    """"答案" is 6 byte tokens: the decoded tail checked must cover its bytes, not its 2 characters."""
    tok = ByteTokenizer()
    force_tokens(monkeypatch, tok.encode("ok 答案") + tok.encode("x") * 30)
    out = Engine(model, tok).generate([[5, 6]], SamplingParams(max_new_tokens=20, stop_strings=("答案",)))[0][0]
    assert (out.finish_reason, out.text, len(out.token_ids)) == ("stop", "ok 答案", 9)


def test_sampling_params_refuse_a_temperature_that_overflows_and_a_bad_seed():
    """T = 1e-39 divides logits to inf: NaN log-probs and always the last id, silently."""
    with pytest.raises(ValueError, match="use 0 for greedy"):
        SamplingParams(temperature=1e-39)
    with pytest.raises(ValueError, match="seed"):
        SamplingParams(seed=-1)
    SamplingParams(temperature=1e-6)  # the smallest accepted: log-probs stay finite
    logits = torch.tensor([[30.0, 1.0, -5.0]])
    token, logprob, entropy = sample(logits, SamplingParams(temperature=1e-6), torch.Generator().manual_seed(0))
    assert token.item() == 0 and torch.isfinite(logprob).all() and torch.isfinite(entropy).all()


def test_top_k_one_is_greedy_and_top_p_truncates():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]] * 500)
    gen = torch.Generator().manual_seed(0)
    tok, _, _ = sample(logits, SamplingParams(top_k=1), gen)
    assert (tok == 0).all()
    probs = logits[0].softmax(-1)  # 0.61, 0.22, 0.14, 0.03: top_p=0.7 keeps the first two
    tok, lp, entropy = sample(logits, SamplingParams(top_p=0.7), gen)
    assert set(tok.tolist()) == {0, 1}
    torch.testing.assert_close(lp, probs.log()[tok])
    torch.testing.assert_close(entropy, -(probs * probs.log()).sum().expand(500))  # of the untruncated distribution


def test_top_p_exact_tie_keeps_the_smallest_prefix():
    """Uniform over 4 with top_p = 0.5: two tokens already reach the mass, a third is not kept."""
    values, _ = _truncate(torch.full((3, 4), 0.25), 0, 0.5)
    assert (values > 0).sum(-1).tolist() == [2, 2, 2]
    tok, _, _ = sample(torch.zeros(500, 4), SamplingParams(top_p=0.5), torch.Generator().manual_seed(0))
    assert len(set(tok.tolist())) == 2


@pytest.mark.parametrize("top_k,top_p", [(0, 0.9), (0, 0.5), (5, 0.8), (3, 0.5), (8, 0.3)])
def test_top_k_top_p_keep_what_transformers_warpers_keep(top_k, top_p):
    """Top-k first, then top-p on the renormalised top-k (Hugging Face's TopK -> TopP warpers)."""
    from transformers import TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(64, 20, generator=torch.Generator().manual_seed(1)) * 2 / 0.7  # tempered
    values, ids = _truncate(logits.softmax(-1), top_k, top_p)
    ours = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, ids, values > 0)
    warped = TopKLogitsWarper(top_k)(None, logits) if top_k else logits
    theirs = TopPLogitsWarper(top_p)(None, warped).isfinite()
    assert torch.equal(ours, theirs)


def test_top_p_after_top_k_is_measured_on_the_top_k_distribution():
    # probs 0.4, 0.3, 0.2, 0.1; top-2 renormalised: 4/7, 3/7, so top_p = 0.5 keeps token 0 alone
    # (measured on the full distribution, 0.4 < 0.5 would keep token 1 as well)
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log().expand(400, 4)
    tok, lp, _ = sample(logits, SamplingParams(top_k=2, top_p=0.5), torch.Generator().manual_seed(0))
    assert set(tok.tolist()) == {0}
    torch.testing.assert_close(lp, torch.tensor(0.4).log().expand(400))  # untruncated log-prob


@pytest.mark.parametrize("prompt,params,match", [
    ("hello", SamplingParams(), "tokenizer"),
    ([5, 100], SamplingParams(), "outside the vocabulary"),  # vocab_size 100
    ([-1, 5], SamplingParams(), "outside the vocabulary"),
    ([5] * 10, SamplingParams(max_new_tokens=503), "max_position_embeddings"),  # 10 + 503 > 512
])
def test_bad_prompts_are_clear_value_errors(model, prompt, params, match):
    with pytest.raises(ValueError, match=match):
        Engine(model).generate([prompt], params)


def test_bad_params_are_rejected():
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingParams(max_new_tokens=0)
    # one message for both said "top_k must be >= 0 and n >= 1": neither which was bad nor its value
    with pytest.raises(ValueError, match=r"^top_k must be >= 0 \(0 = off\), got -1$"):
        SamplingParams(top_k=-1)
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        SamplingParams(n=0)


@pytest.mark.parametrize("changes", [
    dict(),  # tiny: q_lora_rank 0, one shared expert, interleaved RoPE
    dict(q_lora_rank=16, n_shared_experts=2, rope_interleave=False, rope_factor=4.0,
         original_max_position_embeddings=8, n_group=4, topk_group=2),
    dict(n_routed_experts=64, n_group=1, topk_group=1),  # many rows x experts: the model's own dispatching MoE
    dict(q_lora_rank=16, rms_norm_eps=0.1),  # the q/KV latent norms keep their own eps (1e-6), as the model's
])
def test_packed_decode_step_equals_the_model_forward(changes):
    """DecodeWeights rearranges the weights (fused projections, absorbed up-projections, shared
    experts as always-on experts); a step must give the model's own logits and cache."""
    from r1lab.model.decode import DecodeWeights

    torch.manual_seed(0)
    config = preset("tiny").replace(vocab_size=50, num_hidden_layers=3, **changes)
    model = Transformer(config).to(DEVICE).eval()
    with torch.no_grad():
        for m in model.moe_layers():  # a non-zero balancing bias must steer routing the same way
            m.gate.e_score_correction_bias.normal_(0, 0.01)
    B, P = 24, 7
    ids = torch.randint(0, 50, (B, P + 2), device=DEVICE)
    valid = torch.ones(B, P + 2, dtype=torch.bool, device=DEVICE)
    valid[::2, :3] = False  # left padding on every other row
    pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
    decoder = DecodeWeights(model)
    with torch.no_grad():
        full = model(ids, position_ids=pos, attention_mask=valid)  # (B, P + 2, V)
        cache = model.make_cache(B, P + 2)
        model(ids[:, :P], position_ids=pos[:, :P], attention_mask=valid[:, :P], cache=cache)
        for t in (P, P + 1):
            logits = decoder.step(ids[:, t], pos[:, t], valid[:, :t + 1], cache)
            torch.testing.assert_close(logits, full[:, t], atol=1e-4, rtol=1e-4)
        bf16 = DecodeWeights(model, torch.bfloat16)
        cache.length = P + 1
        approx = bf16.step(ids[:, P + 1], pos[:, P + 1], valid, cache)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):  # the model's own bf16 error, for scale
            autocast = model(ids, position_ids=pos, attention_mask=valid)[:, P + 1].float()
    error, autocast_error = [(x - full[:, P + 1]).abs().mean() for x in (approx, autocast)]
    assert error < 2 * autocast_error


def test_one_row_decode_step_with_odd_widths_equals_the_model_forward():
    """With one row, the RoPE slice of the step's fused projection is contiguous but starts at an
    odd offset when qk_nope_head_dim or kv_lora_rank is odd: `.contiguous()` did not copy it, and
    the complex view of interleaved RoPE raised (storage offset not divisible by 2)."""
    from r1lab.model.decode import DecodeWeights

    torch.manual_seed(0)
    config = preset("tiny").replace(vocab_size=50, num_hidden_layers=2, qk_nope_head_dim=7, kv_lora_rank=15)
    model = Transformer(config).to(DEVICE).eval()
    ids = torch.randint(0, 50, (1, 6), device=DEVICE)
    pos, valid = torch.arange(6, device=DEVICE)[None], torch.ones(1, 6, dtype=torch.bool, device=DEVICE)
    with torch.no_grad():
        full = model(ids, position_ids=pos)  # (1, 6, V)
        cache = model.make_cache(1, 6)
        model(ids[:, :5], position_ids=pos[:, :5], cache=cache)
        logits = DecodeWeights(model).step(ids[:, 5], pos[:, 5], valid, cache)
    torch.testing.assert_close(logits, full[:, 5], atol=1e-4, rtol=1e-4)


def test_decode_step_takes_a_cache_of_another_dtype():
    """The absorbed attention weights follow the cache's dtype: DecodeWeights packs them in its
    `cache_dtype` (float32 on a CPU, bf16 on a GPU), yet a step on a cache made in the other dtype
    gives the float32 step's logits up to bf16 rounding (it raised a dtype error on CUDA before)."""
    from r1lab.model.decode import DecodeWeights

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=50, num_hidden_layers=2)).to(DEVICE).eval()
    ids = torch.randint(0, 50, (4, 6), device=DEVICE)
    valid = torch.ones(4, 6, dtype=torch.bool, device=DEVICE)
    pos = torch.arange(6, device=DEVICE).expand(4, 6)
    results = []
    for weights in (torch.float32, torch.bfloat16):
        for cache_dtype in (torch.float32, torch.bfloat16):
            with torch.no_grad():
                cache = model.make_cache(4, 6, dtype=cache_dtype)
                model(ids[:, :5], position_ids=pos[:, :5], attention_mask=valid[:, :5], cache=cache)
                results.append(DecodeWeights(model, weights).step(ids[:, 5], pos[:, 5], valid, cache))
    for approx in results[1:]:  # bf16 rounding, per row (a bf16 routing flip moves a row by ~0.02)
        assert (approx - results[0]).abs().mean(dim=1).median() < 3e-3


def test_a_zero_uniform_draw_never_samples_a_token_of_probability_zero(monkeypatch):
    """Inverse-CDF sampling with u = 0 (torch.rand gives it about once in 2^24 draws) took column 0
    even at probability 0: the pad token, in a completion, once per ~16M sampled tokens."""
    from r1lab.engine import _draw

    probs = torch.tensor([[0.0, 0.0, 0.7, 0.3], [0.0, 0.5, 0.0, 0.5]])
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: torch.zeros(*shape, device=kw.get("device")))
    for params in (SamplingParams(), SamplingParams(top_p=0.9), SamplingParams(top_k=3)):
        tokens = _draw(probs, params, torch.Generator().manual_seed(0))
        assert probs.gather(1, tokens[:, None]).min() > 0, params


def test_bf16_decode_step_routes_on_float32_input(monkeypatch):
    """V3 §3.3.1 / decode.py's doc: the router stays float32 as under autocast, so its input is the
    float32 RMSNorm output, not a bf16-rounded copy."""
    from r1lab.model.decode import DecodeWeights
    from r1lab.model.moe import Router

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=50, num_hidden_layers=2)).eval()
    ids, pos = torch.randint(0, 50, (4, 6)), torch.arange(6).expand(4, 6)
    valid = torch.ones(4, 6, dtype=torch.bool)
    with torch.no_grad():
        cache = model.make_cache(4, 6)
        model(ids[:, :5], position_ids=pos[:, :5], cache=cache)
    inputs = []
    real = Router.forward
    monkeypatch.setattr(Router, "forward", lambda self, x, v=None: (inputs.append(x), real(self, x, v))[1])
    DecodeWeights(model, torch.bfloat16).step(ids[:, 5], pos[:, 5], valid, cache)
    assert inputs and all(x.dtype == torch.float32 for x in inputs)
    assert all((x != x.to(torch.bfloat16).float()).any() for x in inputs)  # not bf16-rounded values


@pytest.mark.parametrize("top_k,top_p", [(2, 1.0), (2, 0.99), (3, 0.95), (1, 1.0)])
def test_top_k_keeps_tokens_tied_with_the_kth_as_transformers_does(top_k, top_p):
    """HF's TopK warper (and vLLM) drop only tokens less likely than the k-th: ties with it stay.
    bf16 logits tie often. probs of [3, 1, 1, 1, 0]: 0.687, 0.093 x 3, 0.034; top_k = 2 keeps 4
    tokens, renormalised 0.711, 0.096 x 3 (torch.topk kept 2: two of the three tied ones dropped)."""
    from transformers import TopKLogitsWarper, TopPLogitsWarper

    logits = torch.tensor([[3.0, 1.0, 1.0, 1.0, 0.0], [0.0, 2.0, 2.0, -1.0, 2.0]])
    values, ids = _truncate(logits.softmax(-1), top_k, top_p)
    ours = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, ids, values > 0)
    warped = TopKLogitsWarper(top_k)(None, logits)
    theirs = (TopPLogitsWarper(top_p)(None, warped) if top_p < 1 else warped).isfinite()
    assert torch.equal(ours, theirs)
    expected = {(2, 1.0): [4, 3], (2, 0.99): [4, 3], (3, 0.95): [4, 3], (1, 1.0): [1, 3]}[(top_k, top_p)]
    assert ours.sum(-1).tolist() == expected  # by hand: the last tied token comes after 0.904 < 0.95 of mass
    tok, _, _ = sample(logits[:1].expand(4000, 5), SamplingParams(top_k=2), torch.Generator().manual_seed(0))
    counts = torch.bincount(tok, minlength=5)
    assert counts[4] == 0 and (counts[1:4] > 200).all()  # 0.096 of 4000 = 386 each


def test_no_prompts_give_no_completions_and_an_empty_prompt_is_refused(model):
    """An empty batch has nothing to sample: [] (it raised 'every prompt needs at least one token')."""
    assert Engine(model).generate([], SamplingParams(n=4)) == []
    with pytest.raises(ValueError, match="at least one token"):
        Engine(model).generate([[5], []], SamplingParams())


def test_a_bare_string_where_a_tuple_or_list_belongs_is_refused(model):
    """stop_strings="</answer>" stopped every row at its first '<', '/', 'a', ... (one stop string
    per character); generate("ab") sampled one group per character of the prompt."""
    with pytest.raises(TypeError, match="stop_strings=\\(s,\\)"):
        SamplingParams(stop_strings="</answer>")
    with pytest.raises(TypeError, match="stop_token_ids=\\(id,\\)"):
        SamplingParams(stop_token_ids=1)
    with pytest.raises(ValueError, match="empty string"):
        SamplingParams(stop_strings=("x", ""))
    with pytest.raises(TypeError, match="\\[prompt\\]"):
        Engine(model, CharTokenizer()).generate("ab", SamplingParams(max_new_tokens=2))


def test_bf16_decode_step_with_many_rows_runs_the_experts_in_bf16(monkeypatch):
    """Many rows take the model's dispatching MoE; with bf16 weights it ran its experts in float32
    (no autocast around it), unlike the dense path and decode.py's doc. Its output must be what
    the MoE gives under bf16 autocast."""
    from r1lab.model.decode import DecodeWeights
    from r1lab.model.moe import MoE

    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=50, num_hidden_layers=2, n_routed_experts=64, n_group=1,
                                               topk_group=1)).eval()
    B, P = 64, 6  # 64 rows x 64 experts > DENSE_DECODE_BUDGET (512) x K (2): dispatching
    ids, pos, valid = torch.randint(0, 50, (B, P)), torch.arange(P).expand(B, P), torch.ones(B, P, dtype=torch.bool)
    with torch.no_grad():
        cache = model.make_cache(B, P)
        model(ids[:, :-1], position_ids=pos[:, :-1], cache=cache)
    calls, real = [], MoE.forward

    def recording(self, x, token_valid=None):
        out = real(self, x, token_valid)
        calls.append((self, x, out[0]))
        return out

    monkeypatch.setattr(MoE, "forward", recording)
    DecodeWeights(model, torch.bfloat16).step(ids[:, -1], pos[:, -1], valid, cache)
    assert calls
    with torch.no_grad():
        for moe, x, out in calls:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                expected = real(moe, x)[0]
            torch.testing.assert_close(out.float(), expected.float(), atol=0, rtol=0)
            assert not torch.equal(out.float(), real(moe, x)[0].float())  # float32 experts: other numbers


# Engine.generate's prompts argument: one prompt's flat token ids is refused clearly.
@pytest.fixture(scope="module")
def engine() -> Engine:
    torch.manual_seed(0)
    config = preset("tiny").replace(vocab_size=50, num_hidden_layers=2, num_nextn_predict_layers=0)
    return Engine(Transformer(config).eval())


@pytest.mark.parametrize("flat", [[5, 6, 7], (5, 6, 7), np.array([5, 6, 7]), torch.tensor([5, 6, 7]), [[5, 6], 7]])
def test_flat_token_ids_as_prompts_are_refused_with_the_clear_message(engine: Engine, flat: object) -> None:
    """generate(tokenizer.encode(text), ...) failed deep inside with "'int' object is not iterable"
    (or "iteration over a 0-d tensor"): nothing said that prompts is a list of prompts."""
    with pytest.raises(TypeError, match=r"pass \[prompt\] for one"):
        engine.generate(flat, SamplingParams(temperature=0, max_new_tokens=2))  # type: ignore[arg-type]


def test_prompts_as_arrays_and_tensors_of_rows_still_generate(engine: Engine) -> None:
    """A one-token prompt as a 1-element tensor is a prompt, not a token id (index() takes it)."""
    params = SamplingParams(temperature=0, max_new_tokens=3)
    expected = engine.generate([[5]], params)[0][0].token_ids
    for prompts in (torch.tensor([[5]]), np.array([[5]]), [torch.tensor([5])], [np.array([5])]):
        assert engine.generate(prompts, params)[0][0].token_ids == expected  # type: ignore[arg-type]


# Engine edge cases: configs and arguments that are legal but unusual.
def _greedy_reference(model, prompt, steps):
    ids = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


@pytest.mark.parametrize("pad", [-1, 60])
def test_a_pad_id_outside_the_vocabulary_still_pads_ragged_prompts(pad):
    """ModelConfig accepts any pad_token_id (checkpoint.py reads HF's, which may be -1); the engine
    embedded it in the left padding of a ragged batch: an IndexError. Pad slots are masked, so
    the samples are those of the unpadded prompts."""
    torch.manual_seed(0)
    model = Transformer(preset("tiny").replace(vocab_size=60, num_hidden_layers=2, pad_token_id=pad)).eval()
    prompts = [[5, 6, 7], [8]]
    out = Engine(model).generate(prompts, SamplingParams(temperature=0, max_new_tokens=3))
    assert [g[0].token_ids for g in out] == [_greedy_reference(model, p, 3) for p in prompts]


# SamplingParams.stop_token_ids: scalar ids of any integer type are refused up front with the clear
# message, and sequences of numpy / torch integers become a tuple of Python ints.
@pytest.mark.parametrize("scalar", [3, np.int64(3), torch.tensor(3)])
def test_scalar_stop_token_id_is_refused_with_the_clear_message(scalar: object) -> None:
    with pytest.raises(TypeError, match=r"stop_token_ids=\(id,\)"):
        SamplingParams(stop_token_ids=scalar)  # type: ignore[arg-type]


def test_float_stop_token_id_is_refused() -> None:
    with pytest.raises(TypeError, match="stop_token_ids"):
        SamplingParams(stop_token_ids=(1.5,))  # type: ignore[arg-type]


@pytest.mark.parametrize("ids", [[4, 5], np.array([4, 5]), torch.tensor([4, 5]), (np.int64(4), torch.tensor(5))])
def test_stop_token_ids_become_a_tuple_of_ints(ids: object) -> None:
    got = SamplingParams(stop_token_ids=ids).stop_token_ids  # type: ignore[arg-type]
    assert got == (4, 5)
    assert type(got) is tuple and all(type(i) is int for i in got)


# Engine.generate's prompts: token ids that are not integers are refused, not cast to long.
@pytest.mark.parametrize("prompt", [[5.7, 6.0], np.array([5.0, 6.0]), torch.tensor([5.0, 6.0]), [5, float("nan")]])
def test_float_token_ids_in_a_prompt_are_refused(engine: Engine, prompt: object) -> None:
    with pytest.raises(TypeError, match="token ids must be integers"):
        engine.generate([prompt], SamplingParams(temperature=0, max_new_tokens=2))  # type: ignore[list-item]


def test_integer_token_ids_of_any_integer_type_still_generate(engine: Engine) -> None:
    params = SamplingParams(temperature=0, max_new_tokens=3)
    expected = engine.generate([[5, 6]], params)[0][0].token_ids
    for prompt in ([np.int64(5), torch.tensor(6)], np.array([5, 6], dtype=np.int32), torch.tensor([5, 6])):
        assert engine.generate([prompt], params)[0][0].token_ids == expected  # type: ignore[list-item]


# SamplingParams' integer fields: a float is refused by name; integer scalars of numpy / torch become ints.
@pytest.mark.parametrize("name", ["max_new_tokens", "top_k", "n", "seed"])
def test_a_float_where_sampling_params_take_an_integer_is_refused_by_name(name: str) -> None:
    with pytest.raises(TypeError, match=f"{name} must be an integer, got 2.0"):
        SamplingParams(**{name: 2.0})


def test_integer_sampling_params_of_numpy_and_torch_become_ints() -> None:
    params = SamplingParams(max_new_tokens=np.int64(3), top_k=torch.tensor(2), n=np.int32(2), seed=np.uint8(7))
    got = (params.max_new_tokens, params.top_k, params.n, params.seed)
    assert got == (3, 2, 2, 7) and all(type(v) is int for v in got)


@pytest.mark.parametrize("name", ["temperature", "top_p"])
@pytest.mark.parametrize("value", [None, "0.6", b"0.6", [0.6]])
def test_a_non_number_temperature_or_top_p_is_refused_by_name(name: str, value: object) -> None:
    """They failed at a comparison with "'<=' not supported between 'int' and 'str'", naming neither."""
    with pytest.raises(TypeError, match=f"{name} must be a number, got {re.escape(repr(value))}"):
        SamplingParams(**{name: value})


def test_temperature_and_top_p_of_numpy_and_torch_become_floats() -> None:
    params = SamplingParams(temperature=np.float32(0.5), top_p=torch.tensor(0.75))
    assert (params.temperature, params.top_p) == (0.5, 0.75)
    assert type(params.temperature) is float and type(params.top_p) is float


# Engine.generate's stop_token_ids: an id the model cannot sample is refused before any work.
@pytest.mark.parametrize("stop", [50, 1000, -1])
def test_a_stop_token_id_outside_the_vocabulary_is_refused_naming_it(engine: Engine, stop: int) -> None:
    with pytest.raises(ValueError, match=rf"stop token id {stop} is outside the model's vocabulary \[0, 50\)"):
        engine.generate([[5, 6]], SamplingParams(temperature=0, max_new_tokens=2, stop_token_ids=(4, stop)))


def test_stop_token_ids_at_the_vocabulary_edges_are_accepted(engine: Engine) -> None:
    out = engine.generate([[5, 6]], SamplingParams(temperature=0, max_new_tokens=2, stop_token_ids=(0, 49)))
    assert len(out[0][0].token_ids) >= 1


# Stop strings: only generated text counts; text is cut just after the first occurrence, token_ids keep the last token.
class PieceTokenizer:
    """Two-character pieces, as BPE merges make them: ids 2..."""

    PIECES = ["ab", "cd", "bc", "xy"]

    def encode(self, text):
        return [2 + self.PIECES.index(text[i:i + 2]) for i in range(0, len(text), 2)]

    def decode(self, ids):
        return "".join(self.PIECES[i - 2] for i in ids if i >= 2)


def test_a_stop_string_across_pieces_cuts_text_but_keeps_the_last_token(model, monkeypatch):
    tok = PieceTokenizer()
    force_tokens(monkeypatch, tok.encode("xyabcdxy") * 10)
    params = SamplingParams(max_new_tokens=8, stop_strings=("bc", "dx"))
    out = Engine(model, tok).generate([tok.encode("bcxy")], params)[0][0]  # "bc" in the prompt does not stop
    assert (out.finish_reason, out.token_ids, out.text) == ("stop", tok.encode("xyabcd"), "xyabc")
    assert tok.decode(out.token_ids).startswith(out.text)


# SamplingParams.stop_strings: anything but strings is refused when the params are made.
@pytest.mark.parametrize("stops", [(2,), (b"</answer>",), ("ok", 2), None])
def test_stop_strings_that_are_not_strings_are_refused_by_name(stops: object) -> None:
    with pytest.raises(TypeError, match="stop_strings must be a tuple of str"):
        SamplingParams(stop_strings=stops)  # type: ignore[arg-type]


def test_a_list_of_stop_strings_becomes_a_tuple() -> None:
    assert SamplingParams(stop_strings=["</answer>", "!"]).stop_strings == ("</answer>", "!")  # type: ignore[arg-type]


# Stop strings: tokens that decode to nothing (skipped control ids) do not hide a stop string written before them.
def test_a_stop_string_split_by_tokens_that_decode_to_nothing_still_stops(model, monkeypatch):
    tok = CharTokenizer()  # ids 0 and 1 decode to ""
    force_tokens(monkeypatch, tok.encode("a") + [0] * 5 + tok.encode("b") + tok.encode("x") * 20)
    out = Engine(model, tok).generate([[5, 6]], SamplingParams(max_new_tokens=12, stop_strings=("ab",)))[0][0]
    assert (out.finish_reason, out.token_ids, out.text) == ("stop", tok.encode("a") + [0] * 5 + tok.encode("b"), "ab")


# finish_reason: a stop on the last allowed token is still "stop", not "length".
@pytest.mark.parametrize("max_new_tokens", [1, 3])
def test_a_stop_token_or_string_on_the_last_allowed_token_finishes_with_stop(model, monkeypatch, max_new_tokens):
    tok = CharTokenizer()
    ids = tok.encode("xyz")[3 - max_new_tokens:] + tok.encode("w") * 5  # the stop ("z") at step max_new_tokens
    for stops in (dict(stop_token_ids=(tok.encode("z")[0],)), dict(stop_strings=("z",))):
        monkeypatch.undo()  # a fresh forced stream for each
        force_tokens(monkeypatch, ids)
        out = Engine(model, tok).generate([[5, 6]], SamplingParams(max_new_tokens=max_new_tokens, **stops))[0][0]
        assert (out.finish_reason, out.text) == ("stop", "xyz"[3 - max_new_tokens:]), stops


# Stop strings: the text is cut after the stop string that ends first, at its first occurrence.
class WordTokenizer:
    """Pieces of any length, ids 2...; ids 0 and 1 decode to nothing."""

    PIECES = ["ab", "cxyxy", "cd", "efghijklmn", "x"]

    def encode(self, text):
        return [2 + self.PIECES.index(text)]

    def decode(self, ids):
        return "".join(self.PIECES[i - 2] for i in ids if i >= 2)


def test_text_is_cut_after_the_earliest_ending_first_occurrence_of_a_stop_string(model, monkeypatch):
    """"cxyxy" completes both stop strings of "abcxyxy": "xy" first ends at 5, "yx" at 6; "xy"'s
    last occurrence would end at 7. The text is "abcxy"; token_ids keep the whole last piece."""
    tok = WordTokenizer()
    force_tokens(monkeypatch, [2, 3] + [6] * 10)
    out = Engine(model, tok).generate([[5, 6]], SamplingParams(max_new_tokens=8, stop_strings=("yx", "xy")))[0][0]
    assert (out.finish_reason, out.token_ids, out.text) == ("stop", [2, 3], "abcxy")


def test_a_stop_string_before_a_long_newest_piece_and_empty_tokens_is_found(model, monkeypatch):
    """The tail decoded must hold the stop string's length before the newest piece: "ab" "cd", 7
    empty tokens, "efghijklmn". The first tail of 8 tokens is 10 characters long, all of them the
    newest piece's, so it grows until it reaches "abcd"."""
    tok = WordTokenizer()
    force_tokens(monkeypatch, [2, 4] + [0] * 7 + [5] + [6] * 10)
    out = Engine(model, tok).generate([[5, 6]], SamplingParams(max_new_tokens=14, stop_strings=("abcdef",)))[0][0]
    assert (out.finish_reason, len(out.token_ids), out.text) == ("stop", 10, "abcdef")


def test_a_stop_string_whose_first_character_is_cut_from_the_tail_is_found(model, monkeypatch):
    """Byte tokens: "答" (3 bytes), 3 empty tokens, "案" (3 bytes). The first tail (6 + 2 tokens)
    starts inside "答": it decodes to 2 U+FFFD and "案", which must not count as the stop string's
    characters before the newest token (_GARBLED_CHARS)."""
    tok = ByteTokenizer()
    force_tokens(monkeypatch, tok.encode("ok 答") + [0] * 3 + tok.encode("案") + tok.encode("x") * 20)
    out = Engine(model, tok).generate([[5, 6]], SamplingParams(max_new_tokens=20, stop_strings=("答案",)))[0][0]
    assert (out.finish_reason, out.text, len(out.token_ids)) == ("stop", "ok 答案", 12)


# SamplingParams: values outside their range are refused, naming the field and the value.
@pytest.mark.parametrize("name,value", [("top_p", 1.5), ("temperature", -0.5), ("temperature", float("nan")),
                                        ("temperature", float("inf")), ("seed", 2**63)])
def test_out_of_range_sampling_params_are_refused_naming_the_value(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must .*, got {re.escape(str(value))}$"):
        SamplingParams(**{name: value})


def test_stop_strings_without_a_tokenizer_are_refused(engine):
    with pytest.raises(ValueError, match="stop_strings need a tokenizer"):
        engine.generate([[5, 6]], SamplingParams(max_new_tokens=2, stop_strings=("x",)))


def test_generate_samples_in_eval_mode_and_gives_the_model_back_in_its_mode(engine):
    """GRPO alternates sampling and training on the same model: generate leaves its mode as it was."""
    modes = []
    hook = engine.model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    try:
        for training in (True, False):
            engine.model.train(training)
            engine.generate([[5, 6]], SamplingParams(temperature=0, max_new_tokens=2))
            assert engine.model.training is training
    finally:
        hook.remove()
        engine.model.eval()
    assert modes == [False, False]  # the prefills (decode steps run packed weights, not the module)


def test_a_stop_token_ends_the_row_when_stop_strings_are_given_too(model, monkeypatch):
    tok = CharTokenizer()
    force_tokens(monkeypatch, tok.encode("abcdefgh"))
    params = SamplingParams(max_new_tokens=8, stop_token_ids=tuple(tok.encode("b")), stop_strings=("zz",))
    out = Engine(model, tok).generate([[5, 6]], params)[0][0]
    assert (out.finish_reason, out.text) == ("stop", "ab")


def test_autocast_dtype_runs_prefill_and_decode_steps_in_bf16(model, monkeypatch):
    """The first token's log-prob is the model's own forward under bf16 autocast (the prefill is that
    forward); the decode steps run packed bf16 weights, within bf16 error of it, not float32 numbers."""
    from r1lab.model.decode import DecodeWeights

    dtypes = []

    class Recording(DecodeWeights):
        def step(self, *args):
            dtypes.append(self.dtype)
            return super().step(*args)

    monkeypatch.setattr(engine_module, "DecodeWeights", Recording)
    prompt = [5, 6, 7, 8, 9, 10, 11, 12]  # 8 tokens: no left padding
    out = Engine(model, autocast_dtype=torch.bfloat16).generate([prompt], SamplingParams(temperature=0,
                                                                                        max_new_tokens=6))[0][0]
    assert dtypes == [torch.bfloat16] * 5
    ids = torch.tensor([prompt + out.token_ids], device=DEVICE)
    tokens = torch.tensor(out.token_ids, device=DEVICE)[:, None]
    with torch.no_grad():
        f32 = model(ids)[0, 7:-1].float().log_softmax(-1).gather(1, tokens)[:, 0].cpu()
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            bf16 = model(ids)[0, 7:-1].float().log_softmax(-1).gather(1, tokens)[:, 0].cpu()
    got = torch.tensor(out.logprobs)
    torch.testing.assert_close(got[0], bf16[0], atol=1e-5, rtol=0)
    assert (got - bf16).abs().max() < 0.1
    assert (got[1:] - f32[1:]).abs().max() > 1e-3  # a float32 engine agrees with the f32 forward to ~1e-6


def test_decode_attention_runs_in_float32_on_a_cpu_even_with_bf16_weights():
    """decode.py's doc: the cache (and attention over it) is float32 on a CPU, where those small
    batched matmuls are faster in float32; elsewhere it is the matmul dtype."""
    from r1lab.model.decode import DecodeWeights

    model = Transformer(preset("tiny").replace(vocab_size=50, num_hidden_layers=2)).eval()
    bf16 = DecodeWeights(model, torch.bfloat16)
    assert (bf16.dtype, bf16.cache_dtype, bf16.attn[0].w_uk.dtype) == (torch.bfloat16, torch.float32, torch.float32)
    assert bf16.attn[0].w_o.dtype == torch.bfloat16
