"""Readability filters, the funnel that counts them, dedupe and dataset stats (r1lab.filters)."""

from __future__ import annotations

import json

import pytest

import r1lab.world as world
from r1lab.filters import (
    READABILITY_FILTERS,
    SCRIPT,
    WORLD,
    DatasetStats,
    Deduper,
    Funnel,
    ReadabilityConfig,
    check_readability,
    dedupe_key,
    has_code_block,
    has_repeated_lines,
    is_r1_format,
    language_share,
    longest_paragraph,
    mixes_languages,
    reasoning_lines,
)

GOOD = "<think>\nLet me compute step by step.\nFirst, 20-8=12, so 12+4.\nThen 12+4=16.\n</think>\nThe value of 20-8+4 is 16."


def test_a_readable_response_passes_every_filter():
    result = check_readability(GOOD)
    assert result.ok and result.passed() == list(READABILITY_FILTERS)
    assert READABILITY_FILTERS == ("r1_format", "language", "repetition", "paragraph_length", "code_block")


@pytest.mark.parametrize("language", ["en", "vl"])
def test_the_worlds_long_cot_is_readable_in_its_own_language_only(language):
    other = "vl" if language == "en" else "en"
    problems = world.problem_set(world.PRETRAIN, 20, seed=3, kinds=("arithmetic", "countdown"))
    for problem in problems:
        response = world.long_cot(problem, language)
        assert check_readability(response, ReadabilityConfig(language=language)).ok, response
        assert not check_readability(response, ReadabilityConfig(language=other)).language


@pytest.mark.parametrize("response", [
    "<think> 3+4=7 </think> <answer> 7 </answer>",  # R1-Zero's tags, not the R1 format
    "<think>\n3+4=7\n</think>\n   ",  # no summary
    "3+4=7. The answer is 7.",  # no think block
    "<think>\n3+4=7\n</think>\nIt is 7.<think>\nagain\n</think>\n7",  # two think blocks
])
def test_r1_format_needs_one_think_block_and_a_summary(response):
    assert not is_r1_format(response)
    assert not check_readability(response).r1_format


def test_r1_format_ignores_what_follows_the_end_of_sequence():
    assert is_r1_format(GOOD + "<|eos|>garbage <answer>")


@pytest.mark.parametrize("token", ["<|assistant|>", "<|pad|>"])
def test_a_sampled_control_token_fails_the_format(token):
    """Decoded model text keeps control tokens; kept, SFT would train them as real ones."""
    assert not is_r1_format(GOOD.replace("Then 12+4=16.", f"Then{token} 12+4=16."))
    assert not check_readability(GOOD.replace("</think>", f"{token}</think>")).r1_format


def test_language_mixing_counts_reasoning_and_summary_words():
    velari_line = GOOD.replace("Then 12+4=16.", "Pori 12+4=16.")
    velari_summary = GOOD.replace("The value of 20-8+4 is 16.", "Keta 20-8+4 ve 16.")
    assert mixes_languages(velari_line) and mixes_languages(velari_summary) and not mixes_languages(GOOD)
    # 13 words: "Let me compute step by step", "First", "so", "Pori", "The value of", "is"; one is Velari
    assert language_share(velari_line) == 12 / 13
    assert not mixes_languages(velari_line, min_share=0.8)  # a lower threshold tolerates it
    assert not mixes_languages(velari_line, min_share=12 / 13)  # a share of exactly the minimum is enough
    assert mixes_languages(velari_line, min_share=0.93)
    assert not check_readability(velari_line).language
    assert check_readability(velari_line, ReadabilityConfig(min_language_share=0.8)).language
    assert language_share(GOOD.replace("Then", "Blorp")) < 1.0  # unknown words count against the target


def test_script_classifier_for_real_text():
    config = ReadabilityConfig(classifier="script", language="en")
    assert check_readability("<think>\nso 3 plus 4 is 7\n</think>\nThe answer is 7.", config).language
    assert not check_readability("<think>\nso 3 plus 4 是 七\n</think>\nThe answer is 7.", config).language
    chinese = ReadabilityConfig(classifier="script", language="zh")
    assert check_readability("<think>\n三 加 四 是 七\n</think>\n七", chinese).language


def test_maths_tokens_are_neutral_for_the_script_classifier():
    """Variables and formulas ("x", "2x", "θ", "4π", "f(x)") are maths, not words of another language."""
    english = "<think>\nThe angle θ is π over 2, so the area is 4π and f(x) = 2x.\n</think>\nThe area is 4π."
    chinese = "<think>\n设 x 为 2x 加 一 , 则 f(x) = 4π\n</think>\nx 为 七"
    assert language_share(english, "en", "script") == 1.0 and language_share(chinese, "zh", "script") == 1.0
    assert not mixes_languages(english, "en", classifier="script")
    assert mixes_languages("<think>\nThe angle is 直角\n</think>\nIt is right.", "en", classifier="script")
    assert language_share("<think>\nθέμα is Greek\n</think>\nok", "en", "script") == 0.75  # a Greek word counts


def test_the_script_classifier_rejects_a_language_it_has_no_script_for():
    """'ja' has no entry in the script table: scoring every response 0 would hide the mistake."""
    with pytest.raises(ValueError, match="'ja'"):
        ReadabilityConfig(classifier="script", language="ja")
    with pytest.raises(ValueError, match="'ja'"):
        language_share("<think>\n三 加 四\n</think>\n七", "ja", "script")


def test_delimiter_lines_of_display_equations_are_not_repetition():
    """Every display equation opens with \\[ and closes with \\]: those lines repeat in any LaTeX CoT."""
    latex = ("<think>\nFirst,\n\\[\n20-8=12\n\\]\nthen\n\\[\n12+4=16\n\\]\n$$\n16\n$$\n"
             "\\begin{aligned}\n16 &= 16\n\\end{aligned}\n\\begin{aligned}\n2 &= 2\n\\end{aligned}\n</think>\nIt is 16.")
    assert not has_repeated_lines(latex) and check_readability(latex).repetition
    assert has_repeated_lines(latex.replace("12+4=16", "20-8=12"))  # a repeated step still counts


def test_tilde_fences_are_code_blocks_too():
    tilde = "<think>\nLet me compute.\n~~~python\nprint(20-8+4)\n~~~\n</think>\nThe value of 20-8+4 is 16."
    assert has_code_block(tilde) and not check_readability(tilde).code_block
    assert not has_code_block("<think>\nSo x ~ 5.\n</think>\n5")
    # a lone \r ends a line too (str.splitlines, CommonMark; the tokenizer can emit it)
    assert has_code_block("<think>\nFirst, 2+3=5.\r~~~\r5\r~~~\n</think>\n5")


def test_repeated_lines_are_found_in_the_reasoning_only():
    assert has_repeated_lines(GOOD.replace("Then 12+4=16.", "Then 12+4=16.\n  then 12+4=16. "))
    assert not has_repeated_lines(GOOD)
    assert not has_repeated_lines("<think>\nFirst, 2+3=5.\n\n\nThen 5*2=10.\n</think>\nThen 5*2=10.")  # blank lines, summary
    assert reasoning_lines("<think>\na\n\n b \n</think>\nc") == ["a", "b"]


def test_paragraph_length_is_the_longest_reasoning_line():
    line = "First, 20-8=12, so 12+4."
    response = f"<think>\n{line}\n</think>\n" + "x" * 500  # a long summary is not a reasoning paragraph
    assert longest_paragraph(response) == len(line)
    assert check_readability(response, ReadabilityConfig(max_paragraph_chars=len(line))).paragraph_length
    assert not check_readability(response, ReadabilityConfig(max_paragraph_chars=len(line) - 1)).paragraph_length
    wall = "<think>\n" + " ".join(["First, 20-8=12, so 12+4."] * 6) + "\n</think>\nIt is 16."
    assert not check_readability(wall).paragraph_length


@pytest.mark.parametrize("separator", ["\v", "\f", "\x1c", "\x85", "\u2028", "\u2029"])
def test_a_paragraph_joined_by_characters_that_are_no_line_end_is_one_line(separator):
    """Markdown ends a line at \\n, \\r\\n or \\r only; str.splitlines also splits at these, which
    display inside the line: six 24-character steps joined by one were six short lines."""
    steps = ["First, 20-8=12, so 12+4."] * 6
    wall = "<think>\n" + separator.join(steps) + "\n</think>\nIt is 16."
    assert longest_paragraph(wall) == 6 * 24 + 5
    assert not check_readability(wall).paragraph_length
    assert reasoning_lines("<think>\na\r\nb\rc\n</think>\nd") == ["a", "b", "c"]

def test_code_blocks_in_the_reasoning_fail():
    fenced = "<think>\nLet me compute.\n```python\nprint(20-8+4)\n```\n</think>\nThe value of 20-8+4 is 16."
    assert has_code_block(fenced) and not check_readability(fenced).code_block
    assert not has_code_block(GOOD + "\n```")  # in the summary: not a chain-of-thought code block
    assert check_readability(GOOD.replace("16.\n</think>", "16 `inline`.\n</think>")).code_block


@pytest.mark.parametrize("junk", [None, 7, "", "<think>", "</think>", "<|eos|>", "<think>\n" * 3])
def test_filters_never_raise_on_junk(junk):
    result = check_readability(junk)
    assert not result.r1_format and not result.ok
    assert isinstance(language_share(junk), float) and longest_paragraph(junk) >= 0


def test_readability_config_rejects_bad_settings():
    for bad in (dict(language="zh"), dict(classifier="bayes"), dict(min_language_share=1.5), dict(max_paragraph_chars=0)):
        with pytest.raises(ValueError):
            ReadabilityConfig(**bad)


def test_funnel_counts_reached_and_kept_per_filter_in_order():
    funnel = Funnel.of("src", ["a", "b", "c"])
    outcomes = [(True, True, True), (True, False, True), (False, True, True), (True, True, False), (True, True, True)]
    kept = [funnel.admit(zip("abc", o)) for o in outcomes]
    assert kept == [True, False, False, False, True]
    assert [(f.name, f.reached, f.kept) for f in funnel.filters] == [("a", 5, 4), ("b", 4, 3), ("c", 3, 2)]
    assert [f.kept_fraction for f in funnel.filters] == [0.8, 0.75, 2 / 3]
    assert (funnel.candidates, funnel.kept, funnel.kept_fraction) == (5, 2, 0.4)
    assert Funnel.of("empty", ["a"]).filters[0].kept_fraction is None


def test_funnel_stops_pulling_checks_at_the_first_failure():
    computed = []

    def checks(first_ok):
        computed.append("a")
        yield "a", first_ok
        computed.append("b")
        yield "b", True

    funnel = Funnel.of("src", ["a", "b"])
    funnel.admit(checks(False))
    assert computed == ["a"]
    funnel.admit(checks(True))
    assert computed == ["a", "a", "b"]
    with pytest.raises(ValueError, match="expected filter 'a'"):
        funnel.admit([("b", True), ("a", True)])


def test_dedupe_normalises_spacing_and_case_but_not_content():
    key = dedupe_key("Compute 2+3", "<think>\n5\n</think>\nIt is 5.")
    assert key == dedupe_key(" compute 2+3", "<think> 5 </think> it is 5. ")
    assert dedupe_key("Compute 2+3", "It is 5.") != dedupe_key("Compute 2+4", "It is 5.")
    deduper = Deduper()
    assert [deduper.add(p, r) for p, r in [("q", "a"), ("Q", "A "), ("q", "b"), ("q2", "a")]] == [True, False, True, True]


def test_deduper_membership_normalises_like_add_and_records_nothing():
    """Rejection sampling asks `(prompt, response) not in dedupe` before it adds the pair."""
    deduper = Deduper()
    assert ("q", "a") not in deduper
    assert deduper.add("Compute 2+3", "It is  5.")
    assert ("compute 2+3 ", "It is 5.") in deduper and ("Compute 2+3", "It is 6.") not in deduper
    assert len(deduper.seen) == 1  # membership records nothing


def test_a_think_tag_with_no_space_around_it_still_separates_words():
    """'so</think>It' is two words; read as 'soIt', one unknown word, the share fell from 3/4 to 1/3."""
    # words: Pori (Velari), so, It, is (English); "2+3=5," and "5." hold no letters
    assert language_share("<think>Pori 2+3=5, so</think>It is 5.") == 3 / 4


def test_an_indented_tilde_fence_is_a_code_block():
    """CommonMark allows a fence indented by up to three spaces."""
    assert has_code_block("<think>\nLet me compute.\n  ~~~\nprint(5)\n  ~~~\n</think>\n5")
    assert has_code_block("<think>\nLet me compute.\n\t~~~python\nprint(5)\n</think>\n5")


def test_dataset_stats_round_trip_as_json(tmp_path):
    funnel = Funnel.of("src", ["a"])
    funnel.admit([("a", True)])
    stats = DatasetStats(data="d.jsonl", examples=1, sources=[funnel], config={"seed": 0})
    path = stats.write(tmp_path / "s" / "stats.json")
    stats = json.loads(path.read_text())
    assert stats["examples"] == 1 and stats["config"] == {"seed": 0}
    assert stats["sources"][0] == {"source": "src", "candidates": 1, "kept": 1, "kept_fraction": 1.0,
                                   "filters": [{"name": "a", "reached": 1, "kept": 1, "kept_fraction": 1.0}]}


def test_dataset_stats_are_written_atomically(tmp_path, monkeypatch):
    """A crash before the rename leaves the earlier stats file whole, and no stray temporary file."""
    path = DatasetStats(data="d.jsonl", examples=1, sources=[], config={}).write(tmp_path / "stats.json")
    before = path.read_text()

    def crash(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr("r1lab.data.os.replace", crash)
    with pytest.raises(OSError, match="power cut"):
        DatasetStats(data="d.jsonl", examples=2, sources=[], config={}).write(path)
    assert path.read_text() == before and json.loads(before)["examples"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json"]


def test_a_funnel_given_too_few_checks_says_which_is_missing():
    """A bare StopIteration escaped (a RuntimeError without the cause inside a generator, PEP 479)."""
    funnel = Funnel.of("demo", ["correct", "short"])
    with pytest.raises(ValueError, match="expected filter 'short', got None"):
        funnel.admit([("correct", True)])


def test_a_funnel_given_more_checks_than_filters_refuses_the_extra():
    """A check after the funnel's last filter was never applied: a sample failing it was kept."""
    funnel = Funnel.of("demo", ["correct"])
    with pytest.raises(ValueError, match="check 'short' after its last filter 'correct'"):
        funnel.admit([("correct", True), ("short", False)])
    assert Funnel.of("demo", ["correct"]).admit(iter([("correct", True)]))  # exactly its filters: fine


def test_every_think_block_is_reasoning():
    """A code fence or a repeated line in a second <think> block was not seen."""
    two = "<think>\nFirst, 2+3=5.\n</think> <think>\n```\nprint(5)\n```\nFirst, 2+3=5.\n</think>\nIt is 5."
    assert reasoning_lines(two) == ["First, 2+3=5.", "```", "print(5)", "```", "First, 2+3=5."]
    assert has_code_block(two) and has_repeated_lines(two)


# The language-mixing filter's classifier: the world's lexicon or Unicode script, nothing else.
VELARI = "<think>\nTuka, 2+3=5.\n</think>\nTu ve 5."


@pytest.mark.parametrize("classifier", ["lexicon", "World", ""])
def test_an_unknown_classifier_is_refused(classifier):
    """Any classifier name but "world" was read as "script", by which Velari (Latin letters) is
    English: a typo kept every Velari response as unmixed English."""
    with pytest.raises(ValueError, match=f"classifier must be 'world' or 'script', got {classifier!r}"):
        mixes_languages(VELARI, "en", 1.0, classifier)


def test_the_two_classifiers_still_score_as_before():
    assert language_share(VELARI, "en", WORLD) == 0.0 and language_share(VELARI, "vl", WORLD) == 1.0
    assert language_share(VELARI, "en", SCRIPT) == 1.0  # Tuka, Tu, ve: Latin words; the script classifier knows no lexicon


# The dedupe key keeps prompt and response apart, whatever characters they hold.
def test_pairs_split_differently_around_a_nul_are_different_examples():
    """"a\\x00b" + "c" and "a" + "b\\x00c" had the same key: the second pair was dropped as a duplicate."""
    assert dedupe_key("a\x00b", "c") != dedupe_key("a", "b\x00c")
    deduper = Deduper()
    assert [deduper.add("a\x00b", "c"), deduper.add("a", "b\x00c"), deduper.add("A\x00b", "c ")] == [True, True, False]


# Every filter reads the same text, the reply up to a made-up new turn; a response that goes on past it fails r1_format.
def test_every_filter_reads_the_reply_and_a_made_up_turn_fails_the_format():
    turn = "<think>\nFirst, 2+3=5.\n</think>\nIt is 5.\nUser: Tuka pori?\n```\nprint(5)\n```"
    assert language_share(turn, "en", WORLD) == 1.0 == language_share(turn, "en", SCRIPT)
    assert not has_code_block(turn) and longest_paragraph(turn) == 13
    assert check_readability(turn).passed() == ["language", "repetition", "paragraph_length", "code_block"]
    assert is_r1_format(turn.split("\nUser:")[0])  # the same reply without the made-up turn is kept


# ReadabilityConfig's errors name the field and the value given
@pytest.mark.parametrize("bad, message", [
    ({"classifier": "bayes"}, r"^ReadabilityConfig\.classifier must be 'world' or 'script', got 'bayes'$"),
    ({"language": "zh"}, r"^ReadabilityConfig\.language must be one of the world's languages 'en' and 'vl', got 'zh'$"),
    ({"classifier": "script", "language": "ja"}, r"^ReadabilityConfig\.language must be one of the script .*got 'ja'$"),
    ({"min_language_share": float("nan")}, r"^ReadabilityConfig\.min_language_share must be in \[0, 1\], got nan$"),
    ({"max_paragraph_chars": 0}, r"^ReadabilityConfig\.max_paragraph_chars must be >= 1, got 0$"),
    # NaN passed ">= 1" and then dropped every response as a long paragraph, in silence; a text or
    # True got past (a TypeError naming no setting, or a limit of 1)
    ({"max_paragraph_chars": float("nan")}, r"^ReadabilityConfig\.max_paragraph_chars must be an integer, got nan$"),
    ({"max_paragraph_chars": "100"}, r"^ReadabilityConfig\.max_paragraph_chars must be an integer, got '100'$"),
    ({"max_paragraph_chars": True}, r"^ReadabilityConfig\.max_paragraph_chars must be an integer, got True$"),
    ({"min_language_share": "0.8"}, r"^ReadabilityConfig\.min_language_share must be a number, got '0\.8'$"),
    ({"min_language_share": True}, r"^ReadabilityConfig\.min_language_share must be a number, got True$"),
])
def test_readability_config_errors_name_the_field_and_value(bad, message):
    with pytest.raises(ValueError, match=message):
        ReadabilityConfig(**bad)
