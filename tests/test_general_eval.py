"""Judging a checkpoint on held-out general prompts: `general_eval.evaluate_general` and
`r1lab eval --data general`."""

import json
import math

import pytest

from r1lab import cli
from r1lab.engine import Completion
from r1lab.pipeline import SHIPPED_BASE
from r1lab.stages import general_eval
from r1lab.world.general import HELDOUT, REFUSAL, general_prompts


def scripted_engine(prompts, asked):
    """An engine whose k = 3 replies are, for benign prompts, right / wrong / declined, and for
    harmful ones declined / declined / complied."""

    class ScriptedEngine:
        def __init__(self, model, tokenizer, autocast_dtype=None):
            pass

        def generate(self, ids, params):
            asked.append((len(ids), params.n, params.temperature, params.top_p))
            replies = [[p.reference, "nothing useful", REFUSAL] if not p.harmful else [REFUSAL, REFUSAL, "Sure."]
                       for p in prompts]
            return [[Completion(prompt_index=i, token_ids=[], logprobs=[], finish_reason="stop", text=f"{t}<|eos|>")
                     for t in group] for i, group in enumerate(replies)]

    return ScriptedEngine


def test_evaluate_general_counts_each_column_over_its_own_prompts(monkeypatch):
    prompts, asked = general_prompts(10, HELDOUT, seed=1), []
    monkeypatch.setattr(general_eval, "Engine", scripted_engine(prompts, asked))
    result = general_eval.evaluate_general(SHIPPED_BASE, n_prompts=10, k=3, seed=1)
    assert asked == [(10, 3, 0.6, 0.95)]  # the paper's sampling
    assert any(p.harmful for p in prompts) and not all(p.harmful for p in prompts)
    # helpful 1 of 3 benign samples, harmless 2 of 3 harmful ones, over-refusal 1 of 3 benign
    assert (result.helpful, result.harmless, result.over_refusal) == (33.3, 66.7, 33.3)


def test_a_column_over_no_sample_is_nan_and_null_in_json(monkeypatch, capsys):
    prompts, asked = general_prompts(3, HELDOUT, seed=0, harmful_share=0.0), []
    monkeypatch.setattr(general_eval, "general_prompts", lambda n, split, seed, harmful_share: prompts)
    monkeypatch.setattr(general_eval, "Engine", scripted_engine(prompts, asked))
    assert math.isnan(general_eval.evaluate_general(SHIPPED_BASE, n_prompts=3, k=3).harmless)
    assert cli.main(["eval", "--data", "general", "--checkpoint", str(SHIPPED_BASE), "--n-problems", "3",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["harmless"] is None and summary["helpful"] == 33.3


@pytest.mark.parametrize("name,value", [("n_prompts", 0), ("k", 0), ("max_new_tokens", 0), ("k", 2.5),
                                        ("device", "gpu"), ("seed", -1)])
def test_bad_settings_fail_before_the_model_loads(name, value, monkeypatch):
    monkeypatch.setattr(general_eval, "from_pretrained", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises((ValueError, TypeError), match=name if name != "device" else "device"):
        general_eval.evaluate_general(SHIPPED_BASE, **{name: value})


def test_eval_data_general_samples_the_checkpoint_and_writes_out(tmp_path, capsys):
    """The shipped base on 6 held-out requests, 2 samples each: a real run, the same twice."""
    argv = ["eval", "--data", "general", "--checkpoint", str(SHIPPED_BASE), "--n-problems", "6", "--samples", "2",
            "--max-new-tokens", "12", "--seed", "3"]
    assert cli.main([*argv, "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("n_prompts", "k", "max_new_tokens", "seed", "temperature", "top_p")} == {
        "n_prompts": 6, "k": 2, "max_new_tokens": 12, "seed": 3, "temperature": 0.6, "top_p": 0.95}
    for column in ("helpful", "harmless", "over_refusal"):  # percentages of 2 x (benign or harmful) samples
        assert summary[column] is None or 0 <= summary[column] <= 100
    assert json.loads((tmp_path / "eval.json").read_text()) == summary
    table = (tmp_path / "eval.md").read_text()
    assert table.startswith("| model on general prompts | helpful | harmless | over-refusal |")
    assert cli.main(argv) == 0  # the table on stdout, the same scores (seeded)
    assert capsys.readouterr().out == table


@pytest.mark.parametrize("extra,message", [
    ([], "needs --checkpoint"),
    (["--checkpoint", "x", "--temperature", "1.0"], "--temperature does not apply"),
    (["--checkpoint", "x", "--top-p", "0.9"], "--top-p does not apply"),
    (["--checkpoint", "x", "--template", "chat"], "--template does not apply"),
    (["--checkpoint", "x", "--k", "2"], "--k does not apply"),
    (["--checkpoint", "x", "--completions", "c.jsonl"], "--completions does not apply"),
])
def test_eval_data_general_refuses_flags_that_do_not_apply(extra, message, capsys):
    assert cli.main(["eval", "--data", "general", *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag,value,name", [("--n-problems", "0", "n_prompts"), ("--samples", "0", "k"),
                                             ("--max-new-tokens", "0", "max_new_tokens")])
def test_eval_data_general_refuses_zero_counts(flag, value, name, capsys):
    """0 is a value, not "use the default"."""
    assert cli.main(["eval", "--data", "general", "--checkpoint", str(SHIPPED_BASE), flag, value]) == 2
    assert f"{name} must be >= 1, got 0" in capsys.readouterr().err


def test_defaults_match_evaluate_general():
    import inspect

    params = inspect.signature(general_eval.evaluate_general).parameters
    assert general_eval.DEFAULTS == {name: params[name].default for name in general_eval.DEFAULTS}
