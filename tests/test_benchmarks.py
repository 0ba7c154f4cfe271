"""The training-step benchmark's plumbing (timings themselves are not tested)."""

import pytest

from benchmarks import train_step


def test_train_benchmark_of_chosen_cases_writes_a_table(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert train_step.main(["--only", "tiny:2", "--repeats", "1", "--out", str(out)]) == 0
    table = out.read_text()
    assert "`--only tiny:2`" in table and "| tiny | 16x16 | 2 |" in table
    assert "paper64" not in table
    with pytest.raises(SystemExit):
        train_step.main(["--only", "tiny"])
