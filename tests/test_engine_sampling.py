"""Sampling against hand-computed distributions, and seeded sampling with the cache against
full forwards without one (what a seed fixes: see engine.py's module doc)."""

from __future__ import annotations

import pytest
import torch

from r1lab.engine import Engine, SamplingParams, sample
from r1lab.model import Transformer, preset

LOGITS = torch.tensor([2.0, 1.0, 0.5, -1.0, 0.0, 3.0, -2.0, 1.5])  # no ties


def exact(temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The renormalised distribution, by the definitions: softmax(logits / T); keep the k most
    likely; then the smallest most-likely-first prefix whose (top-k renormalised) mass reaches p."""
    q = torch.softmax(LOGITS.double() / temperature, -1).tolist()
    order = sorted(range(len(q)), key=lambda i: -q[i])
    kept = order[:top_k] if top_k else order
    total = sum(q[i] for i in kept)
    nucleus, mass = [], 0.0
    for i in kept:
        if mass >= top_p:
            break
        nucleus.append(i)
        mass += q[i] / total
    out = torch.zeros(len(q), dtype=torch.float64)
    out[nucleus] = torch.tensor([q[i] for i in nucleus], dtype=torch.float64)
    return out / out.sum()


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (1.0, 0, 1.0), (0.6, 0, 1.0), (1.7, 0, 1.0), (1.0, 3, 1.0), (1.0, 0, 0.8), (1.3, 0, 0.95),
    (0.7, 4, 0.9), (2.0, 5, 0.7),
])
def test_empirical_distribution_of_sample_is_the_truncated_renormalised_one(
        temperature: float, top_k: int, top_p: float) -> None:
    N = 100_000
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    tokens, logprobs, entropy = sample(LOGITS.expand(N, -1).contiguous(), params, torch.Generator().manual_seed(1))
    freq = torch.bincount(tokens, minlength=len(LOGITS)).double() / N
    p = exact(temperature, top_k, top_p)
    assert (freq[p == 0] == 0).all()  # truncated tokens are never drawn
    sigma = (p * (1 - p) / N).sqrt()
    assert ((freq - p).abs() <= 5 * sigma + 1e-12).all(), (freq, p)  # 5 sigma per token: fails ~1e-6 of seeds
    # log-prob and entropy: of the untruncated softmax(logits / T), whatever was truncated
    full = torch.softmax(LOGITS.double() / temperature, -1)
    torch.testing.assert_close(logprobs.double(), full.log()[tokens], atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy.double(), -(full * full.log()).sum().expand(N), atol=1e-5, rtol=0)


def test_temperature_towards_zero_is_greedy() -> None:
    logits = torch.tensor([[0.3, 1.2, 1.1999, -4.0], [5.0, 4.0, 4.9, 0.0]]).repeat(500, 1)
    gen = torch.Generator().manual_seed(0)
    tokens, _, entropy = sample(logits, SamplingParams(temperature=1e-6), gen)  # gap 1e-4 / T = 100 nats
    assert tokens.tolist() == [1, 0] * 500
    greedy, logprobs, _ = sample(logits, SamplingParams(temperature=0), gen)
    assert greedy.tolist() == [1, 0] * 500
    torch.testing.assert_close(logprobs, logits.log_softmax(-1).gather(1, greedy[:, None])[:, 0])  # T = 1
    assert entropy.max() < 1e-3


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(0)
    config = preset("tiny").replace(vocab_size=40, num_hidden_layers=2, max_position_embeddings=32,
                                    num_nextn_predict_layers=0)
    m = Transformer(config)
    with torch.no_grad():
        m.lm_head.weight.mul_(8)
    return m.eval()


def reference(model: Transformer, prompts: list[list[int]], params: SamplingParams) -> list[list[int]]:
    """Sampling by full forwards of each running row without a cache, drawing as the engine's
    documented contract says: one generator, at each step one uniform per running row, rows in
    order (prompt-major, its n samples together), finished rows leaving the batch."""
    rows = [list(p) for p in prompts for _ in range(params.n)]
    out: list[list[int]] = [[] for _ in rows]
    running, gen = list(range(len(rows))), torch.Generator().manual_seed(params.seed)
    for _ in range(params.max_new_tokens):
        with torch.no_grad():
            logits = torch.stack([model(torch.tensor([rows[r] + out[r]]))[0, -1] for r in running])
        tokens, _, _ = sample(logits.float(), params, gen)
        for r, t in zip(running, tokens.tolist()):
            out[r].append(t)
        running = [r for r in running if out[r][-1] not in params.stop_token_ids]
        if not running:
            break
    return out


def test_sampling_with_the_cache_equals_full_forwards_drawing_the_same_uniforms(model: Transformer) -> None:
    """Ragged prompts (left padding), n = 3 per prompt (shared prefill), stop ids that end rows at
    different steps; a prompt of 24 + 8 new tokens fills the model's 32 positions exactly."""
    prompts = [[3, 4, 5], [7], list(range(2, 26)), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
    params = SamplingParams(temperature=0.9, top_k=12, top_p=0.95, n=3, max_new_tokens=8,
                            stop_token_ids=(0, 1, 2, 3, 4), seed=11)
    out = Engine(model).generate(prompts, params)
    expected = reference(model, prompts, params)
    got = [c.token_ids for group in out for c in group]
    assert got == expected
    assert {len(x) for x in got} != {8}  # some rows did stop early, and the rest ran on
    for c in (c for group in out for c in group):
        stopped = [i for i, t in enumerate(c.token_ids) if t in params.stop_token_ids]
        assert stopped in ([], [len(c.token_ids) - 1])  # nothing kept after a stop id
        assert c.finish_reason == ("stop" if stopped else "length")
        assert len(c.token_ids) == (len(c.token_ids) if stopped else params.max_new_tokens)


def test_a_seed_fixes_the_samples_of_a_batch_not_of_each_prompt(model: Transformer) -> None:
    """What engine.py's doc says a seed fixes: the same prompts, params and seed give the same
    samples; the samples of one prompt depend on the rest of the batch (the shared generator)."""
    params = SamplingParams(temperature=1.0, n=2, max_new_tokens=6, seed=5)
    alone = Engine(model).generate([[3, 4, 5]], params)
    again = Engine(model).generate([[3, 4, 5]], params)
    batched = Engine(model).generate([[9, 9], [3, 4, 5]], params)
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in again[0]]
    assert [c.token_ids for c in alone[0]] == reference(model, [[3, 4, 5]], params)
    assert [c.token_ids for c in batched[1]] == reference(model, [[9, 9], [3, 4, 5]], params)[2:]
    assert [c.token_ids for c in batched[1]] != [c.token_ids for c in alone[0]]
    greedy = SamplingParams(temperature=0, n=2, max_new_tokens=6)  # greedy does not depend on the batch
    ids = [[c.token_ids for c in group] for group in (Engine(model).generate([[3, 4, 5]], greedy)[0],
                                                      Engine(model).generate([[9, 9], [3, 4, 5]], greedy)[1])]
    assert ids[0] == ids[1]  # (log-probs agree up to rounding: the padded prefill differs)


# sample() on logits with masked (-inf) tokens: those have probability 0 and add nothing to the entropy.
@pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.5, 1, 1.0), (1.0, 0, 0.5)])
def test_masked_logits_give_the_entropy_of_the_unmasked_tokens(temperature: float, top_k: int, top_p: float) -> None:
    inf = float("inf")
    logits = torch.tensor([[-inf, 1.0, 0.0, -inf], [-inf, -inf, 4.0, -inf]])
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    tokens, logprobs, entropy = sample(logits, params, torch.Generator().manual_seed(0))
    T = temperature or 1.0
    p = torch.softmax(torch.tensor([1.0, 0.0]) / T, -1)  # row 0: two live tokens; row 1: one, entropy 0
    torch.testing.assert_close(entropy, torch.tensor([float(-(p * p.log()).sum()), 0.0]))
    assert tokens[1] == 2 and logprobs[1] == 0.0 and tokens[0] in (1, 2)


# top-p beyond the partial top-64 that _truncate looks at first: p = 0.5 on token 0 and q = 0.5 / 199
# on each of 199 others, so the top 64 hold 0.5 + 63 q = 0.658. The nucleus: token 0, then token i
# while the mass before it, 0.5 + (i - 1) q, is below p. top_p = 0.6: i - 1 < 39.8, tokens 0..40 (41);
# top_p = 0.9: i - 1 < 159.2, tokens 0..160 (161), more than the top 64 hold.
@pytest.mark.parametrize("top_p,kept", [(0.6, 41), (0.9, 161)])
def test_top_p_over_a_vocabulary_of_200_keeps_the_nucleus_by_hand(top_p: float, kept: int) -> None:
    probs = torch.tensor([0.5] + [0.5 / 199] * 199)
    logits = probs.log().expand(4000, -1).contiguous()
    tokens, _, _ = sample(logits, SamplingParams(top_p=top_p), torch.Generator().manual_seed(0))
    counts = torch.bincount(tokens, minlength=200)
    assert counts[0] > 0.5 / (0.5 + (kept - 1) * 0.5 / 199) * 4000 - 200  # 0.83 (top_p 0.6) or 0.55 of the draws
    assert int((counts > 0).sum()) <= kept  # nothing outside the nucleus is drawn
    from r1lab.engine import _truncate
    values, _ = _truncate(probs[None], 0, top_p)  # measured on the full distribution, not the top 64's
    assert int((values > 0).sum()) == kept


def test_a_uniform_draw_picks_the_token_whose_cdf_interval_holds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inverse-CDF sampling: u in [0, 0.5) is token 0, [0.5, 0.8) token 1, [0.8, 1) token 2 for
    probs 0.5, 0.3, 0.2; under top_p = 0.75 (tokens 0 and 1, mass 0.8) u is scaled by 0.8 first:
    0.79 -> 0.632, token 1. Which token a uniform gives is the sampling stream a seed reproduces."""
    u = torch.tensor([0.1, 0.49, 0.51, 0.79, 0.81, 0.99, 0.6, 0.7])
    monkeypatch.setattr(torch, "rand", lambda *shape, **kw: u[:shape[0], None].clone())
    logits = torch.tensor([0.5, 0.3, 0.2]).log().expand(8, -1).contiguous()
    gen = torch.Generator().manual_seed(0)
    assert sample(logits, SamplingParams(), gen)[0].tolist() == [0, 0, 1, 1, 2, 2, 1, 1]
    assert sample(logits, SamplingParams(top_p=0.75), gen)[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 1]
