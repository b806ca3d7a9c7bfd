"""start_run on an --out-dir that is a file says so, as rejection-sample does."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from r1lab import training


@dataclass
class _Config:
    out_dir: str
    seed: int = 0


def test_an_out_dir_that_is_a_file_is_named_as_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=f"^cannot use {tmp_path / 'afile'} as a directory: it is a file$"):
        training.start_run(_Config(out_dir=str(tmp_path / "afile")), "sft", fresh=True)
    with pytest.raises(ValueError, match=f"{tmp_path / 'afile'} is a file, not a directory$"):
        training.start_run(_Config(out_dir=str(tmp_path / "afile" / "run")), "sft", fresh=True)
    assert (tmp_path / "afile").read_text() == "x"
