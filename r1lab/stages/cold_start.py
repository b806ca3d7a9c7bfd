"""Cold-start data (R1 §2.3.1): a small set (the demo's: ~1.6k) of readable long chains of
thought for the first SFT.

R1 collected "thousands" of long-CoT examples, from R1-Zero outputs rewritten into a readable
format and from few-shot prompting with long CoT, then post-processed them: the output format is
``<think>reasoning</think>`` then a summary, and unreadable responses are filtered out. Here:

- source ``r1-zero``: an R1-Zero policy answers RL-split prompts in its own template (R1 Table 1);
  a sample is kept when it finished, is correct (the world's rule), is in R1-Zero's strict format
  and works the problem out (at least one step "a op b = c": a bare "The answer is 16." inside
  ``<think>`` is no chain of thought) whose last step gives the answer (the summary is written
  from the answer: it must not contradict where the reasoning ended); then it is *rewritten*: the
  reasoning inside ``<think>`` goes one sentence per line and the ``<answer>`` becomes a one-line
  summary from the world's phrasebook ("The value of 3+4 is 7." for arithmetic, "So the answer
  is 2*5+1." for countdown). The reasoning itself stays the model's own;
- source ``world-long-cot``: stands for "a stronger model prompted few-shot with long CoT". The
  world's own renderer (`r1lab.world.long_cot`: one step per line, a check pass, a summary) writes
  the chains that such a model would, on pretrain-split problems (never RL or held-out ones).

Both then go through the readability filters (`r1lab.filters`: R1 format, no language mixing, no
repeated line, no long paragraph, no code block) and one shared dedupe. The dataset is chat JSONL
(`r1lab.data`): the prompt is the question, the response exactly the assistant turn (the chat
template adds BOS, turn markers and EOS), and provenance fields: source, source checkpoint, prompt
id, sample index, kind, answer, filters passed. ``<name>.stats.json`` next to it counts, per source,
how many candidates reached and passed each filter.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from r1lab import runtime
from r1lab.cli import add_config_arguments, config_from_args
from r1lab.data import SFTExample, check_output_file, write_sft_jsonl
from r1lab.engine import MIN_TEMPERATURE, Completion, Engine, SamplingParams
from r1lab.filters import (READABILITY_FILTERS, DatasetStats, Deduper, Funnel, ReadabilityConfig, check_readability,
                           check_readability_settings)
from r1lab.model import from_pretrained
from r1lab.prompts import R1_ZERO, infer_template, prompt_ids
from r1lab.rewards import strict_format_reward
from r1lab.stages.sample_eval import WORKED_STEP, is_reasoning
from r1lab.tokenizer import Tokenizer
from r1lab.world import (ARITHMETIC, PRETRAIN, WorldProblem, check_completion, completion_body,
                         extract_final_expression, long_cot, problem_set, rl_prompts)
from r1lab.world.answers import read_to_end
from r1lab.world.language import PHRASES
from r1lab.world.problems import KINDS

R1_ZERO_SOURCE, LONG_COT_SOURCE = "r1-zero", "world-long-cot"
ZERO_FILTERS: tuple[str, ...] = ("finished", "correct", "r1_zero_format", "step_by_step", "reaches_answer",
                                 *READABILITY_FILTERS, "dedupe")
LONG_COT_FILTERS: tuple[str, ...] = (*READABILITY_FILTERS, "dedupe")
# settings that only steer sampling the R1-Zero checkpoint (`check_sampling_settings`)
SAMPLING_FIELDS: tuple[str, ...] = ("n_prompts", "samples_per_prompt", "max_new_tokens", "temperature",
                                    "batch_problems", "bf16", "device")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# a countdown attempt's verdict ("We get 30, not 8.", "We get 8."), in any language: the world writes
# it on its attempt's line; on a line of its own, two misses of equal value read as a loop
_VERDICTS = [re.compile(re.sub(r"\\\{[nt]\\\}", r"\\S+", re.escape(template)))
             for book in PHRASES.values() for template in (book.miss, book.hit)]


@dataclass(kw_only=True)
class ColdStartConfig:
    zero_checkpoint: str = ""  # R1-Zero policy directory to sample; "" = the world's long CoT only
    out: str = "runs/cold_start/data.jsonl"  # the dataset; stats go next to it as <name>.stats.json
    n_prompts: int = 256  # RL-split prompts sampled from the R1-Zero model
    samples_per_prompt: int = 4  # R1-Zero samples per prompt
    max_new_tokens: int = 96  # tokens per R1-Zero sample at most (its RL cap)
    temperature: float = 0.6  # sampling temperature for R1-Zero (the paper's evaluation setting)
    n_long_cot: int = 256  # rendered long-CoT examples (pretrain-split problems)
    kinds: str = "arithmetic"  # problem kinds, comma-separated: arithmetic,countdown
    language: str = "en"  # target language of the reasoning and the summary ("en" or "vl")
    min_language_share: float = 1.0  # share of words in the target language needed; 1.0 = none foreign
    max_paragraph_chars: int = 100  # longest reasoning line kept
    seed: int = 0  # prompt draw, sampling and long-CoT rendering
    batch_problems: int = 32  # prompts sampled together
    bf16: bool = False  # bf16 autocast while sampling
    device: str = "cpu"  # cpu | cuda | cuda:N: where the R1-Zero model samples
    threads: int = 0  # torch threads; 0 = keep the process's count (torch's default unless set)

    def __post_init__(self) -> None:
        runtime.check_int_fields(self)
        runtime.check_device(self.device, "ColdStartConfig")
        runtime.check_seed(self.seed, "ColdStartConfig")
        runtime.check_threads(self.threads, "ColdStartConfig")
        for name in ("samples_per_prompt", "max_new_tokens", "batch_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"ColdStartConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("n_prompts", "n_long_cot"):
            if getattr(self, name) < 0:
                raise ValueError(f"ColdStartConfig.{name} must be >= 0, got {getattr(self, name)}")
        # NaN too; "must be >= 0" misled for inf. 0 < T < MIN_TEMPERATURE overflows logits / T: SamplingParams
        # refuses it, but only after the model has loaded and without naming this config
        if not (self.temperature == 0 or MIN_TEMPERATURE <= self.temperature < float("inf")):
            raise ValueError(f"ColdStartConfig.temperature must be finite and >= 0, got {self.temperature} "
                             f"(0 is greedy; a positive one must be >= {MIN_TEMPERATURE})")
        if not (self.zero_checkpoint and self.n_prompts) and not self.n_long_cot:
            raise ValueError("ColdStartConfig: nothing to build; give --zero-checkpoint and --n-prompts, "
                             "or --n-long-cot")
        parse_kinds(self.kinds, "ColdStartConfig")  # errors name this config's fields, not ReadabilityConfig's
        check_readability_settings("ColdStartConfig", self.language, self.min_language_share, self.max_paragraph_chars)

    def kind_tuple(self) -> tuple[str, ...]:
        return parse_kinds(self.kinds)

    def readability(self) -> ReadabilityConfig:
        return ReadabilityConfig(language=self.language, min_language_share=self.min_language_share,
                                 max_paragraph_chars=self.max_paragraph_chars)


def parse_kinds(kinds: str, owner: str = "") -> tuple[str, ...]:
    """``"arithmetic,countdown"`` -> ``("arithmetic", "countdown")``; ValueError for an unknown kind,
    naming ``<owner>.kinds`` when the config holding them is given."""
    parsed = tuple(k.strip() for k in kinds.split(",") if k.strip())
    if not parsed or any(k not in KINDS for k in parsed):
        field = f"{owner}.kinds" if owner else "kinds"
        raise ValueError(f"{field} must be a comma-separated subset of {KINDS}, got {kinds!r}")
    return parsed


def load_engine(checkpoint: str, bf16: bool = False, device: str = "cpu") -> tuple[Engine, Tokenizer]:
    """A sampling engine on a checkpoint directory (model + tokenizer, the model on `device`);
    FileNotFoundError if absent."""
    path = check_checkpoint(checkpoint)
    tokenizer = Tokenizer.load(path)  # a malformed tokenizer.json: a ValueError naming it
    model = from_pretrained(path, device=device)
    return Engine(model, tokenizer, autocast_dtype=torch.bfloat16 if bf16 else None), tokenizer


def check_checkpoint(checkpoint: str) -> Path:
    """The directory of a checkpoint `load_engine` can load, without loading it; FileNotFoundError if absent."""
    path = Path(checkpoint)
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"checkpoint not found (needs config.json and tokenizer.json): {checkpoint}")
    return path


def summary_line(problem: WorldProblem, completion: str, language: str = "en") -> str:
    """The one-line summary after ``</think>``, from the phrasebook: the problem and its value, or
    (countdown) the expression the sample found."""
    book = PHRASES[language]
    if problem.kind == ARITHMETIC:
        return book.summary.format(q=problem.chain.expression(), n=problem.answer)
    return book.final.format(n=extract_final_expression(completion) or problem.chain.expression())


def readable_from_r1_zero(completion: str, problem: WorldProblem, language: str = "en") -> str | None:
    """An R1-Zero sample in the readable format: one sentence of its reasoning per line, then a summary.

    None when there is no ``<think>…</think>`` reasoning to rewrite.

    >>> from r1lab.world import rl_prompts
    >>> problem = rl_prompts(1)[0]; problem.question
    'Compute 20-8+4'
    >>> print(readable_from_r1_zero(" <think> Step by step. First, 20-8=12, so 12+4. Next, 12+4=16. </think> "
    ...                             "<answer> 16 </answer><|eos|>", problem))
    <think>
    Step by step.
    First, 20-8=12, so 12+4.
    Next, 12+4=16.
    </think>
    The value of 20-8+4 is 16.
    """
    match = _THINK.search(completion_body(completion))
    if match is None:
        return None
    lines: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE_END.split(match.group(1).strip()) if s.strip()):
        if lines and problem.kind != ARITHMETIC and any(v.fullmatch(sentence) for v in _VERDICTS):
            lines[-1] += " " + sentence
        else:
            lines.append(sentence)
    if not lines:
        return None
    return "<think>\n" + "\n".join(lines) + "\n</think>\n" + summary_line(problem, completion, language)


def reaches_answer(response: str, problem: WorldProblem) -> bool:
    """Whether the reasoning's last worked step gives the answer (the value, or the countdown target).

    The summary is written from the answer, so a correct answer after reasoning that ended at
    another number ("12+4=17", "We get 30, not 8.") would make a summary that contradicts it.
    """
    match = _THINK.search(response)
    results = WORKED_STEP.findall(match.group(1)) if match else []
    # a result too long to be the answer is no int() call (CPython refuses over 4,300 digits)
    return bool(results) and len(results[-1]) <= 20 and int(results[-1]) == problem.answer


def readable_checks(prompt: str, response: str, readability: ReadabilityConfig,
                    dedupe: Deduper) -> Iterator[tuple[str, bool]]:
    """The readability filters then dedupe, pulled lazily by `Funnel.admit` (so only readable
    responses are recorded as seen)."""
    yield from check_readability(response, readability).checks()
    yield "dedupe", dedupe.add(prompt, response)


def _zero_checks(problem: WorldProblem, completion: Completion, response: str, readability: ReadabilityConfig,
                 dedupe: Deduper) -> Iterator[tuple[str, bool]]:
    """The filters of an R1-Zero sample, in `ZERO_FILTERS` order."""
    # a reply that stopped past what the world reads (READ_CHARS) was not read to its end: unfinished,
    # as rejection sampling counts it (the rules would judge it neither right nor in format)
    yield "finished", completion.finish_reason == "stop" and read_to_end(completion.text)
    yield "correct", check_completion(problem, completion.text)
    yield "r1_zero_format", strict_format_reward(completion.text) == 1.0
    yield "step_by_step", is_reasoning(completion.text)
    yield "reaches_answer", reaches_answer(response, problem)
    yield from readable_checks(problem.question, response, readability, dedupe)


def _example(problem: WorldProblem, response: str, source: str, checkpoint: str | None, funnel: Funnel,
             sample_index: int | None = None) -> SFTExample:
    meta = {"source": source, "source_checkpoint": checkpoint, "prompt_id": problem.id, "sample_index": sample_index,
            "kind": problem.kind, "answer": str(problem.answer), "filters_passed": funnel.names}
    return SFTExample(prompt=problem.question, response=response, meta=meta)


def zero_examples(engine: Any, tokenizer: Any, problems: list[WorldProblem], config: ColdStartConfig,
                  dedupe: Deduper) -> tuple[list[SFTExample], Funnel]:
    """Samples the R1-Zero policy on ``problems``; the kept samples, rewritten, and their funnel."""
    funnel, readability, examples = Funnel.of(R1_ZERO_SOURCE, ZERO_FILTERS), config.readability(), []
    bar = tqdm(range(0, len(problems), config.batch_problems), desc=f"r1-zero samples x{config.samples_per_prompt}",
               dynamic_ncols=True)
    for start in bar:
        chunk = problems[start:start + config.batch_problems]
        groups = engine.generate([prompt_ids(tokenizer, p.question, R1_ZERO) for p in chunk], SamplingParams(
            n=config.samples_per_prompt, temperature=config.temperature, max_new_tokens=config.max_new_tokens,
            stop_token_ids=(tokenizer.eos_id,), seed=config.seed * 1_000_003 + start))
        for problem, group in zip(chunk, groups):
            for index, completion in enumerate(group):
                response = readable_from_r1_zero(completion.text, problem, config.language) or ""
                if funnel.admit(_zero_checks(problem, completion, response, readability, dedupe)):
                    examples.append(_example(problem, response, R1_ZERO_SOURCE, config.zero_checkpoint, funnel, index))
        bar.set_postfix(kept=funnel.kept)
    return examples, funnel


def long_cot_examples(config: ColdStartConfig, problems: Sequence[WorldProblem],
                      dedupe: Deduper) -> tuple[list[SFTExample], Funnel]:
    """The world's rendered long CoT on (pretrain-split) problems, through the same filters."""
    funnel, readability, examples = Funnel.of(LONG_COT_SOURCE, LONG_COT_FILTERS), config.readability(), []
    for problem in problems:
        response = long_cot(problem, config.language, config.seed)
        if funnel.admit(readable_checks(problem.question, response, readability, dedupe)):
            examples.append(_example(problem, response, LONG_COT_SOURCE, None, funnel))
    return examples, funnel


def check_sampling_settings(config: ColdStartConfig) -> None:
    """ValueError for a sampling setting changed from its default without a checkpoint to sample:
    nothing is sampled then, so ``--temperature 1.0`` alone would be silently ignored. (Not in
    `ColdStartConfig.__post_init__`: the pipeline sets them first and the checkpoint later.)"""
    if config.zero_checkpoint:
        return
    defaults = {f.name: f.default for f in fields(ColdStartConfig)}
    changed = [f"--{name.replace('_', '-')}" + ("" if isinstance(value, bool) else f" {value}")
               for name in SAMPLING_FIELDS if (value := getattr(config, name)) != defaults[name]
               and not (name == "n_prompts" and value == 0)]
    if changed:
        raise ValueError(f"{', '.join(changed)}: only used when sampling an R1-Zero policy; give --zero-checkpoint, "
                         "or leave them out to build the world's long CoT only")


def stats_path(data: str | Path) -> Path:
    """Where a dataset's stats go: ``runs/x/data.jsonl`` -> ``runs/x/data.stats.json``."""
    data = Path(data)
    return data.with_name(data.stem + ".stats.json")


def run(config: ColdStartConfig) -> Path:
    """Builds the cold-start dataset; returns the JSONL path (stats next to it)."""
    check_sampling_settings(config)
    for path in (config.out, stats_path(config.out)):  # before sampling: a bad --out costs nothing
        check_output_file(path)
    # first: more problems than a split holds, or a bad checkpoint, fail before anything is sampled
    sampled = config.n_prompts if config.zero_checkpoint else 0
    # a chat-trained model asked in Table 1's template fails R1-Zero's format: all dropped, a wrong checkpoint unsaid
    if sampled and infer_template(config.zero_checkpoint) != R1_ZERO:
        raise ValueError(f"{config.zero_checkpoint} was trained on the chat template; the cold start samples an "
                         "R1-Zero policy with R1 Table 1's template: give the R1-Zero run's policy (or a base model)")
    problems = rl_prompts(sampled, seed=config.seed, kinds=config.kind_tuple()) if sampled else []
    long_problems = problem_set(PRETRAIN, config.n_long_cot, seed=config.seed, kinds=config.kind_tuple())
    loaded = load_engine(config.zero_checkpoint, config.bf16, config.device) if config.zero_checkpoint else None
    runtime.set_threads(config.threads)
    runtime.keep_freed_memory()
    dedupe, examples, funnels = Deduper(), [], []
    if loaded is not None and problems:
        kept, funnel = zero_examples(*loaded, problems, config, dedupe)
        examples, funnels = examples + kept, funnels + [funnel]
    if config.n_long_cot:
        kept, funnel = long_cot_examples(config, long_problems, dedupe)
        examples, funnels = examples + kept, funnels + [funnel]
    out = Path(config.out)
    DatasetStats(data=str(out), examples=len(examples), sources=funnels, config=asdict(config)).write(stats_path(out))
    for funnel in funnels:
        print(funnel.describe())
    if not examples:  # an empty data.jsonl would only fail later, in the SFT, as "no examples"
        out.unlink(missing_ok=True)  # an earlier run's: not left beside stats that say none was kept
        raise ValueError(f"cold start kept no example: none passed the filters (see {stats_path(out)} for which "
                         "dropped them); sample more (--n-prompts, --samples-per-prompt), give --n-long-cot, "
                         "or a better --zero-checkpoint")
    write_sft_jsonl(out, examples)
    print(f"cold-start data: {len(examples)} examples -> {out} (stats: {stats_path(out)})")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ColdStartConfig)


def main(args: argparse.Namespace) -> int:
    run(config_from_args(ColdStartConfig, args))
    return 0
