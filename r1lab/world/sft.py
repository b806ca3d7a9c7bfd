"""Supervised data for the stages after R1-Zero, and the text a tokenizer should be trained on.

Cold start (R1 §2.3.1) fine-tunes the base model on a small set of readable long chains of
thought before reasoning RL; later SFT (R1 §2.3.3) mixes reasoning with non-reasoning data.
Here the long chains are rendered from ``pretrain``-split problems in one language, so they
never touch RL prompts or held-out problems.
"""

from __future__ import annotations

import random

from r1lab.fields import check_int_arg
from r1lab.world.chat import ChatExample, chat_tasks
from r1lab.world.corpus import pretraining_corpus
from r1lab.world.language import ENGLISH, LANGUAGES, VELARI
from r1lab.world.problems import ARITHMETIC, COUNTDOWN, PRETRAIN
from r1lab.world.render import R1_ZERO_TEMPLATE, long_cot
from r1lab.world.splits import problem_set


def cold_start_examples(
    n: int,
    seed: int = 0,
    language: str = ENGLISH,
    kinds: tuple[str, ...] = (ARITHMETIC,),
) -> list[ChatExample]:
    """``n`` cold-start pairs: question -> ``<think>`` readable reasoning ``</think>`` summary.

    ValueError for a language the world lacks, or ``kinds`` given as one string, not a tuple.
    """
    if language not in LANGUAGES:  # else long_cot's error, and only when n > 0
        raise ValueError(f"cold_start_examples: unknown language {language!r}; the world has {LANGUAGES}")
    problems = problem_set(PRETRAIN, n, seed=seed, kinds=kinds)
    return [
        ChatExample(prompt=problem.question, response=long_cot(problem, language, seed), kind=problem.kind)
        for problem in problems
    ]


def tokenizer_training_texts(seed: int = 0, n_docs: int = 20_000) -> list[str]:
    """A sample of every kind of text the stages will feed the model, for training a tokenizer.

    The corpus sample dominates; the template, long CoTs in both languages and chat pairs are
    added so their recurring phrases get merged into few tokens.
    """
    check_int_arg("tokenizer_training_texts", "seed", seed)  # else problem_set's error, after the whole corpus was drawn
    rng = random.Random(f"tokenizer-texts:{seed}")
    texts = pretraining_corpus(seed, n_docs)
    texts += [R1_ZERO_TEMPLATE] * max(1, n_docs // 100)
    for language in (ENGLISH, VELARI):
        texts += [ex.response for ex in cold_start_examples(max(1, n_docs // 50), seed, language, (ARITHMETIC, COUNTDOWN))]
    texts += [f"{ex.prompt}\n{ex.response}" for ex in chat_tasks(max(1, n_docs // 20), seed)]
    rng.shuffle(texts)
    return texts
