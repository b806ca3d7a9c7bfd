"""Rejection sampling (R1 §2.3.3): judges, the reasoning funnel, chat data, the run's files."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import r1lab
import r1lab.world as world
from r1lab.cli import main as cli_main
from r1lab.data import read_sft_jsonl
from r1lab.engine import Completion
from r1lab.filters import Deduper, is_r1_format
from r1lab.judges import JUDGE_PROMPT, GenerativeJudge, JudgeItem, RuleJudge, final_answer, parse_verdict
from r1lab.prompts import CHAT, prompt_ids
from r1lab.stages import rejection_sampling
from r1lab.stages import rejection_sampling as rs
from r1lab.stages.rejection_sampling import RejectionSamplingConfig, chat_response
from r1lab.tokenizer import Tokenizer

BASE = Path(r1lab.__file__).resolve().parent / "assets" / "base-tiny"  # the shipped pretrained tiny model


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(BASE)


class FakeEngine:
    """Stands in for `Engine`: scripted groups of (text, finish reason), or one reply for every prompt."""

    def __init__(self, groups: list[list[tuple[str, str]]] | None = None, reply: str | None = None) -> None:
        self.groups, self.reply, self.calls = list(groups or []), reply, []

    def generate(self, prompts, params):
        self.calls.append((prompts, params))
        scripted = [[(self.reply, "stop")] * params.n if self.reply is not None else self.groups.pop(0) for _ in prompts]
        return [[Completion(prompt_index=i, token_ids=[], logprobs=[], finish_reason=f, text=t) for t, f in group]
                for i, group in enumerate(scripted)]


def done(text: str) -> tuple[str, str]:
    return text + "<|eos|>", "stop"


def readable(problem, intro="Step by step.", lines=None, answer=None) -> str:
    """A response in R1's format: one step per line, then the phrasebook summary."""
    lines = lines if lines is not None else [f"{s.text()}." for s in problem.chain.steps()]
    answer = problem.answer if answer is None else answer
    return "<think>\n" + "\n".join([intro, *lines]) + f"\n</think>\nThe value of {problem.chain.expression()} is {answer}."


def item(problem, prediction: str) -> JudgeItem:
    return JudgeItem(question=problem.question, reference=str(problem.answer), prediction=prediction, example=problem)


# --- judges -----------------------------------------------------------------------------------
def test_rule_judge_checks_world_answers_through_the_judge_interface():
    arithmetic = world.rl_prompts(1)[0]
    countdown = world.rl_prompts(1, kinds=("countdown",))[0]
    expression = countdown.chain.expression()
    items = [item(arithmetic, readable(arithmetic)), item(arithmetic, readable(arithmetic, answer=arithmetic.answer + 1)),
             item(countdown, f"<think>\nok\n</think>\nSo the answer is {expression}."),
             item(countdown, "<think>\nok\n</think>\nSo the answer is 1+1."), item(arithmetic, ""),
             item(arithmetic, None)]
    assert RuleJudge()(items) == [True, False, True, False, False, False]


def test_rule_judge_counts_a_raising_rule_as_incorrect():
    def boom(example, prediction):
        raise RuntimeError("cannot read")

    assert RuleJudge(boom)([item(world.rl_prompts(1)[0], "x")]) == [False]


def test_generative_judge_prompts_with_question_reference_and_final_answer(tokenizer):
    problem = world.rl_prompts(1)[0]
    engine = FakeEngine(reply=" yes<|eos|>")
    judge = GenerativeJudge(engine, tokenizer)
    prediction = readable(problem) + "<|eos|>"
    prompt = judge.prompt(item(problem, prediction))
    assert prompt == JUDGE_PROMPT.format(question=problem.question, reference=problem.answer,
                                         prediction=f"The value of {problem.chain.expression()} is {problem.answer}.")
    assert "<think>" not in prompt  # the judge sees the final answer, not the reasoning
    assert judge([item(problem, prediction)]) == [True]
    prompts, params = engine.calls[0]
    assert prompts == [prompt_ids(tokenizer, prompt, CHAT)]
    # room for a chat model's reasoning before its verdict (4 tokens cut every "<think>" reply short)
    assert (params.n, params.temperature, params.max_new_tokens, params.stop_token_ids) == (1, 0.0, 64, (tokenizer.eos_id,))


def test_generative_judge_does_not_raise_on_a_prediction_too_long_for_its_context(tokenizer):
    """A judging prompt past the judge model's positions made the engine raise and the whole
    stage stop ("A judge never raises on model text"); such an item is now judged False."""
    from r1lab.stages.cold_start import load_engine

    engine, tok = load_engine(str(BASE))
    problem = world.rl_prompts(1)[0]
    short = item(problem, readable(problem))
    long = JudgeItem(question=problem.question + " Velari" * 600, reference=str(problem.answer),
                     prediction=readable(problem), example=problem)
    judge = GenerativeJudge(engine, tok)
    assert len(prompt_ids(tok, judge.prompt(long), CHAT)) + 64 > engine.model.config.max_position_embeddings
    assert judge([long, short, long]) == [False, *judge([short]), False]


def test_a_generative_judge_with_no_room_for_any_prompt_is_refused(tokenizer):
    """--judge-max-new-tokens at or past the judge model's positions left no prompt room: every
    item was judged False, so every sample was silently dropped as incorrect. Now a ValueError."""
    engine = FakeEngine(reply="yes")
    engine.model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=512))
    shortest = len(prompt_ids(tokenizer, JUDGE_PROMPT.format(question="", reference="", prediction=""), CHAT))
    for tokens in (600, 512, 512 - shortest + 1):  # the last leaves room for a prompt shorter than any
        with pytest.raises(ValueError, match=f"max_new_tokens {tokens} leaves no room .* 512 positions"):
            GenerativeJudge(engine, tokenizer, max_new_tokens=tokens)
    problem = world.rl_prompts(1)[0]
    assert GenerativeJudge(engine, tokenizer, max_new_tokens=256)([item(problem, "x")]) == [True]
    engine.model.config.max_position_embeddings = shortest  # the prompt alone fills the context
    with pytest.raises(ValueError, match=r"\(no --judge-max-new-tokens fits: the prompt alone fills them; give a "):
        GenerativeJudge(engine, tokenizer, max_new_tokens=1)  # said "must be at most 0"


def test_generative_judge_batches_and_reads_only_a_clear_yes(tokenizer):
    problem = world.rl_prompts(1)[0]
    replies = ["Yes.", "no", "yes, it is", "maybe yes", "", "Yesterday", "<think>\nhm\n</think>\nyes"]
    engine = FakeEngine(groups=[[(r, "stop")] for r in replies])
    judge = GenerativeJudge(engine, tokenizer, batch_size=3)
    assert judge([item(problem, "x")] * len(replies)) == [True, False, True, False, False, False, True]
    assert [len(prompts) for prompts, _ in engine.calls] == [3, 3, 1]
    assert parse_verdict(None) is False and final_answer("<answer> 7 </answer>") == "7"


# --- reasoning data ---------------------------------------------------------------------------
def scripted_groups(p0, p1):
    wall = ["First, " + ", so ".join([s.text() for s in p1.chain.steps()] * 5) + "."]
    steps1 = [f"{s.text()}." for s in p1.chain.steps()]
    return [[
        done(readable(p0)),  # 0 kept
        done(readable(p0, intro="Let me compute step by step.")),  # 1 kept
        done(readable(p0, intro="Let me work it out step by step.")),  # 2 correct and readable, over keep_per_prompt
        done(readable(p0) + "  "),  # 3 duplicate of 0
        done(readable(p0, answer=p0.answer + 1)),  # 4 wrong
        (readable(p0), "length"),  # 5 not finished
        done(f"<think>\nThe answer is {p0.answer}.\n</think>\nThe value is {p0.answer}."),  # 6 no reasoning
        done(f"<think> {p0.chain.steps()[0].text()} </think> <answer> {p0.answer} </answer>"),  # 7 R1-Zero format
    ], [
        done(readable(p1, intro="Sulo pe sulo.")),  # 0 mixed languages
        done(readable(p1, intro="Step by step.", lines=wall)),  # 1 a long paragraph
        done(readable(p1, lines=[f"```{steps1[0]}```", *steps1[1:]])),  # 2 a code block
        done(readable(p1, lines=steps1 + steps1[-1:])),  # 3 a repeated line
        done(readable(p1)),  # 4 kept
        *[done(readable(p1, answer=p1.answer + d)) for d in (1, 2, 3)],  # 5-7 wrong
    ]]


def test_only_correct_readable_distinct_samples_are_kept_up_to_the_cap(tokenizer):
    p0, p1 = world.rl_prompts(2)
    engine = FakeEngine(scripted_groups(p0, p1))
    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=2, samples_per_prompt=8, keep_per_prompt=2, seed=5)
    examples, funnel = rs.reasoning_examples(engine, tokenizer, [p0, p1], RuleJudge(), config, Deduper())

    assert [(e.meta["prompt_id"], e.meta["sample_index"]) for e in examples] == [(p0.id, 0), (p0.id, 1), (p1.id, 4)]
    assert [(f.name, f.reached, f.kept) for f in funnel.filters] == [
        ("finished", 16, 15), ("correct", 15, 11), ("step_by_step", 11, 10),
        ("reaches_answer", 10, 9),  # 7 (R1-Zero format) stops at 20-8=12
        ("r1_format", 9, 9), ("language", 9, 8),
        ("repetition", 8, 7), ("paragraph_length", 7, 6), ("code_block", 6, 5), ("dedupe", 5, 4),
        ("per_prompt_cap", 4, 3)]
    assert funnel.filters[1].kept_fraction == 11 / 15 and funnel.kept_fraction == 3 / 16
    assert examples[0].response == readable(p0)  # the assistant turn exactly: no EOS, the chat template adds it
    assert examples[0].meta == {"source": "rejection-sampling", "source_checkpoint": "rl/policy", "prompt_id": p0.id,
                                "sample_index": 0, "kind": "arithmetic", "answer": str(p0.answer),
                                "filters_passed": list(rs.REASONING_FILTERS)}
    prompts, params = engine.calls[0]
    assert prompts == [prompt_ids(tokenizer, p.question, CHAT) for p in (p0, p1)]
    assert (params.n, params.temperature, params.seed) == (8, 1.0, 5 * 1_000_003)


def test_the_configured_language_and_paragraph_limit_reach_the_filters(tokenizer):
    """The language and paragraph-length filters read the run's settings, not their defaults."""
    p0, p1 = world.rl_prompts(2)

    def kept(**change):
        config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=2, samples_per_prompt=8, keep_per_prompt=2,
                                         seed=5, **change)
        _, funnel = rs.reasoning_examples(FakeEngine(scripted_groups(p0, p1)), tokenizer, [p0, p1], RuleJudge(),
                                          config, Deduper())
        return {f.name: f.kept for f in funnel.filters}

    default = kept()
    assert (default["language"], default["paragraph_length"]) == (8, 6)
    assert kept(language="vl")["language"] == 0  # the scripted chains of thought are English
    assert kept(max_paragraph_chars=10)["paragraph_length"] == 0  # every reasoning line is longer


def test_a_correct_sample_whose_reasoning_ends_at_another_number_is_not_kept(tokenizer):
    """A verified answer after reasoning that ended elsewhere ("12+4=17", then "The value ... is 16.")
    was kept: its summary contradicts its reasoning. The last worked step must give the answer."""
    p0 = world.rl_prompts(1)[0]  # 20-8+4: 20-8=12, 12+4=16
    steps = [f"{s.text()}." for s in p0.chain.steps()]
    off = re.sub(r"=(-?\d+)\.$", lambda m: f"={int(m[1]) + 1}.", steps[-1])  # 12+4=17.
    engine = FakeEngine([[done(readable(p0, lines=steps)), done(readable(p0, intro="Let me see.", lines=[*steps[:-1], off]))]])
    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=1, samples_per_prompt=2, keep_per_prompt=2)
    examples, funnel = rs.reasoning_examples(engine, tokenizer, [p0], RuleJudge(), config, Deduper())
    assert [e.meta["sample_index"] for e in examples] == [0]
    assert ("reaches_answer", 2, 1) in [(f.name, f.reached, f.kept) for f in funnel.filters]


def test_the_judge_decides_correctness(tokenizer):
    p0, p1 = world.rl_prompts(2)
    seen = []

    def judge(items):
        seen.extend(items)
        return [True] * len(items)  # a lenient judge: the wrong answers now pass "correct"

    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=2, samples_per_prompt=8, keep_per_prompt=8)
    _, funnel = rs.reasoning_examples(FakeEngine(scripted_groups(p0, p1)), tokenizer, [p0, p1], judge, config, Deduper())
    assert funnel.filters[1].kept == 15
    assert len(seen) == 16 and seen[0] == JudgeItem(question=p0.question, reference=str(p0.answer),
                                                    prediction=readable(p0), example=p0)  # the kept text
    yes_judge = GenerativeJudge(FakeEngine(reply="yes"), tokenizer)
    _, funnel = rs.reasoning_examples(FakeEngine(scripted_groups(p0, p1)), tokenizer, [p0, p1], yes_judge, config,
                                      Deduper())
    assert funnel.filters[1].kept == 15
    with pytest.raises(ValueError, match="verdicts"):
        rs.reasoning_examples(FakeEngine(scripted_groups(p0, p1)), tokenizer, [p0, p1], lambda items: [], config,
                              Deduper())


def test_only_the_verified_turn_is_kept_not_a_made_up_next_turn(tokenizer):
    """The judge reads up to the first end-of-turn marker; the kept response must stop there too,
    or a made-up next turn with a wrong answer would enter the SFT set unchecked (R1 §2.3.3)."""
    p0, p1 = world.rl_prompts(2)
    verified = readable(p0, intro="Let me compute step by step.")
    tails = [" User: what is 5+5?\nAssistant: The value is 999.", "\n\nQ: 1+1\nA: 3", "<|user|>hi<|bos|>"]
    long_line = "\nAssistant: " + "so the value is 999, " * 8  # fails paragraph_length only if it were judged
    groups = [[done(verified + tail) for tail in [*tails, long_line]], [done(readable(p1))] * 4]
    seen = []

    def judge(items):
        seen.extend(i.prediction for i in items)
        return RuleJudge()(items)

    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=2, samples_per_prompt=4, keep_per_prompt=4)
    examples, funnel = rs.reasoning_examples(FakeEngine(groups), tokenizer, [p0, p1], judge, config, Deduper())
    assert [e.response for e in examples] == [verified, readable(p1)]  # the tails gone; the rest duplicates
    assert seen[:4] == [verified] * 4  # the judge saw exactly the kept text
    assert [(f.name, f.kept) for f in funnel.filters][4:8] == [("r1_format", 8), ("language", 8), ("repetition", 8),
                                                                ("paragraph_length", 8)]


def test_a_turn_longer_than_the_judges_read_is_not_kept_cut_short(tokenizer):
    """`completion_body` reads a completion's first 20k characters: a finished turn longer than that
    was judged on, and kept as, its first 20k characters (here its summary cut mid-sentence)."""
    p0, p1 = world.rl_prompts(2)
    long = readable(p0) + " So the value is the value." * 900  # 24,375 characters, correct and readable
    assert len(long) > 20_000 > len(readable(p1))
    made_up_turn = readable(p1) + " User: " + "so the value is 999, " * 1000  # over 20k, but the turn ends early
    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=2, samples_per_prompt=1, keep_per_prompt=1)
    examples, funnel = rs.reasoning_examples(FakeEngine([[done(long)], [done(made_up_turn)]]), tokenizer, [p0, p1],
                                             RuleJudge(), config, Deduper())
    assert [e.response for e in examples] == [readable(p1)]
    assert (funnel.filters[0].name, funnel.filters[0].reached, funnel.filters[0].kept) == ("finished", 2, 1)


# --- chat data --------------------------------------------------------------------------------
def test_trivial_chat_gets_no_cot_and_the_rest_a_short_one():
    examples = world.chat_tasks(200, seed=1)
    for example in examples:
        response = chat_response(example)
        if example.kind in rs.TRIVIAL_CHAT:
            assert response == example.response
        else:
            assert is_r1_format(response) and response.endswith("</think>\n" + example.response)
        assert chat_response(example, with_cot=False) == example.response
    assert {e.kind for e in examples} == {"greeting", "identity", "copy", "translate", "fact"}


def test_chat_examples_are_deduplicated_with_provenance():
    config = RejectionSamplingConfig(checkpoint="x", n_chat=120, seed=2, n_refusals=0)
    examples, funnel = rs.chat_examples(config, Deduper())
    tasks = world.chat_tasks(120, seed=2)
    distinct = {(t.prompt, chat_response(t)) for t in tasks}
    assert funnel.candidates == 120 and funnel.kept == len(examples) == len(distinct) < 120
    assert all(e.meta["source"] == "world-chat" and e.meta["prompt_id"].startswith(e.meta["kind"]) for e in examples)


# --- the stage --------------------------------------------------------------------------------
def test_run_writes_data_stats_and_config(tmp_path, monkeypatch, tokenizer):
    p0, p1 = world.rl_prompts(2)
    monkeypatch.setattr(rs, "load_engine",
                        lambda checkpoint, bf16=False, device="cpu": (FakeEngine(scripted_groups(p0, p1)), tokenizer))
    config = RejectionSamplingConfig(checkpoint="fake/rl", out_dir=str(tmp_path / "rs"), n_prompts=2, samples_per_prompt=8,
                                     n_chat=10)
    data = rs.run(config)
    assert data == tmp_path / "rs" / "data.jsonl"
    examples = read_sft_jsonl(data)
    sources = [e.meta["source"] for e in examples]
    assert sources[:3] == ["rejection-sampling"] * 3 and set(sources[3:]) == {"world-chat"}
    stats = json.loads((tmp_path / "rs" / "stats.json").read_text())
    reasoning, chat = stats["sources"]
    # 10 chat tasks + the default 4 refusals
    assert (reasoning["candidates"], reasoning["kept"], chat["candidates"]) == (16, 3, 14)
    assert stats["examples"] == len(examples) == 3 + chat["kept"]
    assert json.loads((tmp_path / "rs" / "rejection_sampling_config.json").read_text())["checkpoint"] == "fake/rl"


def test_run_with_the_shipped_base_model(tmp_path):
    """A real (tiny) run: the untuned base model passes few samples; the files are well-formed anyway."""
    config = RejectionSamplingConfig(checkpoint=str(BASE), out_dir=str(tmp_path / "rs"), n_prompts=2,
                                     samples_per_prompt=2, max_new_tokens=12, n_chat=6, threads=1)
    data = rs.run(config)
    examples = read_sft_jsonl(data)
    stats = json.loads((tmp_path / "rs" / "stats.json").read_text())
    assert stats["sources"][0]["candidates"] == 4 and stats["examples"] == len(examples) >= 1
    again = rs.run(dataclasses.replace(config, out_dir=str(tmp_path / "again")))
    assert again.read_text() == data.read_text()  # same seed, same data


def test_missing_checkpoint_fails_before_the_run_directory_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        rs.run(RejectionSamplingConfig(checkpoint=str(tmp_path / "nope"), out_dir=str(tmp_path / "rs")))
    assert not (tmp_path / "rs").exists()
    with pytest.raises(FileNotFoundError):
        rs.make_judge(str(tmp_path / "no-judge"))
    assert isinstance(rs.make_judge("rule"), RuleJudge)


def test_config_validation_and_cli(tmp_path, capsys):
    for bad, match in ((dict(checkpoint=""), "checkpoint"), (dict(template="alpaca"), "template"),
                       (dict(template="r1_zero"), "follows the cold start"),
                       (dict(keep_per_prompt=0), "keep_per_prompt"), (dict(n_chat=-1), "n_chat")):
        with pytest.raises(ValueError, match=match):
            RejectionSamplingConfig(**{"checkpoint": "x", **bad})
    assert cli_main(["rejection-sample", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert cli_main(["rejection-sample", "--checkpoint", str(BASE), "--kinds", "poetry"]) == 2
    assert "kinds" in capsys.readouterr().err
    assert cli_main(["rejection-sample", "--checkpoint", str(BASE), "--template", "r1_zero"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1lab rejection-sample: error: --template r1_zero") and err.count("\n") == 1


@pytest.mark.parametrize("bad, message", [(dict(temperature=float("inf")), "temperature must be finite and >= 0, got inf"),
                                          (dict(temperature=-0.5), "temperature must be finite and >= 0, got -0.5"),
                                          (dict(n_chat=-3), "n_chat must be >= 0, got -3")])
def test_a_bad_temperature_or_n_chat_is_named_with_its_value(bad, message):
    """Both were "n_chat and temperature must be >= 0": not which, and false for an infinite temperature."""
    with pytest.raises(ValueError, match=re.escape(f"RejectionSamplingConfig.{message}")):
        RejectionSamplingConfig(checkpoint="x", **bad)

def test_unusable_out_dir_is_one_line_before_loading_the_model(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "run" / "data.jsonl").mkdir(parents=True)
    missing = str(tmp_path / "missing-checkpoint")  # checked after --out-dir: the --out-dir error comes first
    for out_dir, message in (("afile", "afile as a directory: it is a file"), ("afile/x", "afile is a file"),
                             ("run", "data.jsonl: it is a directory")):
        assert cli_main(["rejection-sample", "--checkpoint", missing, "--out-dir", str(tmp_path / out_dir)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("r1lab rejection-sample: error: cannot ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["afile", "data.jsonl", "run"]


def test_a_generative_judge_checkpoint_gets_the_configured_reply_length(tmp_path, monkeypatch):
    from r1lab.stages import rejection_sampling

    monkeypatch.setattr(rejection_sampling, "load_engine", lambda spec, bf16, device="cpu": (FakeEngine(reply="yes"), None))
    for name in ("config.json", "tokenizer.json"):  # a checkpoint directory, as far as the --judge check looks
        (tmp_path / name).write_text("{}")
    assert rejection_sampling.make_judge(str(tmp_path)).max_new_tokens == 64
    assert rejection_sampling.make_judge(str(tmp_path), max_new_tokens=80).max_new_tokens == 80
    with pytest.raises(ValueError, match="judge_max_new_tokens"):
        rejection_sampling.RejectionSamplingConfig(checkpoint="x", judge_max_new_tokens=0)


def test_an_interrupted_rerun_leaves_no_data_of_other_settings_next_to_its_config(tmp_path, monkeypatch, tokenizer):
    p0, p1 = world.rl_prompts(2)
    monkeypatch.setattr(rs, "load_engine",
                        lambda checkpoint, bf16=False, device="cpu": (FakeEngine(scripted_groups(p0, p1)), tokenizer))
    config = RejectionSamplingConfig(checkpoint="fake/rl", out_dir=str(tmp_path / "rs"), n_prompts=2,
                                     samples_per_prompt=8, n_chat=4)
    rs.run(config)
    monkeypatch.setattr(rs, "reasoning_examples", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while sampling, seed 1
        rs.run(dataclasses.replace(config, seed=1))
    assert json.loads((tmp_path / "rs" / "rejection_sampling_config.json").read_text())["seed"] == 1
    assert not (tmp_path / "rs" / "data.jsonl").exists() and not (tmp_path / "rs" / "stats.json").exists()


@pytest.mark.parametrize("argv", [["rejection-sample", "--checkpoint", "x", "--temperature", "nan"],
                                  ["cold-start", "--temperature", "nan"], ["zero", "--temperature", "nan"],
                                  ["zero", "--kl-coef", "nan"], ["eval", "--data", "world", "--checkpoint", "x",
                                                                 "--temperature", "nan"]])
def test_a_nan_setting_is_one_line_and_exit_2(argv, capsys, tmp_path, monkeypatch):
    """NaN passed `temperature < 0` checks, and sampling at T = NaN wrote garbage without an error."""
    monkeypatch.chdir(tmp_path)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("temperature" in err or "kl_coef" in err) and not (tmp_path / "runs").exists()


def test_a_malformed_tokenizer_is_one_line_and_exit_2(tmp_path, capsys):
    ck = tmp_path / "ck"
    ck.mkdir()
    shutil.copy(BASE / "config.json", ck)
    (ck / "tokenizer.json").write_text("{}")  # the tokenizers library raises a bare Exception for it
    assert cli_main(["rejection-sample", "--checkpoint", str(ck), "--out-dir", str(tmp_path / "o")]) == 2
    assert "tokenizer.json" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_more_prompts_than_the_split_holds_fail_before_an_earlier_runs_data_is_touched(tmp_path):
    out = tmp_path / "rs"
    out.mkdir()
    (out / "data.jsonl").write_text("an earlier run's\n")
    with pytest.raises(ValueError, match="distinct problems"):
        rs.run(RejectionSamplingConfig(checkpoint=str(BASE), out_dir=str(out), n_prompts=100_000))
    assert sorted(p.name for p in out.iterdir()) == ["data.jsonl"]


def test_the_chat_reasoning_is_in_the_worlds_english():
    """world.language's contract: text r1lab writes registers its words, else the classifier
    counts them foreign ("fact", "remember", "translation": 0.83 consistency for all-English text)."""
    fact = next(e for e in world.chat_tasks(50) if e.kind == "fact")
    assert world.language_consistency(chat_response(fact), "en") == 1.0
    translate = next(e for e in world.chat_tasks(50) if e.kind == "translate" and "to Velari" in e.prompt)
    thought = chat_response(translate).split("</think>")[0]
    assert world.language_consistency(thought.replace(translate.response, ""), "en") == 1.0


# Rejection sampling's run when the filters keep nothing.
class WrongEngine:
    """Every sample is a finished but unreadable, wrong answer."""

    def generate(self, prompts, params):
        return [[Completion(prompt_index=i, token_ids=[], logprobs=[], finish_reason="stop", text="nope<|eos|>")]
                * params.n for i, _ in enumerate(prompts)]


@pytest.fixture
def no_sample_kept(monkeypatch):
    tokenizer = Tokenizer.load(BASE)
    monkeypatch.setattr(rs, "load_engine", lambda *args, **kwargs: (WrongEngine(), tokenizer))


def test_no_sample_and_no_chat_is_a_clear_error_not_an_empty_dataset(tmp_path, no_sample_kept):
    """It wrote an empty data.jsonl (no word said), and the SFT that followed failed with "no examples"."""
    config = rs.RejectionSamplingConfig(checkpoint="fake/rl", out_dir=str(tmp_path), n_prompts=2,
                                        samples_per_prompt=2, n_chat=0, n_refusals=0)
    with pytest.raises(ValueError, match=r"kept no sample and --n-chat and --n-refusals are 0.*stats\.json"):
        rs.run(config)
    assert not (tmp_path / "data.jsonl").exists()  # nothing a rerun of the pipeline would take for a dataset
    assert (tmp_path / "stats.json").exists()  # the funnel says which filter dropped them


def test_a_chat_only_set_is_written_with_a_warning(tmp_path, no_sample_kept, capsys):
    config = rs.RejectionSamplingConfig(checkpoint="fake/rl", out_dir=str(tmp_path), n_prompts=2,
                                        samples_per_prompt=2, n_chat=3)
    data = rs.run(config)
    assert {e.meta["source"] for e in read_sft_jsonl(data)} == {rs.CHAT_SOURCE}
    assert "warning: no reasoning sample passed the filters" in capsys.readouterr().out


# A mistyped --judge names the flag and its accepted values.
def test_a_mistyped_judge_names_the_flag_and_what_it_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no directory "Rule" here
    with pytest.raises(FileNotFoundError) as caught:
        rejection_sampling.make_judge("Rule")
    assert str(caught.value) == ("--judge 'Rule' is neither 'rule' (the world's rule) nor a judge checkpoint "
                                 "directory: checkpoint not found (needs config.json and tokenizer.json): Rule")


def test_a_mistyped_judge_is_refused_before_the_sampled_model_loads(tmp_path, monkeypatch):
    loaded = []

    def load_engine(checkpoint, *args, **kwargs):  # as the real one, less the loading
        loaded.append(checkpoint)
        if not Path(checkpoint).is_dir():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
        return None, None

    monkeypatch.setattr(rs, "load_engine", load_engine)
    config = RejectionSamplingConfig(checkpoint=str(BASE), out_dir=str(tmp_path / "run"), judge="Rule")
    with pytest.raises(FileNotFoundError, match="--judge 'Rule' is neither 'rule'"):
        rs.run(config)
    assert loaded == [] and not (tmp_path / "run").exists()  # nothing loaded, no run directory


# A --max-new-tokens past the model's positions is refused before the run directory exists
def test_max_new_tokens_past_the_models_positions_fails_before_the_run_directory_exists(tmp_path):
    out = tmp_path / "rs"
    config = RejectionSamplingConfig(checkpoint=str(BASE), out_dir=str(out), n_prompts=2, max_new_tokens=512, n_chat=0,
                                     n_refusals=0)
    with pytest.raises(ValueError, match=r"--max-new-tokens 512 leaves no room .* 512 positions; at most \d+"):
        rs.run(config)
    assert not out.exists()


# A copy of a sample turned away by the per-prompt cap is counted by the cap, not as a duplicate
def test_a_copy_of_a_sample_over_the_cap_is_a_cap_rejection_not_a_duplicate(tokenizer):
    p0 = world.rl_prompts(1)[0]
    first, second, third = (readable(p0, intro=intro) for intro in ("Step by step.", "Let me compute step by step.",
                                                                    "Let me work it out step by step."))
    engine = FakeEngine([[done(first), done(second), done(third), done(third), done(first)]])
    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=1, samples_per_prompt=5, keep_per_prompt=2)
    examples, funnel = rs.reasoning_examples(engine, tokenizer, [p0], RuleJudge(), config, Deduper())
    assert [e.meta["sample_index"] for e in examples] == [0, 1]  # which samples are kept is unchanged
    counts = {f.name: (f.reached, f.kept) for f in funnel.filters}
    # sample 3 repeats sample 2, which was never kept: only sample 4 (a copy of kept sample 0) is a duplicate
    assert counts["dedupe"] == (5, 4) and counts["per_prompt_cap"] == (4, 2)


# An R1-Zero policy (its config records template r1_zero) asked in the chat format kept no reasoning
# sample, and the run wrote a chat-only set with the wrong checkpoint unsaid; as judge, it said no to all.
def test_an_r1_zero_checkpoint_is_refused_as_sampled_model_and_as_judge(tmp_path, capsys):
    zero = tmp_path / "zero"
    shutil.copytree(BASE, zero)
    (zero / "r1lab_config.json").write_text(json.dumps({"template": "r1_zero", "init": str(BASE)}))
    out = tmp_path / "rs"
    with pytest.raises(ValueError, match=r"--checkpoint .*zero was trained on R1 Table 1's r1_zero template"):
        rs.run(RejectionSamplingConfig(checkpoint=str(zero), out_dir=str(out), n_prompts=2, n_chat=2))
    assert not out.exists()
    with pytest.raises(ValueError, match=r"--judge .*zero was trained on R1 Table 1's r1_zero template"):
        rs.run(RejectionSamplingConfig(checkpoint=str(BASE), out_dir=str(out), n_prompts=2, n_chat=2, judge=str(zero)))
    assert not out.exists()
    assert cli_main(["rejection-sample", "--checkpoint", str(zero), "--out-dir", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (zero / "r1lab_config.json").write_text(json.dumps({"template": "chat"}))  # a reasoning-RL policy: sampled
    rs.check_chat_trained(str(zero), "--checkpoint")


# Mutation review: settings reach the sampler and the judge, chunk by chunk.
def test_each_chunk_is_sampled_with_the_configured_settings_and_its_own_seed(tokenizer):
    """Kills a shared seed across chunks (5 * 1_000_003 + start: start 0 then 1), a dropped EOS stop,
    and a temperature or max_new_tokens not taken from the config; and a countdown's reference is
    its expression (`final_answer_text`), not the target number."""
    p0 = world.rl_prompts(1)[0]
    countdown = world.rl_prompts(1, kinds=("countdown",))[0]  # "Use 6, 5, 2 once each to make 60"
    seen = []

    def judge(items):
        seen.extend(items)
        return [False] * len(items)

    engine = FakeEngine(reply="x<|eos|>")
    config = RejectionSamplingConfig(checkpoint="rl/policy", n_prompts=2, samples_per_prompt=2, temperature=0.7,
                                     max_new_tokens=50, batch_problems=1, seed=5)
    rs.reasoning_examples(engine, tokenizer, [p0, countdown], judge, config, Deduper())
    assert [(p.n, p.temperature, p.max_new_tokens, p.stop_token_ids, p.seed) for _, p in engine.calls] == [
        (2, 0.7, 50, (tokenizer.eos_id,), 5_000_015), (2, 0.7, 50, (tokenizer.eos_id,), 5_000_016)]
    assert [i.reference for i in seen] == ["16", "16", "2*5*6", "2*5*6"]


def test_chat_cot_off_gives_bare_replies_and_ids_hash_the_prompt():
    import hashlib

    config = RejectionSamplingConfig(checkpoint="x", n_chat=30, seed=2, chat_cot=False, n_refusals=0)
    examples, _ = rs.chat_examples(config, Deduper())
    tasks = {t.prompt: t for t in world.chat_tasks(30, seed=2)}
    assert any(e.meta["kind"] in ("translate", "fact") for e in examples)
    assert all(e.response == tasks[e.prompt].response and "<think>" not in e.response for e in examples)
    first = examples[0]
    assert first.meta["prompt_id"] == f"{first.meta['kind']}-{hashlib.sha256(first.prompt.encode()).hexdigest()[:10]}"


def test_refusals_follow_the_chat_tasks_with_a_short_cot():
    from r1lab.world.general import REFUSAL, declines

    config = RejectionSamplingConfig(checkpoint="x", n_chat=20, seed=2, n_refusals=3)
    examples, funnel = rs.chat_examples(config, Deduper())
    without, _ = rs.chat_examples(dataclasses.replace(config, n_refusals=0), Deduper())
    assert examples[:len(without)] == without and funnel.candidates == 23  # the chat tasks are unchanged
    refusals = examples[len(without):]
    assert len(refusals) == 3 and {e.meta["kind"] for e in refusals} == {"harmful"}
    assert all(e.response.startswith("<think>\nThis asks for help to cause harm.") and e.response.endswith(REFUSAL)
               and declines(e.response) for e in refusals)
    with pytest.raises(ValueError, match="n_refusals"):
        RejectionSamplingConfig(checkpoint="x", n_refusals=-1)
