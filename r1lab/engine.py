"""Batched sampling with MLA's latent KV cache. Knows nothing about training.

`Engine.generate(prompts, SamplingParams(n=G, ...))` left-pads the prompts, prefills them once,
then shares each prompt's cache among its `n` samples (GRPO samples groups of G per question,
R1 §2.2.1) and decodes all rows together, dropping rows from the batch as they finish.
Sampling is seeded: the same seed, prompts (in the same order), params and model give the same
samples. One generator serves the batch, one uniform per running row and step, rows in order
(prompt-major), finished rows leaving it: a prompt's samples change with the other prompts, their
order, `n` and when other rows finish. Greedy decoding does not depend on the batch (up to rounding).
"""

from __future__ import annotations

import contextlib
import math
import operator
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from r1lab.model import Transformer
from r1lab.model.decode import DecodeWeights


class TokenizerLike(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...


# characters a tail of tokens may get wrong at its start: a character cut there (up to 3 U+FFFD for
# its continuation bytes), or a leading space a SentencePiece decoder strips
_GARBLED_CHARS = 3
MIN_TEMPERATURE = 1e-6  # smallest T > 0 accepted; the sampled distribution is then greedy to float precision


@dataclass(kw_only=True)
class SamplingParams:
    max_new_tokens: int = 256  # tokens generated per sample at most
    temperature: float = 1.0  # softmax temperature; 0 = greedy. R1 eval: 0.6; R1-Zero RL: 1.0
    top_p: float = 1.0  # nucleus sampling mass; R1 eval: 0.95
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    n: int = 1  # samples per prompt (GRPO's group size G)
    stop_token_ids: tuple[int, ...] = ()  # a sampled id here ends the row (kept in the output)
    # text that ends the row as soon as the generated text (never the prompt) contains it; needs a
    # tokenizer. Completion.text is then cut just after its first occurrence, while token_ids keep
    # the whole token that completed it (that token's text may run past the stop string)
    stop_strings: tuple[str, ...] = ()
    seed: int = 0  # seed of the sampling generator

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "top_k", "n", "seed"):  # a float (4.0 from a config file) failed
            try:  # deep in torch (zeros(), topk(), repeat_interleave(), manual_seed) with unrelated messages
                setattr(self, name, operator.index(getattr(self, name)))
            except TypeError:
                raise TypeError(f"{name} must be an integer, got {getattr(self, name)!r}") from None
        for name in ("temperature", "top_p"):  # None or a str ("0.6" from a CLI) failed at a comparison
            value = getattr(self, name)  # below with "'<=' not supported between 'int' and 'str'", naming neither
            try:
                if isinstance(value, (str, bytes)):
                    raise TypeError
                setattr(self, name, float(value))
            except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several values
                raise TypeError(f"{name} must be a number, got {value!r}") from None
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 0 <= self.temperature < math.inf:  # NaN too: it samples garbage without an error
            raise ValueError(f"temperature must be >= 0 and finite, got {self.temperature}")
        if 0 < self.temperature < MIN_TEMPERATURE:  # logits / T overflows to inf: NaN log-probs
            raise ValueError(f"temperature {self.temperature} is below {MIN_TEMPERATURE}; use 0 for greedy")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2^63), got {self.seed}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:  # one message for both did not say which was bad, nor its value
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        # a bare str would be iterated as one stop string per character: every row stopping early
        if isinstance(self.stop_strings, str):
            raise TypeError("stop_strings and stop_token_ids are tuples: write stop_strings=(s,), stop_token_ids=(id,)")
        # a scalar id of any kind (int, np.int64, 0-d tensor) would otherwise fail later at len() with
        # an unrelated message; operator.index takes integer scalars of numpy and torch and refuses floats
        try:
            self.stop_token_ids = tuple(operator.index(i) for i in self.stop_token_ids)
        except TypeError:
            raise TypeError("stop_strings and stop_token_ids are tuples: write stop_strings=(s,), stop_token_ids=(id,)"
                            f"; got stop_token_ids={self.stop_token_ids!r}") from None
        # an id or bytes here (stop_strings=(eos_id,)) failed after the prefill, in str.encode
        if self.stop_strings is None or not all(isinstance(s, str) for s in self.stop_strings):
            raise TypeError(f"stop_strings must be a tuple of str, got {self.stop_strings!r}")
        self.stop_strings = tuple(self.stop_strings)
        if "" in self.stop_strings:  # "" is in every text: each row would stop after one token
            raise ValueError("stop_strings must not contain the empty string")


@dataclass
class Completion:
    prompt_index: int  # which prompt this sample answers
    token_ids: list[int]  # generated ids (stop token included)
    logprobs: list[float]  # log-prob of each generated id under softmax(logits / T), before top-k / top-p (greedy: T = 1)
    finish_reason: str  # "stop" (stop token or string) or "length" (max_new_tokens reached)
    text: str = ""  # decoded token_ids, cut just after the stop string that ended it ("" without a tokenizer)
    entropies: list[float] = field(default_factory=list)  # entropy of that same distribution at each generated id (nats)


@dataclass
class _Batch:
    """Decode state of the rows still running."""
    rows: torch.Tensor  # (R,) index of each running row in the output
    positions: torch.Tensor  # (R,) position id of the next token
    mask: torch.Tensor  # (R, S_max) bool, True on real tokens
    out_ids: list[list[int]] = field(default_factory=list)
    out_logprobs: list[list[float]] = field(default_factory=list)
    out_entropies: list[list[float]] = field(default_factory=list)


class Engine:
    def __init__(self, model: Transformer, tokenizer: TokenizerLike | None = None, *,
                 autocast_dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.autocast_dtype = autocast_dtype  # e.g. torch.bfloat16 on AMX CPUs and GPUs

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # no autograd bookkeeping at all: tiny's rollouts ~14% faster than under no_grad
    # (benchmarks/design_choices.py, key `inference_mode`)
    @torch.inference_mode()
    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]],
                 params: SamplingParams) -> list[list[Completion]]:
        """Returns, for each prompt, its `params.n` completions."""
        if params.stop_strings and self.tokenizer is None:
            raise ValueError("stop_strings need a tokenizer")
        vocab = self.model.config.vocab_size
        bad = [i for i in params.stop_token_ids if not 0 <= i < vocab]
        if bad:  # the model never samples such an id: the rows would silently run to max_new_tokens
            raise ValueError(f"stop token id {bad[0]} is outside the model's vocabulary [0, {vocab})")
        # a bare str would make each character a prompt; one prompt's flat ids (`tokenizer.encode(t)`)
        # failed deep inside with "'int' object is not iterable"
        if isinstance(prompts, str) or any(_is_integer(p) for p in prompts):
            raise TypeError("prompts is a list of prompts: pass [prompt] for one (a str or a list of token ids)")
        if len(prompts) == 0:  # nothing to sample (e.g. every problem of a batch filtered out)
            return []
        ids = self._prompt_ids(prompts, params)
        was_training = self.model.training
        self.model.eval()
        try:
            flat = self._generate(ids, params)
        finally:
            self.model.train(was_training)
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(ids))]

    def _prompt_ids(self, prompts: Sequence[str] | Sequence[Sequence[int]], params: SamplingParams) -> list[list[int]]:
        """Token ids of each prompt, checked here: past this point a bad prompt would fail deep in
        the model (an embedding IndexError) or, too long, run silently past the trained positions."""
        if any(isinstance(p, str) for p in prompts) and self.tokenizer is None:
            raise ValueError("string prompts need a tokenizer (Engine(model, tokenizer)); or pass token ids")
        ids = [self.tokenizer.encode(p) if isinstance(p, str) else _token_ids(p) for p in prompts]  # type: ignore[union-attr]
        if any(len(x) == 0 for x in ids):
            raise ValueError("every prompt needs at least one token")
        config = self.model.config
        lo, hi = min(min(x) for x in ids), max(max(x) for x in ids)
        if lo < 0 or hi >= config.vocab_size:
            raise ValueError(f"token id {lo if lo < 0 else hi} is outside the vocabulary [0, {config.vocab_size})")
        longest = max(len(x) for x in ids)
        if longest + params.max_new_tokens > config.max_position_embeddings:
            raise ValueError(f"longest prompt ({longest} tokens) + max_new_tokens ({params.max_new_tokens}) exceeds "
                             f"the model's max_position_embeddings ({config.max_position_embeddings})")
        return ids

    def _generate(self, ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        n, P = params.n, -(-max(len(x) for x in ids) // 8) * 8  # prompt width: a multiple of 8 (repeating shapes)
        S = P + params.max_new_tokens
        # pad slots are masked, so any in-vocabulary id serves; a config's pad id may be None, or
        # outside the vocabulary (HF configs write -1): embedding that raised an IndexError
        pad, vocab = self.model.config.pad_token_id, self.model.config.vocab_size
        pad = pad if pad is not None and 0 <= pad < vocab else 0
        tokens = torch.full((len(ids), P), pad, dtype=torch.long)
        mask = torch.zeros(len(ids), S, dtype=torch.bool)
        for i, x in enumerate(ids):  # left padding: every prompt ends at slot P - 1
            tokens[i, P - len(x):] = torch.tensor(x)
            mask[i, P - len(x):P] = True
        tokens, mask = tokens.to(self.device), mask.to(self.device)
        positions = (mask[:, :P].long().cumsum(-1) - 1).clamp(min=0)  # (B, P)
        decoder = DecodeWeights(self.model, self.autocast_dtype)  # decode steps: packed weights, few ops
        cache = self.model.make_cache(len(ids), S, dtype=decoder.cache_dtype)
        with self._autocast():  # prefill: the model's own forward
            logits = self.model(tokens, position_ids=positions, attention_mask=mask[:, :P], cache=cache)[:, -1]
        # one prefill per prompt, shared by its n samples
        cache = cache.repeat_interleave(n)
        logits = logits.float().repeat_interleave(n, dim=0)  # (B*n, V)
        batch = _Batch(rows=torch.arange(len(ids) * n, device=self.device),
                       positions=positions[:, -1].repeat_interleave(n) + 1, mask=mask.repeat_interleave(n, dim=0))
        batch.out_ids = [[] for _ in range(len(ids) * n)]
        batch.out_logprobs = [[] for _ in range(len(ids) * n)]
        batch.out_entropies = [[] for _ in range(len(ids) * n)]
        finish = ["length"] * (len(ids) * n)
        gen = torch.Generator(device=self.device).manual_seed(params.seed)
        stop_ids = torch.tensor(params.stop_token_ids, dtype=torch.long, device=self.device)
        for step in range(params.max_new_tokens):
            token, logprob, entropy = sample(logits, params, gen)  # (R,) each
            done = torch.isin(token, stop_ids) if len(stop_ids) else torch.zeros_like(token, dtype=torch.bool)
            for r, t, lp, h in zip(batch.rows.tolist(), token.tolist(), logprob.tolist(), entropy.tolist()):
                batch.out_ids[r].append(t)
                batch.out_logprobs[r].append(lp)
                batch.out_entropies[r].append(h)
            if params.stop_strings:
                done |= self._hit_stop_string(batch, params.stop_strings)
            for r in batch.rows[done].tolist():
                finish[r] = "stop"
            if step == params.max_new_tokens - 1:
                break
            keep = ~done
            if not keep.any():
                break
            if not keep.all():  # finished rows leave the batch (and the cache)
                cache = cache.select(keep.nonzero().squeeze(1))
                batch.rows, batch.positions, batch.mask = batch.rows[keep], batch.positions[keep], batch.mask[keep]
                token = token[keep]
            batch.mask[:, P + step] = True
            logits = decoder.step(token, batch.positions, batch.mask[:, :P + step + 1], cache)
            batch.positions = batch.positions + 1
        return [self._completion(r // n, batch.out_ids[r], batch.out_logprobs[r], batch.out_entropies[r], finish[r],
                                 params) for r in range(len(ids) * n)]

    def _hit_stop_string(self, batch: _Batch, stops: tuple[str, ...]) -> torch.Tensor:
        """Whether each running row's generated text now contains a stop string. One would end in
        the newest token, so only a tail of the row is decoded; the tail grows until, before the
        newest token's text, it holds a stop string's length in characters plus _GARBLED_CHARS.
        Counted in tokens it could miss one: a token may decode to nothing (a skipped control id)."""
        tokenizer = self.tokenizer
        assert tokenizer is not None
        longest = max(len(s) for s in stops)
        start = max(len(s.encode("utf-8")) for s in stops) + 2  # one byte per token: enough for byte-level BPE
        hits = []
        for r in batch.rows.tolist():
            ids = batch.out_ids[r]
            window, text = start, tokenizer.decode(ids[-start:])
            newest = len(tokenizer.decode(ids[-1:]))
            while window < len(ids) and len(text) - newest < longest - 1 + _GARBLED_CHARS:
                window *= 2
                text = tokenizer.decode(ids[-window:])
            hits.append(any(s in text for s in stops))
        return torch.tensor(hits, dtype=torch.bool, device=self.device)

    def _completion(self, prompt_index: int, ids: list[int], logprobs: list[float], entropies: list[float],
                    finish: str, params: SamplingParams) -> Completion:
        text = self.tokenizer.decode(ids) if self.tokenizer is not None else ""
        if finish == "stop" and params.stop_strings and not (ids and ids[-1] in params.stop_token_ids):
            cut = min((text.find(s) + len(s) for s in params.stop_strings if s in text), default=len(text))
            text = text[:cut]
        return Completion(prompt_index=prompt_index, token_ids=ids, logprobs=logprobs, finish_reason=finish, text=text,
                          entropies=entropies)


def _token_ids(prompt: Sequence[int]) -> list[int]:
    """One prompt's ids as Python ints. Float ids (a float array or tensor) were cast to long in the
    padded batch, 5.7 silently becoming 5, and NaN an IndexError deep in the model."""
    values = prompt.tolist() if isinstance(prompt, (np.ndarray, torch.Tensor)) else prompt
    try:
        return [operator.index(t) for t in values]
    except TypeError:
        raise TypeError(f"token ids must be integers, got {prompt!r}") from None


def _is_integer(x: object) -> bool:
    """An integer scalar (int, numpy or 0-d torch integer): a token id, not a prompt."""
    if isinstance(x, torch.Tensor) and x.dim() > 0:  # index() also takes a one-element prompt tensor
        return False
    try:
        operator.index(x)
    except TypeError:
        return False
    return True


def sample(logits: torch.Tensor, params: SamplingParams,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (R, V) float32 -> sampled ids (R,), their log-probs under softmax(logits / T), and
    the entropy of that distribution (R,) (RL's entropy metric, here nearly free: one mul and sum).

    top-k and top-p truncate the distribution that is sampled from; the returned log-prob and
    entropy are those of the untruncated tempered distribution, the policy's own. Greedy (T = 0)
    reports them for softmax(logits)."""
    logp = (logits if params.temperature == 0 else logits / params.temperature).log_softmax(-1)  # (R, V)
    probs = logp.exp()
    # before any truncation replaces `probs`; a -inf logit (a masked token) has p log p = 0, not 0 * -inf = NaN
    entropy = -(probs * logp).masked_fill(logp == -math.inf, 0.0).sum(-1)  # (R,)
    token = logits.argmax(-1) if params.temperature == 0 else _draw(probs, params, gen)
    return token, logp.gather(1, token[:, None]).squeeze(1), entropy


def _draw(probs: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> torch.Tensor:
    """One id per row of probs (R, V), from the top-k / top-p truncated distribution if asked."""
    ids = None  # vocabulary id of each column of `probs` (None = identity)
    if params.top_k > 0 or params.top_p < 1.0:
        probs, ids = _truncate(probs, params.top_k, params.top_p)
    # inverse-CDF sampling: one uniform per row, cheaper than torch.multinomial's exponentials
    cdf = probs.cumsum(-1)  # (R, C)
    u = torch.rand(cdf.shape[0], 1, generator=gen, device=cdf.device) * cdf[:, -1:]
    u.clamp_(min=torch.finfo(u.dtype).tiny)  # rand gives exactly 0 about once in 2^24 draws: never a p = 0 token
    col = torch.searchsorted(cdf, u).clamp(max=cdf.shape[1] - 1)  # (R, 1)
    return (col if ids is None else ids.gather(1, col)).squeeze(1)


def _truncate(probs: torch.Tensor, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k / nucleus candidates of each row, most likely first: (probs (R, C), ids (R, C)).

    The nucleus is the smallest prefix of the sorted tokens whose mass reaches top_p; with top_k
    as well, that mass is measured on the top-k renormalised distribution (top-k first, then
    top-p, as Hugging Face's warpers and vLLM); top-k keeps every token tied with the k-th, as they
    do. Without top-k, a partial top-k of 64 usually holds the nucleus (a trained model is peaked);
    only rows where it does not fall back to sorting the whole vocabulary."""
    V = probs.shape[-1]
    k = min(top_k, V) if top_k > 0 else min(64, V)
    values, ids = probs.topk(k, dim=-1)  # sorted, descending
    if top_k > 0:  # tokens tied with the k-th are kept too (HF: drop p < p_k; vLLM likewise)
        kth = values[:, -1:]
        # topk alone keeps k of them, arbitrarily (ties at p = 0 need no sort: never drawn)
        if k < V and bool((((probs >= kth) & (probs > 0)).sum(-1) > k).any()):
            values, ids = _sort_descending(probs)
            values = values.masked_fill(values < kth, 0.0)
    elif top_p < 1.0 and bool((values.sum(-1) < top_p).any()):
        values, ids = _sort_descending(probs)
    if top_p < 1.0:
        mass = values / values.sum(-1, keepdim=True) if top_k > 0 else values  # (R, C)
        before = F.pad(mass.cumsum(-1)[:, :-1], (1, 0))  # (R, C) mass of the more likely tokens
        # the mass before a token already reaches p: the prefix without it is the nucleus (`>=`,
        # so an exact tie at p keeps no extra token: uniform over 4 with p = 0.5 keeps 2)
        outside = before >= top_p
        values = values.masked_fill(outside, 0.0)
    return values, ids


def _sort_descending(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows sorted descending. On CPU numpy's argsort is faster than torch.sort here
    (benchmarks/design_choices.py, key `sort_descending`)."""
    if probs.device.type == "cpu":
        ids = torch.from_numpy(np.argsort(-probs.numpy(), axis=-1))
        return probs.gather(1, ids), ids
    return probs.sort(dim=-1, descending=True)
