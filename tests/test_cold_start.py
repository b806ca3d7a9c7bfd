"""Cold-start data (R1 §2.3.1): R1-Zero samples rewritten and filtered, world long CoT, provenance, stats."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

import r1lab
import r1lab.world as world
from r1lab.cli import main as cli_main
from r1lab.data import read_sft_jsonl
from r1lab.engine import Completion
from r1lab.filters import Deduper, is_r1_format
from r1lab.prompts import R1_ZERO, prompt_ids
from r1lab.stages import cold_start
from r1lab.stages.cold_start import ColdStartConfig, readable_from_r1_zero
from r1lab.tokenizer import Tokenizer

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"  # the shipped pretrained tiny model


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(BASE)


class FakeEngine:
    """Stands in for `Engine`: returns scripted groups of completions, one per prompt, in order."""

    def __init__(self, groups: list[list[tuple[str, str]]]) -> None:
        self.groups, self.calls = list(groups), []

    def generate(self, prompts, params):
        self.calls.append((prompts, params))
        out = []
        for i in range(len(prompts)):
            out.append([Completion(prompt_index=i, token_ids=[], logprobs=[], finish_reason=finish, text=text)
                        for text, finish in self.groups.pop(0)])
        return out


def done(text: str) -> tuple[str, str]:
    return " " + text + "<|eos|>", "stop"


def zero(problem, intro="Step by step.", steps=None, answer=None) -> str:
    """An R1-Zero completion: the steps of the problem's chain, then the answer in tags."""
    steps = steps if steps is not None else " ".join(f"{s.text()}." for s in problem.chain.steps())
    return f"<think> {intro} {steps} </think> <answer> {problem.answer if answer is None else answer} </answer>"


def test_rewrite_puts_one_sentence_per_line_and_a_phrasebook_summary():
    problem = world.rl_prompts(1)[0]
    text = (" <think> Let me compute step by step. First, 20-8=12, so 12+4. Next, 12+4=16. </think> "
            "<answer> 16 </answer><|eos|>")
    assert readable_from_r1_zero(text, problem) == (
        "<think>\nLet me compute step by step.\nFirst, 20-8=12, so 12+4.\nNext, 12+4=16.\n</think>\n"
        "The value of 20-8+4 is 16.")
    assert readable_from_r1_zero(text, problem, "vl").endswith("\n</think>\nKeta 20-8+4 ve 16.")
    assert readable_from_r1_zero("<answer> 16 </answer>", problem) is None
    assert readable_from_r1_zero("<think>   </think> <answer> 16 </answer>", problem) is None


def test_rewrite_of_a_countdown_sample_summarises_the_models_own_expression():
    problem = world.rl_prompts(1, kinds=("countdown",))[0]
    expression = problem.chain.expression()
    work = ", ".join(s.text() for s in problem.chain.steps())
    text = f"<think> Try {work}. We get {problem.answer}. </think> <answer> {expression} </answer>"
    response = readable_from_r1_zero(text, problem)
    assert response.endswith(f"</think>\nSo the answer is {expression}.") and is_r1_format(response)
    assert world.check_completion(problem, response)


def test_r1_zero_samples_are_kept_only_when_correct_and_readable(tokenizer):
    p0, p1 = world.rl_prompts(2)
    s0 = " ".join(f"{s.text()}." for s in p0.chain.steps())
    long_line = "First, " + ", so ".join([s.text() for s in p1.chain.steps()] * 5) + "."
    groups = [[
        done(zero(p0)),  # 0 kept
        done(zero(p0)),  # 1 duplicate of 0
        done(zero(p0, answer=p0.answer + 1)),  # 2 wrong
        (" " + zero(p0), "length"),  # 3 not finished
        done(f"<think> Step by step. {s0} </think> {p0.answer}"),  # 4 correct, not R1-Zero's format
        done(zero(p0, intro="", steps=f"The answer is {p0.answer}.")),  # 5 no reasoning
        done(zero(p0, intro="Sulo pe sulo.")),  # 6 mixes Velari in
        done(zero(p0, steps=f"{s0} {s0}")),  # 7 repeats itself
    ], [
        done(zero(p1)),  # 0 kept
        done(zero(p1, intro="", steps=long_line)),  # 1 one long paragraph
        done(zero(p1, intro="Step by step. ```4+8```")),  # 2 a code block
        done(zero(p1, intro="Let me compute step by step.")),  # 3 kept
        *[done(zero(p1, answer=p1.answer + d)) for d in (1, 2, 3, 4)],  # 4-7 wrong
    ]]
    engine = FakeEngine(groups)
    config = ColdStartConfig(zero_checkpoint="zero/policy", n_prompts=2, samples_per_prompt=8, seed=3)
    examples, funnel = cold_start.zero_examples(engine, tokenizer, [p0, p1], config, Deduper())

    assert [(e.meta["prompt_id"], e.meta["sample_index"]) for e in examples] == [(p0.id, 0), (p1.id, 0), (p1.id, 3)]
    assert [(f.name, f.reached, f.kept) for f in funnel.filters] == [
        ("finished", 16, 15), ("correct", 15, 10), ("r1_zero_format", 10, 9), ("step_by_step", 9, 8),
        ("reaches_answer", 8, 8), ("r1_format", 8, 8), ("language", 8, 7), ("repetition", 7, 6), ("paragraph_length", 6, 5),
        ("code_block", 5, 4), ("dedupe", 4, 3)]
    assert funnel.kept_fraction == 3 / 16
    first = examples[0]
    assert first.prompt == p0.question and first.response == readable_from_r1_zero(zero(p0), p0)
    assert first.meta == {"source": "r1-zero", "source_checkpoint": "zero/policy", "prompt_id": p0.id, "sample_index": 0,
                          "kind": "arithmetic", "answer": str(p0.answer), "filters_passed": list(cold_start.ZERO_FILTERS)}
    prompts, params = engine.calls[0]
    assert prompts == [prompt_ids(tokenizer, p.question, R1_ZERO) for p in (p0, p1)]
    assert (params.n, params.temperature, params.stop_token_ids, params.seed) == (8, 0.6, (tokenizer.eos_id,), 3 * 1_000_003)


def test_a_sample_that_stopped_past_what_the_world_reads_counts_as_unfinished(tokenizer):
    """As in rejection sampling: a reply whose end the world never reads is not 'finished', rather
    than a wrong answer."""
    (p0,) = world.rl_prompts(1)
    engine = FakeEngine([[done(zero(p0) + " and so on" * 3000)]])  # 30,000 characters, no end of turn
    config = ColdStartConfig(zero_checkpoint="zero/policy", n_prompts=1, samples_per_prompt=1)
    examples, funnel = cold_start.zero_examples(engine, tokenizer, [p0], config, Deduper())
    assert examples == [] and [(f.name, f.reached, f.kept) for f in funnel.filters[:2]] == [("finished", 1, 0), ("correct", 0, 0)]


@pytest.mark.parametrize("language", ["en", "vl"])
def test_world_long_cot_source_is_pretrain_split_and_readable(language):
    config = ColdStartConfig(n_long_cot=12, kinds="arithmetic,countdown", language=language)
    problems = world.problem_set(world.PRETRAIN, 12, seed=config.seed, kinds=config.kind_tuple())
    examples, funnel = cold_start.long_cot_examples(config, problems, Deduper())
    assert funnel.kept == funnel.candidates == 12 and len(examples) == 12
    for example in examples:
        assert example.meta["source"] == "world-long-cot" and example.meta["source_checkpoint"] is None
        assert example.meta["prompt_id"].startswith(example.meta["kind"])
        assert "<|eos|>" not in example.response and "<|bos|>" not in example.response  # the chat template adds them
        assert is_r1_format(example.response) and world.language_consistency(example.response, language) == 1.0
    problems = {p.id: p for p in world.problem_set(world.PRETRAIN, 12, kinds=("arithmetic", "countdown"))}
    assert all(world.check_completion(problems[e.meta["prompt_id"]], e.response) for e in examples)
    assert {e.meta["kind"] for e in examples} == {"arithmetic", "countdown"}


def test_run_writes_data_and_stats_deterministically(tmp_path, monkeypatch, tokenizer):
    p0, p1 = world.rl_prompts(2)
    monkeypatch.setattr(cold_start, "load_engine", lambda checkpoint, bf16=False, device="cpu": (
        FakeEngine([[done(zero(p0)), done(zero(p0, answer=0))], [done(zero(p1)), done(zero(p1))]]), tokenizer))
    config = ColdStartConfig(zero_checkpoint="fake/zero", out=str(tmp_path / "cs" / "data.jsonl"), n_prompts=2,
                             samples_per_prompt=2, n_long_cot=5)
    out = cold_start.run(config)
    examples = read_sft_jsonl(out)
    assert [e.meta["source"] for e in examples] == ["r1-zero"] * 2 + ["world-long-cot"] * 5
    stats = json.loads((tmp_path / "cs" / "data.stats.json").read_text())
    assert stats["examples"] == 7 and stats["data"] == str(out) and stats["config"]["n_long_cot"] == 5
    zero_stats, cot_stats = stats["sources"]
    assert (zero_stats["source"], zero_stats["candidates"], zero_stats["kept"]) == ("r1-zero", 4, 2)
    assert {f["name"]: f["kept"] for f in zero_stats["filters"]}["correct"] == 3
    assert {f["name"]: f["kept"] for f in zero_stats["filters"]}["dedupe"] == 2
    assert (cot_stats["candidates"], cot_stats["kept"]) == (5, 5)
    first = out.read_bytes()
    monkeypatch.undo()
    again = cold_start.run(ColdStartConfig(out=str(tmp_path / "again.jsonl"), n_long_cot=5))
    assert again.read_bytes().decode().splitlines() == first.decode().splitlines()[2:]  # same seed, same long CoT


@pytest.mark.parametrize("seed", [0, 3])
def test_run_draws_the_long_cot_from_the_pretrain_split_with_its_seed(tmp_path, seed):
    """The world's long CoT stands for few-shot prompting on pretraining-split problems (R1 §2.3.1):
    `run` draws them from that split with the run's seed."""
    config = ColdStartConfig(out=str(tmp_path / "data.jsonl"), n_long_cot=6, seed=seed)
    ids = [e.meta["prompt_id"] for e in read_sft_jsonl(cold_start.run(config))]
    assert ids == [p.id for p in world.problem_set(world.PRETRAIN, 6, seed=seed, kinds=config.kind_tuple())]


def test_run_with_the_shipped_base_model(tmp_path):
    """A real (tiny) run: the base model rarely writes R1-Zero's format; the files are well-formed anyway."""
    config = ColdStartConfig(zero_checkpoint=str(BASE), out=str(tmp_path / "data.jsonl"), n_prompts=3,
                             samples_per_prompt=2, max_new_tokens=12, n_long_cot=3, threads=1)
    out = cold_start.run(config)
    examples = read_sft_jsonl(out)
    assert all(is_r1_format(e.response) for e in examples) and len(examples) >= 3
    stats = json.loads(cold_start.stats_path(out).read_text())
    assert [(s["source"], s["candidates"]) for s in stats["sources"]] == [("r1-zero", 6), ("world-long-cot", 3)]
    assert stats["examples"] == len(examples)
    again = cold_start.run(dataclasses.replace(config, out=str(tmp_path / "again.jsonl")))
    assert again.read_text() == out.read_text()  # same seed, same data


def test_missing_checkpoint_fails_before_writing_anything(tmp_path):
    out = tmp_path / "cs" / "data.jsonl"
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        cold_start.run(ColdStartConfig(zero_checkpoint=str(tmp_path / "nope"), out=str(out)))
    assert not out.parent.exists()


def test_config_validation():
    with pytest.raises(ValueError, match="nothing to build"):
        ColdStartConfig(n_long_cot=0)
    with pytest.raises(ValueError, match="kinds"):
        ColdStartConfig(kinds="arithmetic,poetry")
    with pytest.raises(ValueError, match="languages"):
        ColdStartConfig(language="fr")
    with pytest.raises(ValueError, match="samples_per_prompt"):
        ColdStartConfig(samples_per_prompt=0)


def test_cli(tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    assert cli_main(["cold-start", "--out", str(out), "--n-long-cot", "4", "--kinds", "countdown"]) == 0
    assert len(read_sft_jsonl(out)) == 4 and "4 examples" in capsys.readouterr().out
    assert cli_main(["cold-start", "--out", str(out), "--zero-checkpoint", str(tmp_path / "missing")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--temperature", "1.0"], ["--samples-per-prompt", "8", "--bf16"],
                                   ["--n-prompts", "64"], ["--max-new-tokens", "32"], ["--batch-problems", "4"]])
def test_sampling_flags_without_a_zero_checkpoint_are_refused(tmp_path, capsys, flags):
    """Without --zero-checkpoint nothing is sampled: `--temperature 1.0` built the long-CoT set and
    silently ignored it. Now a one-line error names the flag, and nothing is written."""
    out = tmp_path / "d.jsonl"
    assert cli_main(["cold-start", "--out", str(out), "--n-long-cot", "2", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1lab cold-start: error: ") and flags[0] in err and "--zero-checkpoint" in err
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []
    # the defaults, and --n-prompts 0 (sample nothing), agree with having no checkpoint
    assert cli_main(["cold-start", "--out", str(out), "--n-long-cot", "2", "--n-prompts", "0"]) == 0


def test_unusable_out_is_one_line_before_any_work(tmp_path, capsys):
    """A directory or a path under a file as --out: a one-line error up front (not a traceback after
    sampling), and no stray ``.tmp`` left next to it."""
    (tmp_path / "existdir").mkdir()
    (tmp_path / "afile").write_text("x")
    missing = str(tmp_path / "missing-checkpoint")  # checked after --out: the --out error comes first
    for out, message in (("existdir", "existdir: it is a directory"), ("afile/x.jsonl", "afile is a file")):
        assert cli_main(["cold-start", "--out", str(tmp_path / out), "--zero-checkpoint", missing]) == 2
        err = capsys.readouterr().err
        assert err.startswith("r1lab cold-start: error: cannot write") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "existdir"]


def test_an_os_error_while_writing_is_one_line(tmp_path, capsys, monkeypatch):
    def no_permission(path, examples):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cold_start, "write_sft_jsonl", no_permission)
    assert cli_main(["cold-start", "--out", str(tmp_path / "d.jsonl"), "--n-long-cot", "2"]) == 2
    err = capsys.readouterr().err
    assert err == f"r1lab cold-start: error: Permission denied: {tmp_path / 'd.jsonl'}\n"


@pytest.mark.parametrize("sizes", [dict(n_prompts=100_000), dict(n_long_cot=100_000)])
def test_more_problems_than_a_split_holds_fail_before_loading_or_sampling(tmp_path, monkeypatch, sizes):
    """The long-CoT draw came after all of R1-Zero's sampling: minutes lost to a typo."""
    def no_loading(*args, **kwargs):
        raise AssertionError("loaded a model before checking the problem counts")

    monkeypatch.setattr(cold_start, "load_engine", no_loading)
    config = ColdStartConfig(zero_checkpoint="some-checkpoint", out=str(tmp_path / "d.jsonl"), **sizes)
    with pytest.raises(ValueError, match="distinct problems"):
        cold_start.run(config)
    assert list(tmp_path.iterdir()) == []


def test_countdown_verdicts_stay_on_their_attempts_line():
    """One sentence per line put each "We get 30, not 8." on a line of its own: two misses of the
    same value then failed the repetition filter as a loop (~10 % of correct countdown samples)."""
    from r1lab.filters import check_readability
    from r1lab.world.arithmetic import Chain
    from r1lab.world.problems import countdown_problem

    problem = countdown_problem((7, 11, 12), 8, Chain(operands=(12, 11, 7), ops=("-", "+")))
    completion = (" <think> Let me work it out step by step. Try 7+12=19, 19+11=30. We get 30, not 8. "
                  "Try 11+12=23, 23+7=30. We get 30, not 8. Try 12-11=1, 1+7=8. We get 8. </think> "
                  "<answer> 12-11+7 </answer><|eos|>")
    assert world.check_completion(problem, completion)
    response = cold_start.readable_from_r1_zero(completion, problem)
    assert response.splitlines()[2:6] == ["Try 7+12=19, 19+11=30. We get 30, not 8.",
                                          "Try 11+12=23, 23+7=30. We get 30, not 8.",
                                          "Try 12-11=1, 1+7=8. We get 8.", "</think>"]
    assert check_readability(response).ok
    # an arithmetic sample's sentences stay one per line, a verdict-like one too (the demo's rewrites)
    arithmetic = world.rl_prompts(1)[0]
    assert arithmetic.question == "Compute 20-8+4"
    response = cold_start.readable_from_r1_zero(" <think> First, 20-8=12, so 12+4. Next, 12+4=16. We get 16. </think> "
                                                "<answer> 16 </answer><|eos|>", arithmetic)
    assert response.splitlines() == ["<think>", "First, 20-8=12, so 12+4.", "Next, 12+4=16.", "We get 16.", "</think>",
                                     "The value of 20-8+4 is 16."]


def test_a_sample_whose_reasoning_ends_elsewhere_than_its_answer_is_not_kept(tokenizer):
    """A correct answer after reasoning that concluded something else ("12+4=17", or a countdown
    attempt that "gets 30, not 8") was kept, and the rewrite's summary then contradicted the
    reasoning above it. Now the reasoning's last worked step must give the answer."""
    from r1lab.world.arithmetic import Chain
    from r1lab.world.problems import countdown_problem

    p0 = world.rl_prompts(1)[0]  # Compute 20-8+4 = 16
    countdown = countdown_problem((7, 11, 12), 8, Chain(operands=(12, 11, 7), ops=("-", "+")))
    groups = [[
        done(zero(p0, steps="First, 20-8=12, so 12+4. Next, 12+4=16.")),  # 0 kept
        done(zero(p0, intro="Let me compute.", steps="First, 20-8=12, so 12+4. Next, 12+4=17.")),  # 1 ends at 17
        done(zero(p0, intro="Let me see.", steps="First, 20-8=12, so 12+4.")),  # 2 stops at 12
        done(zero(p0, intro="Step.", steps="First, 20-8=12. Next, 12+4=" + "9" * 5000 + ".")),  # 3 huge, no raise
    ], [
        done("<think> Try 7+12=19, 19+11=30. We get 30, not 8. </think> <answer> 12-11+7 </answer>"),  # 0 contradicts
        done("<think> Try 12-11=1, 1+7=8. We get 8. </think> <answer> 12-11+7 </answer>"),  # 1 kept
    ]]
    config = ColdStartConfig(zero_checkpoint="zero/policy", n_prompts=2, samples_per_prompt=4)
    examples, funnel = cold_start.zero_examples(FakeEngine(groups), tokenizer, [p0, countdown], config, Deduper())
    assert [(e.meta["prompt_id"], e.meta["sample_index"]) for e in examples] == [(p0.id, 0), (countdown.id, 1)]
    assert [(f.name, f.reached, f.kept) for f in funnel.filters][3:5] == [("step_by_step", 6, 6),
                                                                          ("reaches_answer", 6, 2)]
    assert examples[0].response.endswith("Next, 12+4=16.\n</think>\nThe value of 20-8+4 is 16.")


def test_a_judges_yes_in_markup_or_quotes_is_a_yes():
    """"**Yes**" or '"Yes."' (markdown or quotes round the verdict) read as False: the first word
    was only looked for at the very first character. Now the first word, wherever it starts."""
    from r1lab.judges import parse_verdict

    replies = ["**Yes**", '"Yes."', "*yes*, it matches", "- Yes", "**No**", "maybe yes", "<think>yes", "", "...",
               "<think>\nok\n</think>\n**Yes.**"]
    assert [parse_verdict(r) for r in replies] == [True, True, True, True, False, False, False, False, False, True]


# Cold start samples an R1-Zero policy in R1 Table 1's template (R1 §2.3.1): a checkpoint trained on
# the chat template is refused before anything is sampled or written.
@pytest.mark.parametrize("saved", [{"data": "cs.jsonl", "packing": True}, {"template": "chat", "init": "x"}],
                         ids=["sft", "rl-after-cold-start"])
def test_a_chat_trained_zero_checkpoint_is_refused_before_sampling(tmp_path, monkeypatch, saved):
    checkpoint = Path(shutil.copytree(BASE, tmp_path / "policy"))
    (checkpoint / "r1lab_config.json").write_text(json.dumps(saved))
    monkeypatch.setattr(cold_start, "zero_examples", lambda *a, **k: pytest.fail("sampled a chat checkpoint"))
    out = tmp_path / "cs" / "data.jsonl"
    config = ColdStartConfig(zero_checkpoint=str(checkpoint), out=str(out), n_prompts=2, samples_per_prompt=1,
                             max_new_tokens=4, n_long_cot=2, threads=1)
    with pytest.raises(ValueError, match="trained on the chat template.*R1-Zero run's policy"):
        cold_start.run(config)
    assert not out.parent.exists()


def test_an_r1_zero_checkpoint_is_still_sampled(tmp_path, monkeypatch):
    checkpoint = Path(shutil.copytree(BASE, tmp_path / "policy"))
    (checkpoint / "r1lab_config.json").write_text(json.dumps({"template": "r1_zero", "init": "x"}))
    calls = []

    def zero_examples(engine, tokenizer, problems, config, dedupe):
        calls.append(len(problems))
        return [], cold_start.Funnel.of(cold_start.R1_ZERO_SOURCE, cold_start.ZERO_FILTERS)

    monkeypatch.setattr(cold_start, "zero_examples", zero_examples)
    config = ColdStartConfig(zero_checkpoint=str(checkpoint), out=str(tmp_path / "data.jsonl"), n_prompts=2,
                             n_long_cot=2, threads=1)
    cold_start.run(config)
    assert calls == [2]


# ColdStartConfig: a bad count or temperature is named with its value
@pytest.mark.parametrize("bad, message", [
    ({"temperature": float("inf")}, "temperature must be finite and >= 0, got inf"),
    ({"temperature": float("nan")}, "temperature must be finite and >= 0, got nan"),
    ({"n_prompts": -1}, r"n_prompts must be >= 0, got -1"),
    ({"n_long_cot": -2}, r"n_long_cot must be >= 0, got -2"),
])
def test_a_bad_count_or_temperature_is_named_with_its_value(bad, message):
    with pytest.raises(ValueError, match=message):
        ColdStartConfig(**bad)


# No example kept: a clear error at the cold start (stats written, no data file), not an empty dataset for the SFT.
def test_no_example_kept_is_a_clear_error_not_an_empty_dataset(tmp_path, monkeypatch, tokenizer):
    p0, p1 = world.rl_prompts(2)
    monkeypatch.setattr(cold_start, "load_engine", lambda checkpoint, bf16=False, device="cpu": (
        FakeEngine([[done(zero(p0, answer=0))], [done(zero(p1, answer=0))]]), tokenizer))  # both wrong
    out = tmp_path / "data.jsonl"
    out.write_text("an earlier run's data\n")
    config = ColdStartConfig(zero_checkpoint="fake/zero", out=str(out), n_prompts=2, samples_per_prompt=1, n_long_cot=0)
    with pytest.raises(ValueError, match=r"cold start kept no example.*data\.stats\.json"):
        cold_start.run(config)
    assert not out.exists()
    stats = json.loads((tmp_path / "data.stats.json").read_text())
    assert stats["examples"] == 0 and {f["name"]: f["kept"] for f in stats["sources"][0]["filters"]}["correct"] == 0


# A bad kinds or readability setting of a data-building stage names "<Config>.<field>" and the value given
@pytest.mark.parametrize("bad, message", [
    ({"kinds": "arithmetic,poetry"}, r"\.kinds must be a comma-separated subset of .*, got 'arithmetic,poetry'"),
    ({"language": "fr"}, r"\.language must be one of the world's languages 'en' and 'vl', got 'fr'"),
    ({"min_language_share": 1.5}, r"\.min_language_share must be in \[0, 1\], got 1.5"),
    ({"max_paragraph_chars": 0}, r"\.max_paragraph_chars must be >= 1, got 0"),
])
def test_a_bad_kinds_or_readability_setting_names_its_config_and_field(bad, message):
    from r1lab.stages.rejection_sampling import RejectionSamplingConfig

    with pytest.raises(ValueError, match="^ColdStartConfig" + message):
        ColdStartConfig(**bad)
    with pytest.raises(ValueError, match="^RejectionSamplingConfig" + message):
        RejectionSamplingConfig(checkpoint="ckpt", **bad)


def test_a_bad_readability_flag_is_one_line_and_exit_2(capsys):
    assert cli_main(["cold-start", "--language", "fr"]) == 2
    assert capsys.readouterr().err == ("r1lab cold-start: error: ColdStartConfig.language must be one of the world's "
                                       "languages 'en' and 'vl', got 'fr'\n")
    assert cli_main(["rejection-sample", "--checkpoint", "ckpt", "--max-paragraph-chars", "0"]) == 2
    assert capsys.readouterr().err == ("r1lab rejection-sample: error: RejectionSamplingConfig.max_paragraph_chars "
                                       "must be >= 1, got 0\n")


# Mutation review: settings reach the R1-Zero sampling and the rewrite, chunk by chunk.
def test_each_chunk_has_its_own_seed_and_the_rewrite_is_in_the_configured_language(tokenizer):
    """Kills a seed shared across chunks (3 * 1_000_003 + start: start 0 then 1), a rewrite that
    ignores --language, and a countdown summary of the reference expression, not the model's."""
    from r1lab.world.arithmetic import Chain
    from r1lab.world.problems import countdown_problem

    p0 = world.rl_prompts(1)[0]  # Compute 20-8+4 = 16
    countdown = countdown_problem((7, 11, 12), 8, Chain(operands=(12, 11, 7), ops=("-", "+")))
    groups = [[done(zero(p0))], [done("<think> Try 7+12=19, 19-11=8. </think> <answer> 7+12-11 </answer>")]]
    engine = FakeEngine(groups)
    config = ColdStartConfig(zero_checkpoint="zero/policy", n_prompts=2, samples_per_prompt=1, batch_problems=1,
                             seed=3, language="vl", min_language_share=0.0)
    examples, _ = cold_start.zero_examples(engine, tokenizer, [p0, countdown], config, Deduper())
    assert [params.seed for _, params in engine.calls] == [3_000_009, 3_000_010]
    assert [e.response.splitlines()[-1] for e in examples] == ["Keta 20-8+4 ve 16.", "Ema risu ve 7+12-11."]


def test_a_zero_checkpoint_with_no_prompts_and_no_long_cot_is_nothing_to_build():
    with pytest.raises(ValueError, match="nothing to build"):
        ColdStartConfig(zero_checkpoint="zero/policy", n_prompts=0, n_long_cot=0)
