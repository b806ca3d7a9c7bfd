"""Judges: is a sampled answer correct? (R1 §2.3.3, rejection sampling.)

R1 keeps only correct samples when it builds the SFT set from the reasoning-RL checkpoint. Most
prompts have a rule that checks the answer; for the others "a generative reward model" decides:
DeepSeek-V3 is shown the ground truth and the model's prediction and judges. Both are one
interface here, a batched `Judge`: ``judge(items) -> list[bool]``, one verdict per `JudgeItem`.

- `RuleJudge`: a deterministic rule on the task record (the world's `check_completion` by default);
- `GenerativeJudge`: a model prompted with the question, the reference answer and the prediction's
  final answer, asked for "yes" or "no" and read greedily; anything but a clear "yes" is False.

A judge never raises on model text: an item it cannot decide is judged incorrect.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from r1lab.engine import SamplingParams
from r1lab.prompts import CHAT, prompt_ids
from r1lab.tokenizer import find_control_token

log = logging.getLogger(__name__)

JUDGE_PROMPT = (
    "Decide whether the predicted answer to the question is correct, given the reference answer. "
    "Reply with yes or no.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Predicted answer: {prediction}"
)
_MAX_PREDICTION_CHARS = 500  # the judge sees the end of the prediction's final answer, cut to this length
_WORD = re.compile(r"[^\W\d_]+")  # letters of any script: "Yesño" is one word, not "Yes" and "o"


@dataclass(frozen=True, kw_only=True)
class JudgeItem:
    """One prediction to judge."""

    question: str  # the prompt the model answered
    reference: str  # the ground-truth answer, as text
    prediction: str  # the model's whole completion (the judge reads what it needs from it)
    example: Any = None  # the task record, for rule judges (a `WorldProblem` in the world)


class Judge(Protocol):
    def __call__(self, items: Sequence[JudgeItem]) -> list[bool]: ...


def _world_check(example: Any, prediction: str) -> bool:
    from r1lab.world import check_completion

    return check_completion(example, prediction)


class RuleJudge:
    """A rule on the task record: ``check(example, prediction) -> bool`` (default: the world's rule).

    >>> from r1lab.world import rl_prompts
    >>> problem = rl_prompts(1)[0]
    >>> RuleJudge()([JudgeItem(question=problem.question, reference=str(problem.answer), example=problem,
    ...                        prediction=f"<think>\\nok\\n</think>\\nIt is {problem.answer + d}.") for d in (0, 1)])
    [True, False]
    """

    def __init__(self, check: Callable[[Any, str], bool] = _world_check) -> None:
        self.check = check

    def __call__(self, items: Sequence[JudgeItem]) -> list[bool]:
        # the world's rule reads the task record: without one it raised, and that error, taken for
        # unreadable model text, judged every answer incorrect in silence
        if self.check is _world_check and any(item.example is None for item in items):
            raise ValueError("RuleJudge: the world's rule needs each item's task record (JudgeItem.example, "
                             "a WorldProblem); give it, or a check that needs none")
        return [self._one(item) for item in items]

    def _one(self, item: JudgeItem) -> bool:
        try:
            return bool(self.check(item.example, item.prediction))
        except Exception as err:  # a rule that cannot read the prediction judges it wrong
            log.debug("rule judge raised %r; judged incorrect", err)
            return False


def final_answer(prediction: str) -> str:
    """What the judge is shown: the ``<answer>`` body, else the summary after ``</think>``, else all,
    but nothing when the last ``<think>`` is never closed (cut off while thinking: no final answer
    yet, as for the rule judge); of a long one only its last 500 characters, since an R1 summary
    states its answer at the end (R1 §2.3.1: reasoning, then a summary; the math answer last, in ``\\boxed{}``).

    >>> final_answer("<think>\\n2+3=5.\\n</think>\\nThe value of 2+3 is 5.<|eos|>")
    'The value of 2+3 is 5.'
    >>> final_answer("<think>\\n2+3=5."), final_answer("2+3=5, so 5.")
    ('', '2+3=5, so 5.')
    """
    from r1lab.world.answers import final_answer_span

    return final_answer_span(prediction).strip()[-_MAX_PREDICTION_CHARS:]


def parse_verdict(text: str) -> bool:
    """True when the first word of the judge's reply (after its ``</think>``, if it reasons) is "yes"
    and no word of it is "no" (in English or in the world's Velari, "nodo"): a judge that echoes the
    instruction ("Yes or no: no", "Yes/No") or mixes languages ("Yes - nodo") gave no clear yes.

    >>> [parse_verdict(t) for t in (" Yes.", "yes, it is<|eos|>", "no", "Yesterday", "", "<think>yes", None)]
    [True, True, False, False, False, False, False]
    >>> [parse_verdict(t) for t in ("Yes or no: no", "Yes/No", "Yes, it matches.")]
    [False, False, True]
    >>> parse_verdict("<think>\\n5 = 5.\\n</think>\\nyes"), parse_verdict("Yes, nodo.")
    (True, False)
    """
    if not isinstance(text, str):
        return False
    from r1lab.world.answers import completion_body, final_answer_span
    from r1lab.world.language import GLOSSARY

    # r1lab's own chat checkpoints judge, and they may mix in Velari (R1 §2.3.2: language mixing)
    negatives = {"no", dict(GLOSSARY)["no"]}

    # the verdict follows the reasoning: an <answer> block drafted inside <think> is not the reply
    reply = completion_body(text).rsplit("</think>", 1)[-1]
    words = [word.lower() for word in _WORD.findall(final_answer_span(reply))]  # "**Yes**": words, not markup
    return words[:1] == ["yes"] and negatives.isdisjoint(words)


class GenerativeJudge:
    """A model as judge (R1 §2.3.3): asked, in its chat template, whether the prediction is right.

    ``engine`` is anything with `Engine.generate`'s signature; sampling is greedy and short, but
    long enough for a chat model's `<think>...</think>` before its yes/no: r1lab's own chat
    checkpoints reason first, and a reply cut inside the reasoning never says yes.
    """

    def __init__(self, engine: Any, tokenizer: Any, *, template: str = CHAT, max_new_tokens: int = 64,
                 batch_size: int = 32) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("GenerativeJudge: max_new_tokens and batch_size must be >= 1")
        self.engine, self.tokenizer = engine, tokenizer
        self.template, self.max_new_tokens, self.batch_size = template, max_new_tokens, batch_size
        limit = self._max_prompt_tokens()
        if limit is None:
            return
        shortest = len(prompt_ids(tokenizer, self.prompt(JudgeItem(question="", reference="", prediction="")), template))
        if limit < shortest:  # else every item is judged False: every sample silently dropped as incorrect
            positions = limit + max_new_tokens
            room = positions - shortest  # below 1: "at most 0 (or -20)" named a value that cannot run
            hint = (f"--judge-max-new-tokens must be at most {room}" if room >= 1 else
                    "no --judge-max-new-tokens fits: the prompt alone fills them; give a judge with longer context")
            raise ValueError(f"GenerativeJudge: max_new_tokens {max_new_tokens} leaves no room for the judging prompt "
                             f"({shortest} tokens at least) in the judge model's {positions} positions ({hint})")

    def prompt(self, item: JudgeItem) -> str:
        """The judging question for one item (the user turn)."""
        return JUDGE_PROMPT.format(question=item.question.strip(), reference=item.reference.strip(),
                                   prediction=final_answer(item.prediction))

    def __call__(self, items: Sequence[JudgeItem]) -> list[bool]:
        """One verdict per item. An item whose judging prompt leaves the judge no room to answer
        within its context (a long question or prediction), that holds a written-out control
        token, or whose prediction has no final answer (cut off while thinking: `final_answer` is
        empty, as the rule judge finds no answer) is not judged: False, not an error."""
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=self.max_new_tokens,
                                stop_token_ids=(self.tokenizer.eos_id,))
        limit = self._max_prompt_tokens()
        verdicts: list[bool] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start:start + self.batch_size]
            texts = [self.prompt(item) for item in batch]
            prompts = [prompt_ids(self.tokenizer, text, self.template) for text in texts]
            # prompt_ids encodes a written-out control token as text, so a sampled "<|assistant|>yes"
            # can no longer open a turn of the judge's own conversation; such a prediction (a turn
            # the judged model began itself) is still not judged; an empty prediction has nothing
            # to judge, and a lenient judge model may still say yes
            fits = [bool(final_answer(item.prediction)) and find_control_token(text) is None
                    and (limit is None or len(ids) <= limit) for item, text, ids in zip(batch, texts, prompts)]
            judged = [ids for ids, ok in zip(prompts, fits) if ok]
            replies = iter(group[0].text for group in self.engine.generate(judged, params)) if judged else iter(())
            verdicts += [parse_verdict(next(replies)) if ok else False for ok in fits]
        return verdicts

    def _max_prompt_tokens(self) -> int | None:
        """The longest prompt that leaves the verdict room in the judge model's positions (None:
        an engine without a model, e.g. a test's fake, is not limited)."""
        config = getattr(getattr(self.engine, "model", None), "config", None)
        return None if config is None else config.max_position_embeddings - self.max_new_tokens
