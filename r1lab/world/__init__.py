"""R1 in miniature: a synthetic reasoning world where every stage of DeepSeek-R1 runs on a CPU.

The world is deterministic and seeded. It provides

* verifiable problems (``WorldProblem``): multi-step integer arithmetic and countdown, with a
  difficulty knob, drawn from three disjoint splits (pretrain / rl / heldout) by a hash rule;
* a pretraining corpus in which reasoning step by step is reliable, bare answers are not, the
  R1-Zero tag format is known but rare, and solutions are written in English, in the constructed
  language Velari, or switch between them (``pretraining_corpus``, ``CorpusConfig``);
* the R1-Zero prompt template (R1 Table 1), answer extraction and the accuracy rule;
* a word-level language classifier for the language-consistency reward (R1 §2.3.2);
* cold-start long chains of thought and non-reasoning chat tasks for the SFT stages (R1 §2.3).

Modules: ``arithmetic`` and ``countdown`` (the tasks), ``problems`` (the record and the split
rule), ``splits`` (problem sets per stage), ``language`` (English/Velari), ``render`` (answers as
text), ``corpus`` (pretraining documents), ``chat`` (non-reasoning world), ``answers`` (checking),
``sft`` (cold-start chains of thought and the tokenizer's training texts), ``general`` (general and
harmful prompts for all-scenario RL, the reward models' data).
"""

from r1lab.world.answers import (
    check_completion,
    completion_body,
    extract_final_answer,
    extract_final_expression,
    follows_r1_zero_format,
)
from r1lab.world.arithmetic import ArithmeticConfig, Chain, Step
from r1lab.world.chat import ChatExample, Country, chat_tasks, countries
from r1lab.world.corpus import (
    CorpusConfig,
    Document,
    corpus_statistics,
    iter_documents,
    pretraining_corpus,
    pretraining_documents,
)
from r1lab.world.countdown import CountdownConfig, is_solution
from r1lab.world.general import GeneralPrompt, general_prompts, general_verdict  # registers its words: one lexicon
from r1lab.world.language import ENGLISH, LANGUAGES, VELARI, language_consistency, word_language, words
from r1lab.world.problems import ARITHMETIC, COUNTDOWN, HELDOUT, PRETRAIN, RL, WorldProblem, split_of
from r1lab.world.render import R1_ZERO_TEMPLATE, format_r1_zero, long_cot
from r1lab.world.splits import heldout_problems, problem_set, rl_prompts, sample_problem
from r1lab.world.sft import cold_start_examples, tokenizer_training_texts

__all__ = [
    "ARITHMETIC", "COUNTDOWN", "ENGLISH", "HELDOUT", "LANGUAGES", "PRETRAIN", "R1_ZERO_TEMPLATE", "RL", "VELARI",
    "ArithmeticConfig", "Chain", "ChatExample", "CorpusConfig", "CountdownConfig", "Country", "Document", "Step",
    "GeneralPrompt", "WorldProblem", "chat_tasks", "check_completion", "cold_start_examples", "completion_body",
    "corpus_statistics", "countries",
    "extract_final_answer", "extract_final_expression", "follows_r1_zero_format", "format_r1_zero", "general_prompts",
    "general_verdict",
    "heldout_problems", "is_solution", "iter_documents", "language_consistency", "long_cot", "pretraining_corpus",
    "pretraining_documents", "problem_set", "rl_prompts", "sample_problem", "split_of",
    "tokenizer_training_texts", "word_language", "words",
]
