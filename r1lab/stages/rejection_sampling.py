"""Rejection sampling and the SFT mix (R1 §2.3.3): verified, readable reasoning plus chat data.

When reasoning RL converges, R1 samples several responses per prompt from that checkpoint and
keeps only the correct ones (rule verifiers; for answers no rule can check, a generative judge
shown the reference and the prediction), drops chains of thought with mixed languages, long
paragraphs or code blocks, and adds non-reasoning data (writing, factual QA, self-cognition,
translation), giving ~600k + ~200k samples on which the base model is fine-tuned again.

Here, for each of `n_prompts` prompts, `samples_per_prompt` samples are drawn in the chat
template at the RL temperature, and a sample is kept when it
  finished (EOS before `max_new_tokens`, the turn within the 20k characters the judges read), is
  judged correct (`r1lab.judges`; the world's rule by default), works the problem out step by step
  (at least one "a op b = c") with its last worked step giving the answer, passes the readability
  filters (`r1lab.filters`: R1 format, language, repetition, paragraph length, code block), is not
  a duplicate of a kept sample, and its prompt has fewer than `keep_per_prompt` samples kept so far.
Prompts come from the world's ``rl`` split: R1 samples the RL checkpoint on its reasoning prompts;
held-out problems stay unseen for evaluation, and ``pretrain`` problems are the base model's own
corpus (and the cold-start long CoT's).

Non-reasoning data: `n_chat` of the world's chat tasks (`r1lab.world.chat_tasks`). As in R1,
trivial queries (greeting, self-cognition, copying) get the reply with no chain of thought; with
`chat_cot` the others (translation, factual QA) get a short one, as R1 had DeepSeek-V3 write a CoT
before answering them. `out_dir` gets ``data.jsonl`` (provenance fields: source, source
checkpoint, prompt id, sample index, kind) and ``stats.json`` (per source and filter: how many
samples reached it and the fraction kept; totals). Then `r1lab sft` fine-tunes the base model on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from r1lab import runtime, training
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.data import SFTExample, check_output_dir, check_output_file, write_sft_jsonl
from r1lab.engine import MIN_TEMPERATURE, Completion, SamplingParams
from r1lab.filters import (READABILITY_FILTERS, DatasetStats, Deduper, Funnel, ReadabilityConfig, check_readability,
                           check_readability_settings)
from r1lab.judges import GenerativeJudge, Judge, JudgeItem, RuleJudge
from r1lab.prompts import CHAT, R1_ZERO, check_prompt_room, check_template, prompt_ids
from r1lab.stages.cold_start import check_checkpoint, load_engine, parse_kinds, reaches_answer
from r1lab.stages.sample_eval import is_reasoning
from r1lab.world import ChatExample, WorldProblem, chat_tasks, completion_body, rl_prompts
from r1lab.world.answers import read_to_end
from r1lab.world.chat import FACT_THOUGHT, TRANSLATE_THOUGHT
from r1lab.world.general import HARM_THOUGHT, HARMFUL, refusal_examples
from r1lab.world.render import final_answer_text

REASONING_SOURCE, CHAT_SOURCE = "rejection-sampling", "world-chat"
REASONING_FILTERS: tuple[str, ...] = ("finished", "correct", "step_by_step", "reaches_answer", *READABILITY_FILTERS,
                                      "dedupe", "per_prompt_cap")
CHAT_FILTERS: tuple[str, ...] = ("dedupe",)
TRIVIAL_CHAT: tuple[str, ...] = ("greeting", "identity", "copy")  # answered with no chain of thought


@dataclass(kw_only=True)
class RejectionSamplingConfig:
    checkpoint: str = ""  # model + tokenizer to sample; R1: the reasoning-RL checkpoint
    out_dir: str = "runs/rejection_sampling"  # run directory: data.jsonl, stats.json, the config
    n_prompts: int = 512  # reasoning prompts, from the world's rl split
    samples_per_prompt: int = 4  # N samples per prompt
    temperature: float = 1.0  # sampling temperature; the RL rollouts' (paper: the RL model's sampling)
    max_new_tokens: int = 192  # tokens per sample at most; the world's long CoT takes < 150
    template: str = CHAT  # prompt template; only "chat": R1 samples its post-cold-start RL checkpoint (§2.3.3)
    keep_per_prompt: int = 2  # distinct correct samples kept per prompt at most
    n_chat: int = 256  # non-reasoning chat tasks mixed in (before dedupe); paper: ~200k beside ~600k reasoning
    chat_cot: bool = True  # a short CoT for non-trivial chat tasks (translate, fact); trivial ones never
    # harmful requests declined, after the chat tasks (R1's non-reasoning data is DeepSeek-V3's SFT data, which
    # teaches refusals); few: 16 made the SFT model decline every held-out one, leaving all-scenario RL nothing
    n_refusals: int = 4
    kinds: str = "arithmetic"  # problem kinds, comma-separated: arithmetic,countdown
    language: str = "en"  # target language of the reasoning and the summary ("en" or "vl")
    min_language_share: float = 1.0  # share of words in the target language needed; 1.0 = none foreign
    max_paragraph_chars: int = 100  # longest reasoning line kept
    judge: str = "rule"  # "rule" (the world's answer check) or a checkpoint directory (generative judge)
    judge_max_new_tokens: int = 64  # a generative judge's reply at most: room for its <think> before yes/no
    seed: int = 0  # prompt draw, sampling and chat tasks
    batch_problems: int = 32  # prompts sampled together
    bf16: bool = False  # bf16 autocast while sampling
    device: str = "cpu"  # cpu | cuda | cuda:N: where the model (and a generative judge) samples
    threads: int = 0  # torch threads; 0 = keep the process's count (torch's default unless set)

    def __post_init__(self) -> None:
        runtime.check_int_fields(self)
        runtime.check_device(self.device, "RejectionSamplingConfig")
        runtime.check_seed(self.seed, "RejectionSamplingConfig")
        runtime.check_threads(self.threads, "RejectionSamplingConfig")
        if not self.checkpoint:
            raise ValueError("RejectionSamplingConfig.checkpoint is required (the model to sample)")
        for name in ("n_prompts", "samples_per_prompt", "max_new_tokens", "keep_per_prompt", "batch_problems",
                     "judge_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"RejectionSamplingConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_chat", "n_refusals"):
            if getattr(self, name) < 0:
                raise ValueError(f"RejectionSamplingConfig.{name} must be >= 0, got {getattr(self, name)}")
        # NaN too; 0 < T < MIN_TEMPERATURE overflows logits / T (SamplingParams refuses it after the model loads)
        if not (self.temperature == 0 or MIN_TEMPERATURE <= self.temperature < float("inf")):
            raise ValueError(f"RejectionSamplingConfig.temperature must be finite and >= 0, got {self.temperature} "
                             f"(0 is greedy; a positive one must be >= {MIN_TEMPERATURE})")
        check_template(self.template)
        if self.template == R1_ZERO:
            # R1 §2.3.3 samples the reasoning-RL checkpoint, trained after the cold start in the chat
            # format; an R1-Zero answer ("<think>..</think><answer>..</answer>") never passes the
            # r1_format filter, so every reasoning sample would be dropped. Rewriting such samples
            # into the readable format is the cold start's job (`r1lab cold-start --zero-checkpoint`).
            raise ValueError("--template r1_zero cannot keep any sample: rejection sampling follows the cold "
                             "start (R1 §2.3.3) and keeps only the readable chat format (<think>...</think> "
                             "summary); use --template chat, or rewrite R1-Zero samples with r1lab cold-start")
        parse_kinds(self.kinds, "RejectionSamplingConfig")  # errors name this config's fields
        check_readability_settings("RejectionSamplingConfig", self.language, self.min_language_share,
                                   self.max_paragraph_chars)

    def kind_tuple(self) -> tuple[str, ...]:
        return parse_kinds(self.kinds)

    def readability(self) -> ReadabilityConfig:
        return ReadabilityConfig(language=self.language, min_language_share=self.min_language_share,
                                 max_paragraph_chars=self.max_paragraph_chars)


def make_judge(spec: str, bf16: bool = False, max_new_tokens: int = 64, device: str = "cpu") -> Judge:
    """``"rule"``: the world's rule; otherwise a checkpoint directory, loaded as a generative judge
    that replies in at most `max_new_tokens` tokens."""
    if spec == "rule":
        return RuleJudge()
    check_judge(spec)
    engine, tokenizer = load_engine(spec, bf16, device)
    return GenerativeJudge(engine, tokenizer, max_new_tokens=max_new_tokens)


def check_judge(spec: str) -> None:
    """The error a mistyped ``--judge`` gets, without loading anything: "checkpoint not found:
    Rule" named neither the flag nor its values, and came after the sampled model had loaded."""
    if spec == "rule":
        return
    try:
        check_checkpoint(spec)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--judge {spec!r} is neither 'rule' (the world's rule) nor a judge checkpoint "
                                f"directory: {err}") from None
    check_chat_trained(spec, "--judge")


def check_chat_trained(checkpoint: str, flag: str) -> None:
    """ValueError when `checkpoint` records R1-Zero's template (an R1-Zero GRPO run): asked in the
    chat format it never saw, it fails the r1_format filter (or never says a clear yes) on every
    sample, and the set came out chat only, the wrong checkpoint unsaid. A checkpoint that records
    no template (a base model, an SFT run) is sampled in the chat format as before."""
    try:
        saved = json.loads((Path(checkpoint) / "r1lab_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or unreadable: nothing recorded to contradict
        return
    if isinstance(saved, dict) and saved.get("template") == R1_ZERO:
        raise ValueError(f"{flag} {checkpoint} was trained on R1 Table 1's r1_zero template; rejection sampling "
                         "asks in the chat format (R1 §2.3.3: the reasoning-RL checkpoint, after the cold start): "
                         "give a chat-trained checkpoint, or build cold-start data from it with r1lab cold-start")


def kept_response(text: str) -> str:
    """The part of a sample that is judged, filtered and kept: the assistant turn up to its end
    (EOS, or a new turn the model made up: ``User:``, ``<|user|>``...; the world's `completion_body`).

    The judges read only this part (R1 §2.3.3 keeps samples that are *verified* correct), so
    keeping any text after it would put an unchecked made-up turn into the SFT set.

    >>> kept_response(" <think>\\n3+4=7.\\n</think>\\nIt is 7. User: and 5+5?\\nAssistant: 999.<|eos|>")
    '<think>\\n3+4=7.\\n</think>\\nIt is 7.'
    """
    return completion_body(text).strip()


def _reasoning_checks(problem: WorldProblem, completion: Completion, response: str, correct: bool, kept: int,
                      readability: ReadabilityConfig, config: RejectionSamplingConfig,
                      dedupe: Deduper) -> Iterator[tuple[str, bool]]:
    """The filters of one sample, in `REASONING_FILTERS` order (pulled lazily by `Funnel.admit`);
    ``kept``: samples of this prompt kept so far. A duplicate repeats a kept sample: the caller
    records a sample in ``dedupe`` once it is kept, so a copy of one the cap turned away is
    counted by the cap again (the samples kept are the same either way)."""
    # a turn not ended within what completion_body (so the judges and kept_response) reads would be
    # filtered and kept cut short, its tail unread
    yield "finished", completion.finish_reason == "stop" and read_to_end(completion.text)
    yield "correct", correct
    yield "step_by_step", is_reasoning(response)
    # a verified answer after reasoning that ended at another number: the summary contradicts it
    yield "reaches_answer", reaches_answer(response, problem)
    yield from check_readability(response, readability).checks()
    yield "dedupe", (problem.question, response) not in dedupe
    yield "per_prompt_cap", kept < config.keep_per_prompt


def _sample_batch(engine: Any, tokenizer: Any, chunk: list[WorldProblem], judge: Judge, config: RejectionSamplingConfig,
                  seed: int) -> tuple[list[list[Completion]], list[bool]]:
    """N samples for each problem of the chunk and the judge's verdict on each (flat, in order)."""
    groups = engine.generate([prompt_ids(tokenizer, p.question, config.template) for p in chunk], SamplingParams(
        n=config.samples_per_prompt, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
        stop_token_ids=(tokenizer.eos_id,), seed=seed))
    # the judge sees exactly the text the filters check and the SFT set keeps
    items = [JudgeItem(question=p.question, reference=final_answer_text(p), prediction=kept_response(c.text),
                       example=p) for p, group in zip(chunk, groups) for c in group]
    verdicts = judge(items)
    if len(verdicts) != len(items):
        raise ValueError(f"the judge returned {len(verdicts)} verdicts for {len(items)} samples")
    return groups, verdicts


def reasoning_examples(engine: Any, tokenizer: Any, problems: list[WorldProblem], judge: Judge,
                       config: RejectionSamplingConfig, dedupe: Deduper) -> tuple[list[SFTExample], Funnel]:
    """Samples, judges and filters; the kept samples as SFT examples and the funnel of counts."""
    funnel, readability, examples = Funnel.of(REASONING_SOURCE, REASONING_FILTERS), config.readability(), []
    bar = tqdm(range(0, len(problems), config.batch_problems), desc=f"rejection sampling N={config.samples_per_prompt}",
               dynamic_ncols=True)
    for start in bar:
        chunk = problems[start:start + config.batch_problems]
        groups, verdicts = _sample_batch(engine, tokenizer, chunk, judge, config, config.seed * 1_000_003 + start)
        verdict = iter(verdicts)
        for problem, group in zip(chunk, groups):
            kept = 0
            for index, completion in enumerate(group):
                response = kept_response(completion.text)  # no EOS: the chat template adds it
                checks = _reasoning_checks(problem, completion, response, next(verdict), kept, readability, config, dedupe)
                if funnel.admit(checks):
                    kept += 1
                    dedupe.add(problem.question, response)
                    examples.append(SFTExample(prompt=problem.question, response=response, meta={
                        "source": REASONING_SOURCE, "source_checkpoint": config.checkpoint, "prompt_id": problem.id,
                        "sample_index": index, "kind": problem.kind, "answer": str(problem.answer),
                        "filters_passed": funnel.names}))
        bar.set_postfix(kept=funnel.kept)
    return examples, funnel


def chat_response(example: ChatExample, with_cot: bool = True) -> str:
    """The reply to a chat task: bare for trivial kinds, else (``with_cot``) a short CoT then the reply.

    >>> from r1lab.world import ChatExample
    >>> print(chat_response(ChatExample(prompt="Translate to English: sulo", response="step", kind="translate")))
    <think>
    This asks for a translation from Velari to English.
    In English, sulo is step.
    </think>
    step
    >>> chat_response(ChatExample(prompt="Hello", response="Hello! How can I help you today?", kind="greeting"))
    'Hello! How can I help you today?'
    """
    if not with_cot or example.kind in TRIVIAL_CHAT:
        return example.response
    if example.kind == "translate":
        word = example.prompt.rsplit(":", 1)[-1].strip()
        target = "English" if "to English" in example.prompt else "Velari"
        source = "Velari" if target == "English" else "English"
        thought = TRANSLATE_THOUGHT.format(source=source, target=target, word=word, answer=example.response)
    elif example.kind == "fact":
        thought = FACT_THOUGHT.format(answer=example.response)
    elif example.kind == HARMFUL:
        thought = HARM_THOUGHT
    else:
        return example.response
    return f"<think>\n{thought}\n</think>\n{example.response}"


def chat_examples(config: RejectionSamplingConfig, dedupe: Deduper) -> tuple[list[SFTExample], Funnel]:
    """The non-reasoning part of the mix: the world's chat tasks, then `n_refusals` harmful requests
    declined (`r1lab.world.general`), deduplicated."""
    funnel, examples = Funnel.of(CHAT_SOURCE, CHAT_FILTERS), []
    for example in chat_tasks(config.n_chat, seed=config.seed) + refusal_examples(config.n_refusals, config.seed):
        response = chat_response(example, config.chat_cot)
        if funnel.admit([("dedupe", dedupe.add(example.prompt, response))]):
            prompt_id = f"{example.kind}-{hashlib.sha256(example.prompt.encode()).hexdigest()[:10]}"
            examples.append(SFTExample(prompt=example.prompt, response=response, meta={
                "source": CHAT_SOURCE, "source_checkpoint": None, "prompt_id": prompt_id, "sample_index": None,
                "kind": example.kind, "filters_passed": funnel.names}))
    return examples, funnel


def run(config: RejectionSamplingConfig) -> Path:
    """Builds the SFT set; returns ``out_dir/data.jsonl`` (``stats.json`` next to it)."""
    out_dir = check_output_dir(config.out_dir)  # before loading and sampling: a bad --out-dir costs nothing
    for name in ("data.jsonl", "stats.json"):
        check_output_file(out_dir / name)
    # first: more prompts than the split holds, or a bad checkpoint, leave no run directory
    problems = rl_prompts(config.n_prompts, seed=config.seed, kinds=config.kind_tuple())
    check_judge(config.judge)
    check_chat_trained(config.checkpoint, "--checkpoint")
    engine, tokenizer = load_engine(config.checkpoint, config.bf16, config.device)
    if (model := getattr(engine, "model", None)) is not None:  # a scripted test engine has none
        check_prompt_room([p.question for p in problems], tokenizer, config.template, config.max_new_tokens,
                          model.config.max_position_embeddings, "--max-new-tokens")
    judge = make_judge(config.judge, config.bf16, config.judge_max_new_tokens, config.device)
    out = training.start_run(config, "rejection_sampling")
    for name in ("data.jsonl", "stats.json"):  # an earlier run's: never left next to this run's config
        (out / name).unlink(missing_ok=True)
    dedupe = Deduper()
    reasoning, reasoning_funnel = reasoning_examples(engine, tokenizer, problems, judge, config, dedupe)
    chat, chat_funnel = chat_examples(config, dedupe)
    data, funnels = out / "data.jsonl", [reasoning_funnel, chat_funnel]
    DatasetStats(data=str(data), examples=len(reasoning) + len(chat), sources=funnels,
                 config=asdict(config)).write(out / "stats.json")
    for funnel in funnels:
        print(funnel.describe())
    if not reasoning + chat:  # an empty data.jsonl would only fail later, in the SFT, as "no examples"
        raise ValueError(f"rejection sampling kept no sample and --n-chat and --n-refusals are 0: no data to "
                         f"fine-tune on (see {out / 'stats.json'}); sample more (--n-prompts, --samples-per-prompt) "
                         "or a better checkpoint")
    if not reasoning:
        print(f"warning: no reasoning sample passed the filters (see {out / 'stats.json'}); the SFT set is chat only")
    write_sft_jsonl(data, reasoning + chat)
    print(f"rejection-sampled data: {len(reasoning)} reasoning + {len(chat)} chat examples -> {data}")
    return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, RejectionSamplingConfig)


def main(args: argparse.Namespace) -> int:
    run(config_from_args(RejectionSamplingConfig, args))
    return 0
