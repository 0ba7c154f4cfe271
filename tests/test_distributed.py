"""Data-parallel training: N processes of ``unitlab train`` under torchrun take the same steps
as one process with the same global batch, and a run resumes on another number of processes.

Real ``torchrun`` launches on the CPU (gloo), as a user types them; a few steps of the tiny
preset each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LOSSES = ("dis", "gen", "gan", "kl", "recon", "cycle_kl", "cycle")


def unitlab(tmp_path, processes: int, *args: str) -> subprocess.CompletedProcess:
    """``unitlab train --preset tiny ...`` in one process, or under torchrun in several."""
    launcher = [sys.executable, "-m", "unitlab"]
    if processes > 1:
        launcher = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", "-m", "unitlab",
        ]  # fmt: skip
    command = [*launcher, "train", "--preset", "tiny", "--out", str(tmp_path), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, "--set", "log_every=1", *args],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def losses(run_dir) -> dict[int, dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {row["step"]: {k: row[k] for k in LOSSES} for row in rows}


def assert_same_losses(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for step in expected:
        for name in LOSSES:
            assert got[step][name] == pytest.approx(expected[step][name], rel=1e-4, abs=1e-6), (
                step,
                name,
            )


def test_two_processes_of_batch_b_match_one_of_batch_2b_and_resume_in_one(tmp_path):
    one = unitlab(tmp_path, 1, "--name", "one", "--steps", "4", "--batch-size", "4")
    assert one.returncode == 0, one.stderr
    two = unitlab(tmp_path, 2, "--name", "two", "--steps", "2", "--batch-size", "4")
    assert two.returncode == 0, two.stderr
    # rank 0 alone reports and writes: one report, one log line per step
    assert two.stdout.count("run saved in") == 1
    reference = losses(tmp_path / "one")
    assert_same_losses(losses(tmp_path / "two"), {s: reference[s] for s in (1, 2)})
    # the two-process checkpoint continues in one process as if one had run all along
    resumed = unitlab(tmp_path, 1, "--name", "two", "--steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_losses(losses(tmp_path / "two"), reference)
    # the held-out scores of the two finished runs agree too
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert b["unit"] == pytest.approx(a["unit"], abs=0.01)


def test_a_global_batch_that_the_processes_cannot_share_is_refused(tmp_path):
    done = unitlab(tmp_path, 2, "--steps", "1", "--batch-size", "3")
    assert done.returncode != 0
    assert "batch_size=3 (the global batch) must be divisible by the 2 processes" in done.stderr
    assert not (tmp_path / "tiny" / "checkpoint.pt").exists()
