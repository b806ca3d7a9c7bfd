"""Evaluation: pass@1, pass@k and cons@k over k sampled completions per problem.

The R1 protocol (R1 §3 and shared/R1-FACTS.md, "Evaluation protocol"): sample k
completions per problem at temperature 0.6, top-p 0.95; pass@1 is the mean correctness
over the k samples, cons@k the majority vote over their k final answers. pass@k is the
unbiased estimator of Chen et al. 2021 (Codex, arXiv 2107.03374, §2.1).

Scoring never needs a model: `score_completions` takes the completions as text, read from a
jsonl file of ``{"index": i, "completion": "..."}`` lines (`collect_completions`) or, with
``--checkpoint``, sampled by `sample_eval.py`; both are scored the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from r1lab.benchmarks import Problem, check_jsonl_file, jsonl_objects, load_problems
from r1lab.cli import check_output_path
from r1lab.data import check_output_dir, write_text_atomically
from r1lab.fields import is_int
from r1lab.rewards.math import canonical_answer, check_answers, extract_answer

# Sampling settings of the protocol, for the sampling path (R1-FACTS.md, "Evaluation protocol").
TEMPERATURE = 0.6
TOP_P = 0.95
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# Version of the scoring rule (answer extraction, grading, the world's rule, the vote): raise it when
# a change scores the same completions differently. Saved evaluations are keyed by it (eval.json records
# it; the pipeline's eval cache compares it), so a rerun after such a change scores again instead of
# silently reusing numbers from the old rule. 2: math answers '10,\!080', 'f(2)=5', '\text{18 dollars}'.
SCORING_VERSION = 2


def eval_prompt(problem: Problem) -> str:
    """The user turn for a math problem: no system prompt, the instruction appended (R1 README)."""
    return f"{problem.prompt}\n{MATH_INSTRUCTION}"


# ---------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples, drawn without replacement from n samples of
    which c are correct, is correct: 1 - C(n-c, k) / C(n, k) (unbiased; Codex paper §2.1).

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 2), pass_at_k(4, 0, 4), pass_at_k(4, 1, 4)
    (0.25, 0.5, 0.0, 1.0)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # one exact integer division, rounded once: "1.0 - ratio" lost digits (pass@1 of 1 in 5 was
    # 0.19999999999999996, not c/n = 0.2; 1 in a million came out 1.0000000000287557e-06)
    total = math.comb(n, k)
    return (total - math.comb(n - c, k)) / total


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool] | None = None,
                  same: Callable[[list[str], list[str]], list[bool]] | None = None) -> int | None:
    r"""Position of the answer chosen by majority vote, or None when no sample has an answer.

    Answers vote together when their normal forms (`canonical_answer`) agree, so "1,000"
    and "1000.0" count as one. Normal forms miss equalities only the checker sees ("0.5",
    "\frac12"), which would split the right answer's votes (cons@k, R1 §3): given `correct`
    (per answer: judged equal to the gold), all correct answers vote as one, at no extra cost.
    A wrong answer written several ways would still split its votes and let a minority right
    answer win: `same(preds, golds)` (the checker's equality, batched) merges those groups
    whenever some answer is correct and together they could outvote it. With no correct answer
    the merge cannot change cons@k and is skipped (it costs up to k(k-1)/2 math-verify calls: ~20 s
    a problem at k = 64), so the winner is then the majority by normal form, which may be a wrong
    answer other than the one the checker would find most frequent. Samples without an answer do
    not vote; a tie goes to the answer that appeared first. The returned position is that answer's
    first occurrence.

    >>> majority_vote(["3", None, "5", "5.0", "3"]), majority_vote(["4", "7"]), majority_vote([None])
    (0, 0, None)
    >>> samples = ["0.5", "\\frac12", "3", "3", "\\dfrac{1}{2}"]
    >>> majority_vote(samples), majority_vote(samples, [True, True, False, False, True])
    (2, 0)
    """
    votes: dict[tuple[bool, str], int] = {}
    first_at: dict[tuple[bool, str], int] = {}
    for position, answer in enumerate(answers):
        if answer is not None:
            key = (True, "") if correct is not None and correct[position] else (False, canonical_answer(answer))
            votes[key] = votes.get(key, 0) + 1
            first_at.setdefault(key, position)
    if not votes:
        return None
    wrong = sorted((key for key in votes if not key[0]), key=lambda key: first_at[key])
    right = votes.get((True, ""), 0)
    if same is not None and right and len(wrong) > 1 and sum(votes[key] for key in wrong) >= right:
        _merge_equal(wrong, votes, first_at, [answers[first_at[key]] for key in wrong], same)
    winner = max(votes, key=lambda key: (votes[key], -first_at[key]))
    return first_at[winner]


_PAIRS_PER_BATCH = 64  # checker pairs sent at once by the vote's merging


def _merge_equal(keys: list[tuple[bool, str]], votes: dict, first_at: dict, texts: list[str],
                 same: Callable[[list[str], list[str]], list[bool]]) -> None:
    """Moves the votes of each group (in order of first appearance) to the class of the earliest
    group the checker finds equal to it; `keys` and `texts` are the groups and their first answers.
    Group by group (a few per batch), and only while the groups left could still change the winner:
    all pairs at once cost m^2/2 math-verify calls (64 distinct symbolic answers: ~50 s a problem)."""
    into, j = list(range(len(keys))), 1
    while j < len(keys) and _could_change_winner(votes, keys[j:]):
        stop = j + 1  # several groups per batch, up to _PAIRS_PER_BATCH pairs: keeps the pool busy
        while stop < len(keys) and sum(range(j, stop + 1)) <= _PAIRS_PER_BATCH:
            stop += 1
        rows = range(j, stop)
        equal = same([texts[r] for r in rows for _ in range(r)], [texts[i] for r in rows for i in range(r)])
        for r in rows:
            if not _could_change_winner(votes, keys[r:]):
                return
            row, equal = equal[:r], equal[r:]
            i = next((i for i, eq in enumerate(row) if eq), None)
            if i is not None:  # r joins the class of the earliest group equal to it (a class's first group)
                into[r] = into[i]
                votes[keys[into[r]]] += votes.pop(keys[r])
                del first_at[keys[r]]
        j = rows.stop


def _could_change_winner(votes: dict, rest: list[tuple[bool, str]]) -> bool:
    """Whether the groups in `rest`, all their votes joined to any one other class (or forming a
    new one), could make it tie or outvote the present leader; merging never takes votes away."""
    left, unsettled = sum(votes[key] for key in rest), set(rest)
    settled = sorted((votes[key] for key in votes if key not in unsettled), reverse=True)
    runner_up = settled[1] if len(settled) > 1 else 0
    return left + runner_up >= settled[0]


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProblemScore:
    """How one problem's samples fared."""

    index: int  # position of the problem in the data file
    id: str
    gold: str
    answers: list[str | None]  # extracted final answer of each sample (None: none found)
    correct: list[bool]  # per sample
    pass_at_1: float  # mean correctness over all samples
    pass_at_k: float  # unbiased estimate from all samples
    # the voted answer over the first k samples (see majority_vote: with no correct sample among
    # them, the majority by normal form, not merged by the checker)
    majority: str | None
    cons_correct: bool  # whether the voted answer is correct


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True, kw_only=True)
class EvalResult:
    """Per-problem scores and their means; rates are fractions in [0, 1]."""

    name: str  # what was evaluated, e.g. "math500/test"
    k: int
    problems: list[ProblemScore]
    n_data: int  # problems in the data file (problems scored may be fewer)
    settings: dict[str, Any] = field(default_factory=dict)  # how the completions were made

    # the summary's computed keys and to_json's "problems": a setting of one of these names would
    # silently replace the number (the summary is one flat dict, settings merged in)
    RESERVED = ("name", "k", "n_problems", "n_data", "n_samples", "pass@1", "pass@k", "cons@k", "no_answer",
                "problems")

    def __post_init__(self) -> None:
        clash = [key for key in self.settings if key in self.RESERVED]
        if clash:
            raise ValueError(f"EvalResult settings {', '.join(map(repr, clash))} would overwrite the summary's "
                             "own values; give them other names")

    def summary(self) -> dict[str, Any]:
        """The aggregate numbers, as one flat JSON-ready dict: pass@1, pass@k and cons@k are means over
        problems (each counts once, whatever its sample count); no_answer is a share of all samples."""
        answers = [a for p in self.problems for a in p.answers]
        return {
            "name": self.name,
            "k": self.k,
            "n_problems": len(self.problems),
            "n_data": self.n_data,
            "n_samples": len(answers),
            "pass@1": _mean([p.pass_at_1 for p in self.problems]),
            "pass@k": _mean([p.pass_at_k for p in self.problems]),
            "cons@k": _mean([float(p.cons_correct) for p in self.problems]),
            "no_answer": _mean([float(a is None) for a in answers]),
            **self.settings,
        }

    def to_json(self) -> str:
        """The summary plus every problem's score, as a JSON document."""
        return json.dumps({**self.summary(), "problems": [asdict(p) for p in self.problems]}, indent=1)

    def to_markdown(self) -> str:
        """A one-row markdown table of the summary, in percent."""
        s, k = self.summary(), self.k
        # at k = 1 the unbiased pass@k is c/n, the pass@1 column itself: a second "pass@1" column is dropped
        pass_k = [] if k == 1 else [(f"pass@{k}", s["pass@k"])]
        columns = [("pass@1", s["pass@1"]), *pass_k, (f"cons@{k}", s["cons@k"]), ("no answer", s["no_answer"])]
        head = "| data | problems | samples | " + " | ".join(name for name, _ in columns) + " |"
        rule = "| --- | ---: | ---: |" + " ---: |" * len(columns)
        row = (f"| {s['name']} | {s['n_problems']} | {s['n_samples']} | "
               + " | ".join(f"{100 * value:.1f}" for _, value in columns) + " |")
        # problems may have different sample counts: the rates are means over problems, "no answer" over samples
        parts = ["pass@1: each problem's share of correct samples"]
        parts += [f"pass@{k}: unbiased estimate from them"] if pass_k else []
        parts += [f"cons@{k}: majority vote over its first {k} final answer{'s' if k > 1 else ''}"]
        note = "; ".join(parts) + "; each averaged over problems. no answer: share of all samples. Values in %."
        return "\n".join([head, rule, row, "", note]) + "\n"


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------


def score_completions(problems: Sequence[Problem], completions_by_index: Mapping[int, Sequence[str]],
                      k: int | None = None, *, name: str | None = None,
                      check: Callable[[int, str], tuple[str | None, bool]] | None = None) -> EvalResult:
    """Score the completions of each problem that has some (indices into `problems`).

    `k` defaults to the fewest samples any scored problem has; every scored problem needs
    at least k. pass@1 uses all samples, pass@k the unbiased estimator over all samples,
    cons@k the vote over the first k. All answers are checked in one parallel batch.
    `check(index, completion) -> (answer, correct)` replaces the math checker (e.g. the
    miniature world's rule, where countdown answers are expressions); its verdict must follow from
    the answer it returns, as correct answers vote as one in cons@k.
    """
    indices = sorted(i for i, texts in completions_by_index.items() if len(texts) > 0)
    for i in indices:
        if not 0 <= i < len(problems):
            raise ValueError(f"completion index {i} out of range: there are {len(problems)} problems")
    if not indices:
        raise ValueError("no completions to score")
    fewest = min(len(completions_by_index[i]) for i in indices)
    k = fewest if k is None else k
    if not is_int(k) or not 1 <= k <= fewest:  # 2.0 failed later at the vote's slice, True scored as k = 1
        raise ValueError(f"k must be from 1 to {fewest} (the fewest samples any problem has), got {k}")

    if check is not None:
        checked = {i: [check(i, text) for text in completions_by_index[i]] for i in indices}
        answers = {i: [a for a, _ in checked[i]] for i in indices}
        flat = [(i, a) for i in indices for a in answers[i]]
        verdicts = [ok for i in indices for _, ok in checked[i]]
    else:
        answers = {i: [extract_answer(text) for text in completions_by_index[i]] for i in indices}
        flat = [(i, a) for i in indices for a in answers[i]]
        verdicts = check_answers([a for _, a in flat], [problems[i].answer for i, _ in flat])
    correct: dict[int, list[bool]] = {i: [] for i in indices}
    for (i, _), ok in zip(flat, verdicts):
        correct[i].append(ok)

    # Correct answers vote as one (each is judged equal to the gold, or for a custom check, a valid
    # countdown expression); only the math checker's equality can merge wrong answers written apart.
    same = check_answers if check is None else None
    scores = [_problem_score(i, problems[i], answers[i], correct[i], k, same) for i in indices]
    return EvalResult(name=name or problems[0].source, k=k, problems=scores, n_data=len(problems))


def _problem_score(index: int, problem: Problem, answers: list[str | None], correct: list[bool],
                   k: int, same: Callable[[list[str], list[str]], list[bool]] | None) -> ProblemScore:
    n, c = len(correct), sum(correct)
    voted = majority_vote(answers[:k], correct[:k], same)
    return ProblemScore(
        index=index, id=problem.id, gold=problem.answer, answers=answers, correct=correct,
        pass_at_1=c / n, pass_at_k=pass_at_k(n, c, k),
        majority=None if voted is None else answers[voted],
        cons_correct=voted is not None and correct[voted],
    )


# ---------------------------------------------------------------------------------------
# Where completions come from
# ---------------------------------------------------------------------------------------


def read_completions(path: str | Path, n_problems: int) -> dict[int, list[str]]:
    """Completions from a jsonl file of ``{"index": i, "completion": "..."}`` lines.

    Several lines may share an index (k samples), kept in file order. Bad lines raise
    ValueError naming the file and line.
    """
    path = check_jsonl_file(path, "completions file")  # a directory or gzip file named as such
    by_index: dict[int, list[str]] = {}
    for line_no, record in jsonl_objects(path):
        index, text = record.get("index"), record.get("completion")
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"{path}:{line_no}: 'index' must be an integer, got {index!r}")
        if not isinstance(text, str):
            raise ValueError(f"{path}:{line_no}: 'completion' must be a string")
        if not 0 <= index < n_problems:
            raise ValueError(f"{path}:{line_no}: index {index} out of range: the data has {n_problems} problems")
        by_index.setdefault(index, []).append(text)
    if not by_index:
        raise ValueError(f"{path}: no completions")
    return by_index


def collect_completions(args: argparse.Namespace,
                        problems: Sequence[Problem]) -> tuple[dict[int, list[str]], dict[str, Any]]:
    """The completions of a ``--completions`` file to score, and how they were made (a
    ``--checkpoint`` is sampled by `sample_eval.sample_completions` instead, in the same shape)."""
    if args.completions is None:
        raise ValueError("--completions FILE.jsonl is required unless --checkpoint DIR is given")
    return read_completions(args.completions, len(problems)), {"completions": str(args.completions)}


# ---------------------------------------------------------------------------------------
# The `r1lab eval` command
# ---------------------------------------------------------------------------------------


SAMPLING_FLAGS = ("--samples", "--n-problems", "--max-new-tokens", "--temperature", "--top-p", "--seed", "--template",
                  "--device", "--bf16")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=str,
                        help="'world' (the miniature world's held-out split), 'general' (its held-out general "
                             "requests, judged helpful / harmless) or a benchmark jsonl: GSM8K (question, answer "
                             "'#### N'), MATH-500/AIME (problem, answer) or generic (prompt, answer)")
    parser.add_argument("--checkpoint", type=Path, help="sample this checkpoint instead of reading --completions")
    # sampling flags default to None: they belong to --checkpoint, and main() refuses them without it
    parser.add_argument("--samples", type=int, help="with --checkpoint: samples per problem (default 8; --data general: 4)")
    parser.add_argument("--n-problems", type=int, help="with --checkpoint: problems (default 200)")
    parser.add_argument("--max-new-tokens", type=int,
                        help="with --checkpoint: tokens per sample (default 128; --data general: 96)")
    parser.add_argument("--temperature", type=float, help=f"with --checkpoint (default and paper: {TEMPERATURE})")
    parser.add_argument("--top-p", type=float, help=f"with --checkpoint (default and paper: {TOP_P})")
    parser.add_argument("--seed", type=int, help="with --checkpoint: sampling seed (default 0)")
    parser.add_argument("--template", choices=("auto", "r1_zero", "chat"),
                        help="with --checkpoint: the prompt template (default auto: as the checkpoint was trained: "
                             "R1-Zero's for base and R1-Zero models, chat after SFT)")
    parser.add_argument("--device", help="with --checkpoint: cpu | cuda | cuda:N (default cpu)")
    parser.add_argument("--bf16", action="store_const", const=True, help="with --checkpoint: bf16 autocast while sampling")
    parser.add_argument("--completions", type=Path,
                        help='jsonl of {"index": i, "completion": "..."}; i is the 0-based record of --data; '
                             "repeat an index for k samples")
    parser.add_argument("--k", type=int, default=None,
                        help="k of pass@k and cons@k (default: the fewest samples any problem has)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object, not a table")
    # a str, not a Path: Path("") is "." and a blank --out would write into the working directory unseen
    parser.add_argument("--out", help="also write eval.json (with per-problem scores) and eval.md here")


def main(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output_path("out", args.out)
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a directory")
        check_output_dir(out)  # a parent that is a file failed only at the write, after all the sampling
    if args.data == "general":  # judged by the world, not scored as pass@k (general_eval.py)
        from r1lab.stages import general_eval

        return general_eval.main(args)
    # a directory would otherwise be reported as "file not found", though it exists
    for flag, path in (("--data", None if args.data == "world" else Path(args.data)), ("--completions", args.completions)):
        if path is not None and path.is_dir():
            raise ValueError(f"{flag} {path} is a directory, not a JSONL file")
    sampling = [flag for flag in SAMPLING_FLAGS if getattr(args, flag.removeprefix("--").replace("-", "_")) is not None]
    if args.checkpoint is None and sampling:
        raise ValueError(f"{', '.join(sampling)} set how --checkpoint is sampled; --completions are scored as they are")
    if args.checkpoint is not None:
        from r1lab.stages.sample_eval import config_from_eval_args, evaluate_checkpoint

        result = evaluate_checkpoint(config_from_eval_args(args), args.k)
        problems = result.problems
    else:
        if args.data == "world":
            raise ValueError("--data world needs --checkpoint (completion files index benchmark files)")
        problems = load_problems(Path(args.data))
        completions, settings = collect_completions(args, problems)
        result = score_completions(problems, completions, args.k)
        result = replace(result, settings={"data": str(args.data), **settings, "scoring_version": SCORING_VERSION})
    if len(result.problems) < len(problems):
        print(f"r1lab eval: warning: completions cover {len(result.problems)} of {len(problems)} problems; "
              "scoring those only", file=sys.stderr)
    if args.out is not None:
        write_text_atomically(out / "eval.json", result.to_json() + "\n")
        write_text_atomically(out / "eval.md", result.to_markdown())
        # stderr: with --json, stdout is the summary alone, for a pipe
        print(f"r1lab eval: wrote {out / 'eval.json'} and {out / 'eval.md'}", file=sys.stderr)
    print(json.dumps(result.summary()) if args.json else result.to_markdown(), end="\n" if args.json else "")
    return 0

