"""A reward model: the policy's architecture with a scalar head (R1 §2.3.4, all-scenario RL).

R1 trains two: a helpfulness model on preference pairs (Bradley–Terry), which reads only the final
summary, and a safety model trained pointwise on responses labelled safe or unsafe, which reads the
whole response (../shared/R1-FACTS.md, "All-scenario RL"). Both are this module: the decoder trunk
of a `Transformer` (embedding, blocks, final norm; no output head, no MTP) and `score`, a linear map
from the final-normed hidden state to one number. A sequence's score is read at its last real token
(right padding; a rendered pair ends with EOS, so that is the EOS position), exactly where
transformers' `DeepseekV3ForSequenceClassification` pools: the last token that is not
`pad_token_id`. Checkpoints are that class's Hugging Face format (`model.*` as a policy's, plus
`score.weight`), written and read through checkpoint.py; `AutoModelForSequenceClassification` loads
them and gives the same scores (tests/test_reward_model.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from r1lab.model.checkpoint import (check_state, from_hf_state_dict, from_pretrained, load_config, read_weights,
                                    save_pretrained)
from r1lab.model.config import ModelConfig
from r1lab.model.hf_config import to_hf_config
from r1lab.model.transformer import Transformer

ARCHITECTURE = "DeepseekV3ForSequenceClassification"  # transformers' class for a trunk + scalar head


class ChatTokenizer(Protocol):  # what scoring needs of r1lab's Tokenizer
    def apply_chat_template(self, messages: Sequence[dict[str, str]],
                            add_generation_prompt: bool = False) -> list[int]: ...


class TokenizerFiles(Protocol):  # what saving needs of it: {file name: text}
    def files(self) -> dict[str, str]: ...


def render(tokenizer: ChatTokenizer, prompt: str, response: str) -> list[int]:
    """The ids of (prompt, response) as SFT renders a training example,
    ``<|bos|><|user|>prompt<|assistant|>response<|eos|>``; a control token written out in the
    texts stays text (the chat template encodes contents with `split_special_tokens`)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                          {"role": "assistant", "content": response}])


def last_real_position(mask: torch.Tensor) -> torch.Tensor:
    """mask (B, T) bool, True on real tokens -> (B,) index of each row's last real token, computed
    as transformers' sequence classifiers do (the rightmost non-pad index; 0 for a row of padding).

    >>> last_real_position(torch.tensor([[True, True, False], [True, True, True]])).tolist()
    [1, 2]
    """
    positions = torch.arange(mask.shape[-1], device=mask.device)  # (T,)
    return (positions * mask).argmax(-1)  # (B,)


@dataclass
class ScoreBatch:
    input_ids: torch.Tensor  # (B, T) right-padded with pad_token_id
    attention_mask: torch.Tensor  # (B, T) bool, True on real tokens (a prefix of each row)

    def to(self, device: torch.device | str) -> "ScoreBatch":
        return ScoreBatch(self.input_ids.to(device), self.attention_mask.to(device))


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int, max_len: int) -> ScoreBatch:
    """Token id lists -> a right-padded batch. A sequence longer than `max_len` (the model's
    max_position_embeddings) keeps its LAST `max_len` tokens: its end, where the score is read, and
    the response's end, survive; the start of the prompt (and BOS) is what is lost."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("right_pad: every sequence needs at least one token")
    cut = [list(s[-max_len:]) for s in sequences]
    T = max(len(s) for s in cut)
    ids = torch.full((len(cut), T), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(cut), T), dtype=torch.bool)  # (B, T)
    for b, s in enumerate(cut):
        ids[b, :len(s)] = torch.tensor(s)
        mask[b, :len(s)] = True
    return ScoreBatch(ids, mask)


class RewardModel(nn.Module):
    """The trunk (`model`: embed_tokens, layers, norm, named as transformers' `DeepseekV3Model`) and
    `score` (hidden_size -> 1, no bias); `forward` gives one float32 score per sequence."""

    _trunk: Transformer  # the Transformer holding `model` and `score` (see __init__)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.pad_token_id is None or config.pad_token_id == config.eos_token_id:
            # transformers pools at the last token that is not pad_token_id: without one it refuses
            # batches, and with pad = EOS it would read the token before the closing EOS
            raise ValueError(f"RewardModel: the config needs a pad_token_id other than eos_token_id "
                             f"({config.eos_token_id}), got {config.pad_token_id}")
        self.config = config.replace(num_nextn_predict_layers=0)  # a score needs no multi-token prediction
        trunk = Transformer(self.config)
        del trunk.lm_head  # no next-token head: never saved, never in memory
        self.model = trunk.model
        self.rotary = trunk.rotary
        self.score = nn.Linear(config.hidden_size, 1, bias=False)
        trunk.score = self.score  # so that the trunk's state dict is the checkpoint's: model.*, score.weight
        # The Transformer holding these very modules, kept outside the module tree (its tensors are
        # registered above): its `hidden_states` is the policy's own forward, not a copy of it, and
        # checkpoint.py saves it as any Transformer.
        object.__setattr__(self, "_trunk", trunk)
        nn.init.normal_(self.score.weight, 0.0, config.initializer_range)

    @classmethod
    def from_policy(cls, policy: Transformer | str | os.PathLike, *, seed: int = 0) -> "RewardModel":
        """A fresh reward model from a policy (a `Transformer` or its checkpoint directory): the trunk
        copied (training it leaves the policy unchanged), the head drawn from Normal(0,
        initializer_range) with `seed` (R1 §2.3.4: the policy's architecture plus a scalar head)."""
        if not isinstance(policy, Transformer):
            policy = from_pretrained(policy)
        rm = cls(policy.config)
        rm.model.load_state_dict(policy.model.state_dict())  # copies values and the MoE balancing biases
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            rm.score.weight.normal_(0.0, policy.config.initializer_range, generator=generator)
        return rm.to(policy.model.embed_tokens.weight.device)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) right-padded; attention_mask (B, T), True on real tokens (default: the
        ids that are not pad_token_id) -> scores (B,) float32, read at each row's last real token."""
        mask = (input_ids != self.config.pad_token_id) if attention_mask is None else attention_mask.bool()
        h, _ = self._trunk.hidden_states(input_ids, attention_mask=mask)  # (B, T, D), before the final norm
        pooled = h[torch.arange(h.shape[0], device=h.device), last_real_position(mask)]  # (B, D)
        # the head in float32 even under bf16 autocast: bf16 keeps 3 significant digits, and the
        # Bradley–Terry margin between two close responses would round away
        with torch.autocast(h.device.type, enabled=False):
            return self.score(self.model.norm(pooled.float())).squeeze(-1)  # (B,)

    @torch.no_grad()
    def score_ids(self, sequences: Sequence[Sequence[int]], *, batch_size: int = 64, bf16: bool = False) -> list[float]:
        """One score per token-id sequence (rendered by `render`), in order; no gradient, eval mode
        (restored afterwards as it was). Sequences longer than max_position_embeddings keep their
        last tokens (`right_pad`). Batches hold sequences of similar length (less padding)."""
        if batch_size < 1:
            raise ValueError(f"score_ids: batch_size must be >= 1, got {batch_size}")
        was_training, device = self.training, self.score.weight.device
        self.eval()
        scores = [0.0] * len(sequences)
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        try:
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = right_pad([sequences[i] for i in rows], self.config.pad_token_id,
                                  self.config.max_position_embeddings).to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    values = self(batch.input_ids, batch.attention_mask).tolist()
                for i, value in zip(rows, values):
                    scores[i] = value
        finally:
            self.train(was_training)
        return scores

    def score_texts(self, tokenizer: ChatTokenizer, prompts: Sequence[str], responses: Sequence[str], *,
                    batch_size: int = 64, bf16: bool = False) -> list[float]:
        """The score of each (prompt, response), rendered with the chat template as SFT renders a
        training example (`render`). What the model reads is the caller's choice: R1's helpfulness
        model is given only the final summary, its safety model the whole response. A rendering
        longer than max_position_embeddings keeps its last tokens."""
        if len(prompts) != len(responses):
            raise ValueError(f"score_texts: {len(prompts)} prompts for {len(responses)} responses")
        return self.score_ids([render(tokenizer, p, r) for p, r in zip(prompts, responses)],
                              batch_size=batch_size, bf16=bf16)

    def update_router_bias(self) -> None:
        """Call after each optimizer step: aux-loss-free MoE balancing (V3 §2.1.2), as every trainer does."""
        self._trunk.update_router_bias()

    def expert_load(self) -> list[torch.Tensor]:
        """Tokens routed to each expert since the last bias update, one (E,) tensor per MoE layer."""
        return self._trunk.expert_load()


# ----------------------------------------------------------------------------- checkpoints


def save_reward_model(rm: RewardModel, path: str | os.PathLike, tokenizer: TokenizerFiles | None = None, *,
                      dtype: torch.dtype | None = None, extra_files: dict[str, str] | None = None) -> Path:
    """Writes `rm` as transformers' DeepseekV3ForSequenceClassification (config.json with
    `architectures`, `num_labels: 1`, `pad_token_id`; model.safetensors with `model.*` and
    `score.weight`), plus the tokenizer's files and
    `extra_files`, atomically (checkpoint.save_pretrained: the directory appears complete or not at all)."""
    dtype = dtype or rm.score.weight.dtype
    hf = {**to_hf_config(rm.config, dtype), "architectures": [ARCHITECTURE], "num_labels": 1}
    # save_pretrained writes the causal LM's config.json, then the extra files into the same
    # temporary directory: this config.json replaces it before the directory is published
    files = {**(tokenizer.files() if tokenizer is not None else {}), **(extra_files or {}),
             "config.json": json.dumps(hf, indent=2) + "\n"}
    return save_pretrained(rm._trunk, path, dtype=dtype, extra_files=files)


def load_reward_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> RewardModel:
    """A reward model saved by `save_reward_model` or by transformers'
    `DeepseekV3ForSequenceClassification.save_pretrained`, in float32; ValueError naming the
    directory if its weights are not a reward model's of its config.json (a policy checkpoint has no
    `score.weight`: start one with `RewardModel.from_policy`)."""
    path = Path(path)
    config = load_config(path)
    rm = RewardModel(config)
    try:
        state = from_hf_state_dict(read_weights(path), rm.config)
    except ValueError as err:  # a per-expert tensor missing, extra or mis-shaped
        raise ValueError(f"reward model {path} does not match its config: {err}") from None
    hint = " (a policy checkpoint? start a reward model with RewardModel.from_policy)" if "score.weight" not in state else ""
    check_state(state, {k: v.shape for k, v in rm.state_dict().items()}, f"reward model {path}", hint=hint)
    rm.load_state_dict(state)  # copied into float32 (the router's float32 tensors stay so)
    return rm.to(device)
