"""The eval report table (review helper 'evaltable')."""

from r1lab.benchmarks import Problem
from r1lab.stages.evaluate import score_completions

PROBLEMS = [Problem(id=str(i), prompt="q", answer=gold, source="hand") for i, gold in enumerate(["5", "7"])]


def test_a_k1_table_has_one_pass_at_1_column():
    """At k = 1 the unbiased pass@k is pass@1: the table had two columns headed 'pass@1'."""
    result = score_completions(PROBLEMS, {0: ["\\boxed{5}"], 1: ["\\boxed{8}"]})
    assert result.to_markdown() == (
        "| data | problems | samples | pass@1 | cons@1 | no answer |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| hand | 2 | 2 | 50.0 | 50.0 | 0.0 |\n"
        "\n"
        "pass@1: mean correctness over the samples; cons@1: majority vote over 1 final answer. Values in %.\n")


def test_a_k2_table_keeps_its_pass_at_k_column():
    result = score_completions(PROBLEMS, {0: ["\\boxed{5}", "\\boxed{6}"], 1: ["\\boxed{8}", "\\boxed{7}"]})
    assert result.to_markdown() == (
        "| data | problems | samples | pass@1 | pass@2 | cons@2 | no answer |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        "| hand | 2 | 4 | 50.0 | 100.0 | 50.0 | 0.0 |\n"
        "\n"
        "pass@1: mean correctness over the samples; pass@2: unbiased estimate; "
        "cons@2: majority vote over 2 final answers. Values in %.\n")
