"""Tokenizer.decode of ids outside the vocabulary: not dropped silently."""

import pytest

from r1lab.tokenizer import Tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return train_tokenizer(["hello world the cat sat"] * 50, vocab_size=300)


def test_an_id_past_the_vocabulary_decodes_to_the_replacement_character(tokenizer: Tokenizer) -> None:
    hello, v = tokenizer.encode("hello"), tokenizer.vocab_size
    assert tokenizer.decode(hello + [v] + hello) == "hello\ufffdhello"  # the backend gave "hellohello"
    assert tokenizer.decode([v + 7]) == "\ufffd"
    assert tokenizer.decode(hello) == "hello"  # in-vocabulary ids as before


def test_a_negative_id_raises_naming_it(tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="-100"):  # the backend raised OverflowError without the id
        tokenizer.decode(tokenizer.encode("cat") + [-100])
