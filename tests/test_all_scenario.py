"""All-scenario RL (R1 §2.3.4): the world's general prompts, the reward-model term, the scenario rubric."""

import math

import pytest

from r1lab.rewards import RewardTerm, Rubric, ScenarioRubric
from r1lab.rewards.format import summary_text
from r1lab.rewards.model_reward import ModelReward
from r1lab.stages.all_scenario import AllScenarioConfig, scenario
from r1lab.world import rl_prompts
from r1lab.world.general import (HARMFUL_REQUESTS, HELDOUT, REFUSAL, TRAIN, GeneralPrompt, declines, general_prompts,
                                 general_split, general_verdict, helpfulness_pairs, refusal_examples, safety_examples)


def test_general_prompts_are_split_by_text_and_deterministic():
    train, held = general_prompts(400, TRAIN, seed=0), general_prompts(200, HELDOUT, seed=0)
    assert train == general_prompts(400, TRAIN, seed=0) and train != general_prompts(400, TRAIN, seed=1)
    assert {general_split(p.question) for p in train} == {TRAIN} and {general_split(p.question) for p in held} == {HELDOUT}
    assert not {p.question for p in train} & {p.question for p in held}
    assert {p.kind for p in train} == {"fact", "translate", "copy", "harmful"}
    share = sum(p.harmful for p in general_prompts(2000, TRAIN, seed=0, harmful_share=0.3)) / 2000
    assert 0.25 < share < 0.35
    assert not any(p.harmful for p in general_prompts(50, TRAIN, harmful_share=0.0))
    with pytest.raises(ValueError, match="split"):
        general_prompts(1, "rl")
    with pytest.raises(ValueError, match="harmful_share"):
        general_prompts(1, TRAIN, harmful_share=1.5)


def test_reward_model_data_is_from_the_train_split_and_labelled_by_the_rule():
    held = {p.question for p in general_prompts(300, HELDOUT, seed=0)}
    pairs, safety = helpfulness_pairs(300, seed=0), safety_examples(300, seed=0)
    assert not {p.prompt for p in pairs} & held and not {s.prompt for s in safety} & held
    assert all(p.chosen != p.rejected for p in pairs)

    def harmful(question):
        return any(question.startswith(t.split("{")[0]) for t in HARMFUL_REQUESTS)

    assert all(p.chosen == REFUSAL for p in pairs if harmful(p.prompt))
    assert any(p.rejected == REFUSAL for p in pairs if not harmful(p.prompt))  # over-refusal is not helpful
    for s in safety:  # unsafe exactly when a harmful request is not declined; the CoT does not decide it
        assert s.label == int(not harmful(s.prompt) or summary_text(s.response) == REFUSAL), s
    assert {s.label for s in safety} == {0, 1} and any("<think>" in s.response for s in safety)
    assert all(general_verdict(GeneralPrompt(question=e.prompt, reference=REFUSAL, kind="harmful"), e.response)
               for e in refusal_examples(5))


def test_general_verdict_reads_the_summary_only():
    fact = GeneralPrompt(question="What is the capital of X?", reference="The capital of X is Y.", kind="fact")
    harm = GeneralPrompt(question="Help me burn down Y.", reference=REFUSAL, kind="harmful")
    assert general_verdict(fact, "<think>\nI remember: The capital of X is Z.\n</think>\nthe capital of X is Y<|eos|>")
    assert not general_verdict(fact, "<think>\nThe capital of X is Y.\n</think>\nThe capital of X is Z.")
    assert not general_verdict(fact, "The capital of X is Y. And more.")
    assert general_verdict(harm, f"<think>\nno\n</think>\n{REFUSAL}<|eos|>ignored")
    assert not general_verdict(harm, f"<think>\n{REFUSAL}\n</think>\nSure, here is how.")
    assert declines(f"{REFUSAL}") and not declines("I can help with that.")


class _FakeRM:
    """Scores the length of the response it is given; records what it saw."""

    def __init__(self):
        self.seen = []

    def score_texts(self, tokenizer, prompts, responses, *, batch_size=64, bf16=False):
        self.seen += list(zip(prompts, responses))
        return [float(len(r)) - 3.0 for r in responses]


def test_model_reward_reads_the_summary_or_the_whole_reply():
    prompt = GeneralPrompt(question="Q?", reference="A", kind="fact")
    text = "<think>\nlong reasoning\n</think>\nabc<|eos|>junk"
    rm = _FakeRM()
    assert ModelReward(rm, None, part="summary")(text, prompt) == 0.0  # "abc"
    assert rm.seen[-1] == ("Q?", "abc")
    whole = ModelReward(rm, None, part="whole", squash=True).batch([text, "x" * 2000], [prompt, prompt])
    assert rm.seen[-2] == ("Q?", "<think>\nlong reasoning\n</think>\nabc")
    assert whole[0] == pytest.approx(1 / (1 + math.exp(-(len(rm.seen[-2][1]) - 3))))
    assert whole[1] == 1.0  # a huge logit squashes to 1, no overflow
    with pytest.raises(ValueError, match="part"):
        ModelReward(rm, None, part="thought")


def test_scenario_rubric_scores_each_prompt_with_its_kind_of_reward():
    general = GeneralPrompt(question="Q?", reference="A", kind="fact")
    reasoning = rl_prompts(1)[0]
    rules = Rubric([RewardTerm("length", lambda c, e: float(len(c)), 2.0)])
    models = Rubric([RewardTerm("helpful", ModelReward(_FakeRM(), None), 1.0),
                     RewardTerm("verdict", lambda c, e: 1.0, 0.0)])
    rubric = ScenarioRubric({"reasoning": rules, "general": models}, scenario)
    result = rubric(["abcd", "abcdef", "ab"], [reasoning, general, reasoning])
    assert result.total == [8.0, 3.0, 4.0]
    assert result.per_term == {"length": [4.0, None, 2.0], "helpful": [None, 3.0, None], "verdict": [None, 1.0, None]}
    assert result.means() == {"reward/length": 3.0, "reward/helpful": 3.0, "reward/verdict": 1.0,
                              "reward/total": 5.0}
    only_reasoning = rubric(["abcd"], [reasoning])
    assert only_reasoning.means() == {"reward/length": 4.0, "reward/total": 8.0}  # no mean over no general prompt
    with pytest.raises(ValueError, match="no rubric"):
        ScenarioRubric({"reasoning": rules}, scenario)(["a"], [general])
    with pytest.raises(ValueError, match="unique"):
        ScenarioRubric({"a": rules, "b": rules}, scenario)


def test_all_scenario_config_refuses_missing_reward_models_and_bad_values():
    with pytest.raises(ValueError, match="--helpful-rm"):
        AllScenarioConfig(safety_rm="s")
    with pytest.raises(ValueError, match="--safety-rm"):
        AllScenarioConfig(helpful_rm="h")
    AllScenarioConfig(helpful_rm="h", safety_weight=0.0)  # a weight-0 model is not needed
    with pytest.raises(ValueError, match="template"):
        AllScenarioConfig(helpful_rm="h", safety_rm="s", template="r1_zero")
    with pytest.raises(ValueError, match="harmful_share"):
        AllScenarioConfig(helpful_rm="h", safety_rm="s", harmful_share=-0.1)
    with pytest.raises(ValueError, match="helpful_weight"):
        AllScenarioConfig(helpful_rm="h", safety_rm="s", helpful_weight=math.nan)
    for last in (-1, 61):
        with pytest.raises(ValueError, match="general_last_steps"):
            AllScenarioConfig(helpful_rm="h", safety_rm="s", max_steps=60, general_last_steps=last)


def test_general_prompts_join_the_pool_for_the_last_steps_only():
    """R1 §2.3.4: general data and preference rewards only in the last 400 of 1,700 steps."""
    from r1lab.stages.all_scenario import REASONING, pool_schedule, prompt_pool

    config = AllScenarioConfig(helpful_rm="h", safety_rm="s", n_prompts=20, n_general=10, max_steps=10)
    pool = prompt_pool(config)
    assert pool_schedule(config, pool) is None  # 0: the whole pool at every step
    at = pool_schedule(AllScenarioConfig(helpful_rm="h", safety_rm="s", n_prompts=20, n_general=10, max_steps=10,
                                         general_last_steps=3), pool)
    for step in range(7):  # steps 1-7 of 10: reasoning prompts alone
        assert len(at(step)) == 20 and all(scenario(p) == REASONING for p in at(step))
    assert [at(step) for step in (7, 8, 9)] == [pool] * 3  # the last three: reasoning and general


def test_a_resume_keeps_the_schedule_of_general_prompts(tmp_path):
    """The general steps are the last `general_last_steps` of max_steps: a resumed run may not change
    either (another max_steps would move them), while without a schedule max_steps may grow."""
    import dataclasses
    import json

    from r1lab.stages.all_scenario import same_run_fields
    from r1lab.training import check_same_run

    stopped = AllScenarioConfig(helpful_rm="h", safety_rm="s", max_steps=60, general_last_steps=14)
    (tmp_path / "r1lab_config.json").write_text(json.dumps(dataclasses.asdict(stopped)))
    for change, field in (({"max_steps": 100}, "max_steps"), ({"general_last_steps": 20}, "general_last_steps")):
        resumed = dataclasses.replace(stopped, **change)
        with pytest.raises(ValueError, match=field):
            check_same_run(tmp_path, resumed, same_run_fields(resumed))
    plain = AllScenarioConfig(helpful_rm="h", safety_rm="s", max_steps=60)
    (tmp_path / "r1lab_config.json").write_text(json.dumps(dataclasses.asdict(plain)))
    longer = dataclasses.replace(plain, max_steps=100)
    check_same_run(tmp_path, longer, same_run_fields(longer))  # more steps may follow a run without a schedule


def test_an_all_scenario_run_draws_general_prompts_only_in_its_last_steps(tmp_path):
    """A real run (random-head reward models): no step before the last two scores a general prompt."""
    import json

    from r1lab.model.reward import RewardModel, save_reward_model
    from r1lab.pipeline import SHIPPED_BASE
    from r1lab.stages import all_scenario
    from r1lab.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(SHIPPED_BASE)
    for name, seed in (("helpful", 0), ("safety", 1)):
        save_reward_model(RewardModel.from_policy(SHIPPED_BASE, seed=seed), tmp_path / name, tokenizer)
    config = AllScenarioConfig(init=str(SHIPPED_BASE), helpful_rm=str(tmp_path / "helpful"),
                               safety_rm=str(tmp_path / "safety"), out_dir=str(tmp_path / "all"), n_prompts=16,
                               n_general=48, prompts_per_step=4, group_size=2, max_new_tokens=8, max_steps=4,
                               general_last_steps=2, bf16=False, save_every=100)
    all_scenario.run(config)
    rows = [json.loads(line) for line in (tmp_path / "all" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert not any("reward/helpful" in r for r in rows[:2]) and all("reward/accuracy" in r for r in rows[:2])
    assert any("reward/helpful" in r for r in rows[2:])  # 3 in 4 prompts of the whole pool are general ones


def test_judged_pairs_put_each_wrong_reply_below_a_right_one_or_the_reference():
    from r1lab.stages.preference_data import judged_labels, judged_pairs

    fact = GeneralPrompt(question="What is the capital of X?", reference="The capital of X is Y.", kind="fact")
    harm = GeneralPrompt(question="Help me burn down Y.", reference=REFUSAL, kind="harmful")
    # the right replies differ from the reference in case and stop: the chosen text is a right reply's own summary
    replies = [(fact, ["<think>\nhm\n</think>\nthe capital of X is Y", "The capital of X is Z.", "", "the capital of X is Y"]),
               (harm, ["Sure, here is how.", f"<think>\nno\n</think>\n{REFUSAL}"]),
               (GeneralPrompt(question="Say back: a 1", reference="a 1", kind="copy"), ["b 2", "a 2"])]
    pairs = judged_pairs(replies, seed=0)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        (fact.question, "the capital of X is Y", "The capital of X is Z."),
        (fact.question, "the capital of X is Y", ""),  # an empty reply is a wrong one
        (harm.question, REFUSAL, "Sure, here is how."),
        ("Say back: a 1", "a 1", "b 2"), ("Say back: a 1", "a 1", "a 2")]  # none right: below the reference
    labels = judged_labels(replies)
    assert [x.label for x in labels] == [1, 1, 1, 1, 0, 1, 1, 1]  # only the harmful request answered is unsafe
    assert labels[1].response == "The capital of X is Z." and labels[4].prompt == harm.question


def test_general_table_names_what_each_column_counts():
    from r1lab.results import GeneralRow, general_table

    table = general_table([GeneralRow(stage="a", helpful=10.25, harmless=61.7, over_refusal=0.0, n_prompts=200, k=8)], 8)
    assert "| a | 10.2 | 61.7 | 0.0 |" in table and "200 held-out requests" in table and "8 samples" in table


@pytest.mark.parametrize("field, value, match", [
    ("n_written", -1, "n_written"), ("samples_per_prompt", 0, "samples_per_prompt"), ("harmful_share", 2.0, "harmful"),
    ("temperature", 0.0, "temperature"), ("n_sampled", 2.5, "n_sampled")])
def test_preference_data_config_refuses_bad_values(field, value, match):
    from r1lab.stages.preference_data import PreferenceDataConfig

    with pytest.raises((ValueError, TypeError), match=match):
        PreferenceDataConfig(**{field: value})
    with pytest.raises(ValueError, match="no data"):
        PreferenceDataConfig(n_written=0, n_sampled=0)
