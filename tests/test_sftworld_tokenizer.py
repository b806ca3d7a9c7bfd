"""find_control_token names the control token that comes first in the text."""

from r1lab.tokenizer import find_control_token


def test_the_first_control_token_in_the_text_is_named():
    assert find_control_token("a <|user|> b <|pad|> c") == "<|user|>"
    assert find_control_token("<|assistant|>x<|bos|>") == "<|assistant|>"
    assert find_control_token("<think> no control </think>") is None
