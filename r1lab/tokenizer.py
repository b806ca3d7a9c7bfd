"""A small byte-level BPE tokenizer for the miniature world, loadable by ``transformers``.

DeepSeek-V3 uses a byte-level BPE with 128K tokens; at tiny scale the model has ~2M parameters
and a context of a few hundred tokens, so the tokenizer is trained on the world's own text with
a vocabulary of ~1K. Three choices make it fit R1 in miniature:

* every digit is its own token, so an arithmetic step is the same digit-level computation
  wherever it occurs and the model can learn it once;
* merges may cross spaces but not punctuation (pieces end after ``. , : ; ? !`` and newlines),
  so recurring phrases (the R1-Zero template's preamble, "So the answer is") compress to a few
  tokens while a prompt ending in ``Assistant:`` ends on the same token boundary as in the corpus;
* BOS/EOS/PAD and the turn markers are special tokens; the R1 tags ``<think>`` ``</think>``
  ``<answer>`` ``</answer>`` are added tokens that are *not* special (as in DeepSeek-R1's own
  tokenizer), so ``decode(..., skip_special_tokens=True)`` keeps them for the format reward.
  Each is one id, never merged with its neighbours.

Files: ``tokenizer.json`` (the ``tokenizers`` model) and ``tokenizer_config.json`` (special
tokens, chat template, ``tokenizer_class: PreTrainedTokenizerFast``), enough for
``transformers.AutoTokenizer.from_pretrained(dir)`` on a directory without any model files.
"""

from __future__ import annotations

import functools
import json
import numbers
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as BackendTokenizer

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
THINK, THINK_END, ANSWER, ANSWER_END = "<think>", "</think>", "<answer>", "</answer>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, USER, ASSISTANT)  # control tokens, skipped by skip_special_tokens
TAG_TOKENS: tuple[str, ...] = (THINK, THINK_END, ANSWER, ANSWER_END)  # single ids, but ordinary text when decoding
RESERVED_TOKENS: tuple[str, ...] = SPECIAL_TOKENS + TAG_TOKENS  # ids 0..8, in this order


def find_control_token(text: str) -> str | None:
    """The first control token written out in `text` (``<|eos|>``...), or None: such text would
    encode as the real token (a sampled ``<|assistant|>``, or one inside a user's data)."""
    found = [(text.find(token), token) for token in SPECIAL_TOKENS if token in text]
    return min(found)[1] if found else None  # the earliest in the text, not in SPECIAL_TOKENS' order
DEFAULT_VOCAB_SIZE = 1024

# The R1 conversation format (BOS, then turns; each assistant turn closed by EOS), in Jinja for
# transformers' apply_chat_template and in Python (render_chat) for everything else.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + '<|eos|>' }}"
    "{% else %}{{ raise_exception('unknown role: ' + message['role']) }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
_RESERVED_SPLIT = re.compile("|".join(re.escape(token) for token in RESERVED_TOKENS))


def render_chat(messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """``CHAT_TEMPLATE`` in Python: ``<|bos|>[system]<|user|>q<|assistant|>a<|eos|>...``."""
    return "".join(text for text, _ in _chat_parts(messages, add_generation_prompt))


def _chat_parts(messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> list[tuple[str, bool]]:
    """The chat format as (text, is_marker) pieces: the template's own control tokens apart from
    the messages' contents, so that `Tokenizer.apply_chat_template` can encode them differently."""
    parts = [(BOS, True)]
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system":
            parts.append((content, False))
        elif role == "user":
            parts += [(USER, True), (content, False)]
        elif role == "assistant":
            parts += [(ASSISTANT, True), (content, False), (EOS, True)]
        else:
            raise ValueError(f"unknown role: {role}")
    if add_generation_prompt:
        parts.append((ASSISTANT, True))
    return parts


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[.,:;?!\n]"), behavior="merged_with_previous"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


class Tokenizer:
    """A thin wrapper over a ``tokenizers.Tokenizer`` with the world's special tokens."""

    def __init__(self, backend: BackendTokenizer) -> None:
        self.backend = backend
        missing = [token for token in RESERVED_TOKENS if backend.token_to_id(token) is None]
        if missing:
            raise ValueError(f"tokenizer lacks reserved tokens {missing}")

    def encode(self, text: str, *, split_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; reserved-token strings in it map to their ids; no BOS/EOS added.

        ``split_special_tokens=True`` (transformers' flag of that name) encodes a written-out
        control token (``<|eos|>``, ``<|user|>``...) as the plain text it is, for text from data or
        users that must not end a turn or open one; the tags stay single ids either way.
        """
        backend = self._text_backend if split_special_tokens else self.backend
        try:
            return backend.encode(text, add_special_tokens=False).ids
        except TypeError:
            raise _unencodable([text]) from None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, as `encode` gives them."""
        if isinstance(texts, str):  # else each character would silently be encoded as a text of its own
            raise TypeError("encode_batch takes a list of texts: pass [text], or use encode(text)")
        try:
            return [encoding.ids for encoding in self.backend.encode_batch(list(texts), add_special_tokens=False)]
        except TypeError:
            raise _unencodable(list(texts)) from None

    def decode(self, ids: Iterable[int] | int) -> str:
        """The text of ``ids``, special tokens included, so ``decode(encode(t)) == t``.

        An id at or above ``vocab_size`` (a model's vocabulary may be padded past the tokenizer's,
        as SFT allows, and the engine can sample those rows) has no text: it decodes to U+FFFD, as
        undecodable bytes do, where the backend dropped it silently. A negative id (e.g. the -100
        of ignored labels) raises ValueError naming it. A single id (an int, or a 0-d tensor or array)
        decodes as a one-token list, as in transformers.
        """
        ids = [int(ids)] if isinstance(ids, numbers.Integral) or getattr(ids, "ndim", None) == 0 else list(ids)
        if not ids or (min(ids) >= 0 and max(ids) < self.vocab_size):
            return self.backend.decode(ids, skip_special_tokens=False)
        if min(ids) < 0:
            raise ValueError(f"token id {min(ids)} is negative: it is no token")
        runs: list[list[int]] = [[]]  # the in-vocabulary runs between out-of-vocabulary ids
        for i in ids:
            if i < self.vocab_size:
                runs[-1].append(i)
            else:
                runs.append([])
        return "\ufffd".join(self.backend.decode(run, skip_special_tokens=False) for run in runs)

    @functools.cached_property
    def _text_backend(self) -> BackendTokenizer:
        """A copy of the backend that reads control tokens as text (a copy: setting the flag on
        ``self.backend`` itself would change every other encode while it is set)."""
        backend = BackendTokenizer.from_str(self.backend.to_str())
        backend.encode_special_tokens = True
        return backend

    def token_id(self, token: str) -> int:
        token_id = self.backend.token_to_id(token)
        if token_id is None:
            raise KeyError(token)
        return token_id

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def pad_id(self) -> int:
        return self.token_id(PAD)

    @property
    def bos_id(self) -> int:
        return self.token_id(BOS)

    @property
    def eos_id(self) -> int:
        return self.token_id(EOS)

    @property
    def reserved_ids(self) -> dict[str, int]:
        """Id of every special and tag token, e.g. ``reserved_ids["</think>"]``."""
        return {token: self.token_id(token) for token in RESERVED_TOKENS}

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
        """Ids of a conversation in the chat format (same as transformers' ``apply_chat_template``),
        except that a control token written out in a message's content is encoded as text: only the
        template places the real ones (a question holding ``<|assistant|>`` cannot answer itself)."""
        ids: list[int] = []
        for text, marker in _chat_parts(messages, add_generation_prompt):
            # the backend encodes the text between control tokens piece by piece too: same ids
            ids += [self.token_id(text)] if marker else self.encode(text, split_special_tokens=True)
        return ids

    def files(self) -> dict[str, str]:
        """``tokenizer.json`` and ``tokenizer_config.json`` as text (what `save` writes)."""
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            "extra_special_tokens": [USER, ASSISTANT],
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1_000_000,
            "chat_template": CHAT_TEMPLATE,
        }
        return {"tokenizer.json": self.backend.to_str(pretty=True),
                "tokenizer_config.json": json.dumps(config, indent=2) + "\n"}

    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json``; return the directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in self.files().items():
            (directory / name).write_text(text)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """The tokenizer of a checkpoint directory; FileNotFoundError / ValueError naming the file
        (the tokenizers library raises a bare Exception that names neither)."""
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer.json in {directory}")
        try:
            return cls(BackendTokenizer.from_file(str(path)))
        except Exception as err:  # noqa: BLE001 (the library's only exception type)
            raise ValueError(f"{path}: not a readable tokenizer ({err})") from None


def _unencodable(texts: list[object]) -> Exception:
    """Why the backend refused ``texts``: its one message, "TextInputSequence must be str", is
    also what a str with a lone surrogate (JSON's "\\ud800", not valid UTF-8) gets."""
    for i, text in enumerate(texts):
        which = f"text {i}: " if len(texts) > 1 else ""
        if not isinstance(text, str):
            return TypeError(f"{which}expected a str, got {type(text).__name__}")
        bad = next((j for j, char in enumerate(text) if "\ud800" <= char <= "\udfff"), None)
        if bad is not None:
            return ValueError(f"{which}lone surrogate {text[bad]!r} at character {bad} (not encodable as UTF-8)")
    return TypeError("the tokenizer refused the text")


def _training_pieces(texts: Iterable[str]) -> Iterable[str]:
    """Texts cut at reserved tokens, as encoding will cut them, so no merge builds part of one."""
    for text in texts:
        yield from (piece for piece in _RESERVED_SPLIT.split(text) if piece)


def _tags_not_special(backend: BackendTokenizer) -> BackendTokenizer:
    """The same tokenizer with the tag tokens marked non-special (kept by skip_special_tokens)."""
    spec = json.loads(backend.to_str())
    for added in spec["added_tokens"]:
        added["special"] = added["content"] not in TAG_TOKENS
    return BackendTokenizer.from_str(json.dumps(spec))


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """Train the byte-level BPE on ``texts`` (e.g. ``r1lab.world.tokenizer_training_texts()``).

    Deterministic (BPE training has no randomness): the same texts give a byte-identical
    ``tokenizer.json``. ``vocab_size`` counts the 256 byte tokens and the 9 reserved tokens,
    which take ids 0..8 (``<|pad|>`` is 0).
    """
    if isinstance(texts, str):  # else each character would be a text of its own: no merge at all, silently
        raise TypeError("train_tokenizer takes a list of texts: pass [text] (or text.splitlines()), not a str")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):  # 300.0 failed inside the trainer, unnamed
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if vocab_size < 256 + len(RESERVED_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(RESERVED_TOKENS)} (bytes + reserved tokens)")
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = _pre_tokenizer()
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(RESERVED_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_training_pieces(texts), trainer)
    return Tokenizer(_tags_not_special(backend))


def world_tokenizer(seed: int = 0, n_docs: int = 20_000, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Tokenizer:
    """The tokenizer of the miniature world: trained on ``r1lab.world.tokenizer_training_texts`` (~2 s)."""
    from r1lab.world import tokenizer_training_texts  # noqa: PLC0415  (the world imports nothing from here)

    return train_tokenizer(tokenizer_training_texts(seed, n_docs), vocab_size)
