"""Does the miniature world's held-out accuracy come from expressions seen in pretraining?

No held-out question is a pretraining problem, but chains of small numbers share steps: a held-out
expression can be written inside a pretraining document (as the remainder of a longer worked
solution, "so 27+1-2.", or as a countdown answer). This splits the held-out problems of the demo's
evaluation (200 problems, seed 1, 8 samples at T=0.6, top-p 0.95, up to 192 tokens) by operand
count and by whether their expression occurs as a whole expression anywhere in the pretraining
corpus, and gives each checkpoint's pass@1 per group. Ends with one JSON line.

    .venv/bin/python benchmarks/heldout_overlap.py [--checkpoint NAME=DIR ...]
    # after `make demo`: --checkpoint base=r1lab/assets/base-tiny --checkpoint r1-zero=runs/demo/zero/policy
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from r1lab.stages.sample_eval import SampleEvalConfig, evaluate_checkpoint
from r1lab.world import heldout_problems, pretraining_documents


def occurs_as_whole_expression(expression: str, text: str) -> bool:
    """`expression` in `text` with no operand or operator glued to either side ("so 27+1-2." counts,
    "27+1-2+5" and "127+1-2" do not)."""
    return re.search(r"(?<![\d(+\-*])" + re.escape(expression) + r"(?![\d+\-*])", text) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                        help="a checkpoint to score (repeatable; default: the shipped base model)")
    parser.add_argument("--corpus-docs", type=int, default=150_000, help="pretraining documents searched (the base's)")
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--n-problems", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1, help="held-out draw and sampling seed (the demo's: 1)")
    args = parser.parse_args()
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint) or {"base": "r1lab/assets/base-tiny"}
    text = "\n".join(d.text for d in pretraining_documents(args.corpus_seed, args.corpus_docs))
    problems = heldout_problems(args.n_problems, seed=args.seed)
    group = [f"{p.difficulty}-operand, "
             f"{'in corpus' if occurs_as_whole_expression(p.chain.expression(), text) else 'not in corpus'}"
             for p in problems]
    result: dict = {"benchmark": "heldout_overlap", "corpus_docs": args.corpus_docs, "n_problems": len(problems),
                    "groups": {g: group.count(g) for g in sorted(set(group))},
                    "in_corpus": sum(g.endswith(", in corpus") for g in group), "pass_at_1": {}}
    for name, directory in checkpoints.items():
        config = SampleEvalConfig(checkpoint=directory, n_problems=args.n_problems, k=8, max_new_tokens=192,
                                  seed=args.seed)  # the template the checkpoint was trained with
        scores = evaluate_checkpoint(config).problems
        assert [s.id for s in scores] == [p.id for p in problems]  # the same held-out draw
        by_group: dict[str, list[float]] = {}
        for g, score in zip(group, scores):
            for key in (g, g.split(", ")[1]):  # its operand count's group and the seen/unseen total
                by_group.setdefault(key, []).append(score.pass_at_1)
        result["pass_at_1"][name] = {"all": round(100 * sum(s.pass_at_1 for s in scores) / len(scores), 1),
                                     **{g: round(100 * sum(v) / len(v), 1) for g, v in sorted(by_group.items())}}
        print(f"{name}: {result['pass_at_1'][name]}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
