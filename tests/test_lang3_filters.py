"""Readability filters (r1lab.filters) found wrong by the lang3 review: each test failed before its fix."""

from __future__ import annotations

import pytest

from r1lab.filters import SCRIPT, WORLD, language_share, mixes_languages

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
