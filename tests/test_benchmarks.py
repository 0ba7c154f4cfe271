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


def test_gpu_check_dry_run_exercises_the_script_on_the_cpu(tmp_path):
    """The GPU session's one command, its plumbing checked where CI runs: the paper preset
    trained end to end (toy size) on a generated maps sample, the page written."""
    from benchmarks import gpu_check

    out = tmp_path / "page.md"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    page = out.read_text()
    assert "GPU: none (dry run on the CPU)" in page
    for precision in ("fp32", "bf16"):
        row = next(line for line in page.splitlines() if line.startswith(f"| torch | {precision}"))
        assert row.endswith("| yes |")  # trained, every loss finite
        assert f"| triton | {precision} | needs CUDA |" in page
