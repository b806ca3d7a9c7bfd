"""`r1lab demo` as a user meets it (found by a review helper; each test failed before its fix)."""

from __future__ import annotations

import pytest

from r1lab import cli


@pytest.mark.parametrize("out", ["", "  "])
def test_demo_with_a_blank_out_is_refused_before_running(out, monkeypatch, capsys):
    # Path("") is the working directory: the demo used to start and write eval/ and zero/ there
    import r1lab.demo

    ran = []
    monkeypatch.setattr(r1lab.demo, "run", ran.append)
    assert cli.main(["demo", "--out", out]) == 2
    assert ran == []
    assert capsys.readouterr().err.strip() == f"r1lab demo: error: --out must name a path, got {out!r}"
