"""Nothing lost, nothing mixed: run-folder ownership, resume, interrupts, crashes, full disks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from unitlab import checkpoint as ckpt
from unitlab.checkpoint import load_checkpoint
from unitlab.cli import main
from unitlab.run import LOCK_NAME, RunFolderInUse, RunLock
from unitlab.trainer import Trainer


def train_tiny(tmp_path, *extra):
    return main(["train", "--preset", "tiny", "--out", str(tmp_path), "--no-progress", *extra])


def _steps(path):
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    """Two real `unitlab train` processes, one folder: the second is refused, naming the folder
    and the owner's PID; once the owner is killed (-9), its lock is gone with it."""
    cmd = [
        sys.executable,
        "-m",
        "unitlab.cli",
        "train",
        "--preset",
        "tiny",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [*cmd, "--steps", "100000"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        lock = tmp_path / "tiny" / LOCK_NAME
        deadline = time.time() + 120
        while not (lock.is_file() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.1)
        second = subprocess.run(
            [*cmd, "--steps", "3"], env=env, capture_output=True, text=True, timeout=300
        )
        assert second.returncode == 2
        assert f"in use by process {first.pid}" in second.stderr
        assert str(tmp_path / "tiny") in second.stderr
        assert second.stderr.count("\n") == 1  # one line, no traceback
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with RunLock(tmp_path / "tiny"):  # a crashed owner leaves no stale lock
        pass


def test_run_lock_in_one_process():
    import tempfile

    with tempfile.TemporaryDirectory() as d, RunLock(d):
        with pytest.raises(RunFolderInUse, match=str(os.getpid())):
            RunLock(d).acquire()


def test_resume_refuses_a_changed_config_naming_each_field(tmp_path, capsys):
    assert train_tiny(tmp_path, "--steps", "2") == 0
    capsys.readouterr()
    for extra, named in (
        (["--batch-size", "2"], "batch_size"),
        (["--set", "optim.lr=0.5"], "optim.lr"),
        (["--set", "model.n_shared=0", "--seed", "3"], "model.n_shared"),
    ):
        assert train_tiny(tmp_path, "--resume", "--steps", "4", *extra) == 2
        err = capsys.readouterr().err
        assert named in err and "cannot change" in err
    assert (
        main(
            [
                "train",
                "--preset",
                "mapworld32",
                "--name",
                "tiny",
                "--out",
                str(tmp_path),
                "--resume",
            ]
        )
        == 2
    )
    assert "preset" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "tiny")["step"] == 2  # nothing was trained or written


def test_steps_extend_a_run_and_the_files_agree(tmp_path):
    assert train_tiny(tmp_path, "--steps", "3") == 0
    assert train_tiny(tmp_path, "--resume", "--steps", "5") == 0
    run = tmp_path / "tiny"
    assert json.loads((run / "config.json").read_text())["steps"] == 5
    state = load_checkpoint(run)
    assert state["step"] == 5 and state["config"]["steps"] == 5
    assert train_tiny(tmp_path, "--resume", "--steps", "2") == 2  # below what was done


def test_resume_after_a_kill_logs_every_step_once_and_cleans_stale_files(tmp_path):
    assert train_tiny(tmp_path, "--steps", "4", "--set", "checkpoint_every=2") == 0
    run = tmp_path / "tiny"
    # what a kill -9 after step 6 (checkpoint at 4) and during a save leaves behind
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 5, "seconds": 1}\n{"step": 6, "seconds": 2}\n{"step": 7, "sec')
    stale = run / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert train_tiny(tmp_path, "--resume", "--steps", "6") == 0
    assert _steps(run / "log.jsonl") == [1, 2, 3, 4, 5, 6]
    assert not stale.exists() and not list(run.glob(".*.tmp"))


def test_an_interrupt_reports_what_the_checkpoint_holds(tmp_path, capsys, monkeypatch):
    assert train_tiny(tmp_path, "--steps", "4") == 0
    original = Trainer.train_step

    def interrupted_at_7(self, x_a, x_b):
        if self.step == 6:  # e.g. a second Ctrl-C: no graceful save
            raise KeyboardInterrupt
        return original(self, x_a, x_b)

    monkeypatch.setattr(Trainer, "train_step", interrupted_at_7)
    capsys.readouterr()
    assert train_tiny(tmp_path, "--resume", "--steps", "20") == 130
    err = capsys.readouterr().err
    assert "interrupted at step 6" in err and "holds step 4" in err
    assert load_checkpoint(tmp_path / "tiny")["step"] == 4


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    assert train_tiny(tmp_path, "--steps", "2") == 0
    capsys.readouterr()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", no_space)
    assert train_tiny(tmp_path, "--resume", "--steps", "4") == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "\n" not in err
    monkeypatch.undo()
    run = tmp_path / "tiny"
    assert load_checkpoint(run)["step"] == 2 and not list(run.glob(".*.tmp"))
    assert isinstance(torch.load(run / "checkpoint.pt", weights_only=True), dict)
