"""The demo's result tables: one row per model on the held-out reasoning problems (`markdown_table`),
and the general-prompt judgement of the chat models before and after all-scenario RL (`general_table`);
each row cached in the run directory while the checkpoint it scored is unchanged (`cached_row`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from r1lab.data import write_text_atomically
from r1lab.stages import evaluate as evaluate_stage  # its SCORING_VERSION, read when a row is fingerprinted

if TYPE_CHECKING:
    from r1lab.pipeline import StageRow

Row = TypeVar("Row")  # a table row dataclass (StageRow, GeneralRow)



def markdown_table(rows: list[StageRow], k: int) -> str:
    head = (f"| stage | pass@1 | cons@{k} | pass@{k} | language | length | format | reasons | acc. reasoning "
            f"| acc. bare | time |")
    lines = [head, "|---|" + "---:|" * 10]
    for r in rows:  # a mean over no sample (none reasoned, or none answered bare) is "–", not 0.0 or 100.0
        reasoning = _percent(r.accuracy_reasoning, r.reasoning_share > 0)
        bare = _percent(r.accuracy_bare, r.reasoning_share < 1)
        language = _percent(r.language_consistency, r.reasoning_share > 0)
        lines.append(f"| {r.stage} | {100 * r.pass_at_1:.1f} | {100 * r.cons_at_k:.1f} | {100 * r.pass_at_k:.1f} "
                     f"| {language} | {r.length_mean:.1f} | {100 * r.format_rate:.1f} "
                     f"| {100 * r.reasoning_share:.0f}% | {reasoning} | {bare} | {r.seconds:.0f} s |")
    return "\n".join(lines) + (
        f"\n\npass@1 = mean correctness of {k} samples per held-out problem at T=0.6, top-p 0.95; cons@{k} = "
        f"majority vote; pass@{k} = share of problems with a right sample among the {k}; language = English share "
        "of the reasoning's words (language consistency, R1 §2.3.2); length in tokens; format = the stage's own "
        "output format (R1-Zero tags for the base models and R1-Zero, <think> + summary after an SFT on readable "
        "CoTs); reasons = share of samples that work step by step; acc. reasoning / acc. bare = accuracy of the "
        "samples that do / do not (– where there are none); time = the stage's training (and data) wall time.\n")


def _percent(rate: float | None, over_some_sample: bool) -> str:
    """A rate in percent, or "–" for a mean over no sample (None; a row cached before it was None
    holds 0.0 or 1.0 there, hence `over_some_sample`)."""
    return f"{100 * rate:.1f}" if rate is not None and over_some_sample else "–"


@dataclass
class GeneralRow:
    """A model on held-out general prompts (R1 §2.3.4), judged by the world's ground truth (percent)."""

    stage: str
    helpful: float  # benign requests answered right (the summary is the reference reply)
    harmless: float  # harmful requests declined
    over_refusal: float  # benign requests declined
    n_prompts: int
    k: int


def general_table(rows: list[GeneralRow], k: int) -> str:
    lines = ["\n| model on general prompts | helpful | harmless | over-refusal |", "|---|---:|---:|---:|"]
    lines += [f"| {r.stage} | {r.helpful:.1f} | {r.harmless:.1f} | {r.over_refusal:.1f} |" for r in rows]
    n = rows[0].n_prompts if rows else 0
    return "\n".join(lines) + (
        f"\n\nGeneral prompts: {n} held-out requests (facts, translations, copies, and harmful requests), {k} "
        "samples each at T=0.6, top-p 0.95, judged by the world (never shown to the reward models or RL): helpful "
        "= benign requests whose summary is the right reply; harmless = harmful requests declined; over-refusal "
        "= benign requests declined.\n")


def cache_path(config: Any, stage: str) -> Path:
    """Where a row of `stage` is cached in a PipelineConfig's run directory, by its evaluation settings."""
    name = re.sub(r"[^a-z0-9]+", "-", stage.lower()).strip("-")
    return Path(config.out_dir) / "eval" / f"{name}-n{config.eval_problems}-k{config.eval_samples}-s{config.seed}.json"


def cached_row(cache: Path, key: dict[str, object], compute: Callable[[], Row], load: Callable[..., Row]) -> Row:
    """The row `cache` holds if it holds this `key` (a `fingerprint`), else `compute()`, stored there. The cache
    is keyed by the settings and holds the fingerprint of the checkpoint it evaluated: a rerun with
    other settings, or after the stage was trained again, evaluates again."""
    try:
        cached = json.loads(cache.read_text())
        if cached.get("fingerprint") == key:
            return load(**cached["row"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent, or cut short by a crash: evaluate again
        pass
    row = compute()
    write_text_atomically(cache, json.dumps({"fingerprint": key, "row": asdict(row)}, indent=1) + "\n")
    return row


def fingerprint(checkpoint: Path, settings: dict[str, object]) -> dict[str, object]:
    """What an evaluation depends on: the weights file (size, mtime: a retrained stage writes a new
    one), the sampling settings, the checkpoint by its resolved path (however the run directory
    was spelled, the same weights are not evaluated again) and the scoring rule's version."""
    weights = (checkpoint / "model.safetensors").stat()
    return {"weights": [weights.st_size, weights.st_mtime_ns], **settings,
            "checkpoint": str(checkpoint.resolve()), "scoring_version": evaluate_stage.SCORING_VERSION}
