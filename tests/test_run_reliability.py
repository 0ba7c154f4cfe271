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

    def interrupted_at_7(self, x_a=None, x_b=None):
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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert (
        main(["train", "--preset", "tiny", "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    )
    return out / "tiny"


def _png(path, size=(20, 24)):
    import matplotlib.image as mpimg
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    mpimg.imsave(path, np.random.default_rng(0).random((*size, 3)).astype("float32"))
    return path


def _translate(run, out, *inputs, extra=()):
    return main(
        ["translate", "--checkpoint", str(run), *map(str, inputs), "--out", str(out), *extra]
    )


def test_translate_keeps_same_named_inputs_apart_and_never_overwrites(tiny_run, tmp_path, capsys):
    x, y = _png(tmp_path / "in" / "x" / "s.png"), _png(tmp_path / "in" / "y" / "s.png")
    out = tmp_path / "o"
    assert _translate(tiny_run, out, x, y) == 0
    assert (out / "x" / "s_a2b.png").is_file() and (out / "y" / "s_a2b.png").is_file()
    before = (out / "x" / "s_a2b.png").stat().st_mtime_ns
    capsys.readouterr()
    assert _translate(tiny_run, out, x, y) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "x" / "s_a2b.png").stat().st_mtime_ns == before
    assert _translate(tiny_run, out, x, y, extra=["--overwrite"]) == 0
    assert _translate(tiny_run, tmp_path / "flat", x) == 0  # one folder: flat names as before
    assert (tmp_path / "flat" / "s_a2b.png").is_file()


def test_translate_reads_every_input_before_writing_any(tiny_run, tmp_path, capsys):
    good1, good2 = _png(tmp_path / "a.png"), _png(tmp_path / "c.png")
    bad = tmp_path / "b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "o"
    assert _translate(tiny_run, out, good1, bad, good2) == 2
    assert "b.png" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_translate_refuses_huge_images_from_the_header(tiny_run, tmp_path, capsys):
    from PIL import Image

    from unitlab.images import default_max_pixels

    side = 4200  # 17.6 M pixels > (128 * 16)^2 for the 16 px tiny model; a few KB as PNG
    assert side * side > default_max_pixels(16)
    Image.new("L", (side, side)).save(tmp_path / "huge.png")
    assert _translate(tiny_run, tmp_path / "o", tmp_path / "huge.png") == 2
    err = capsys.readouterr().err
    assert "17,640,000 pixels" in err and "--max-pixels" in err
    small = _png(tmp_path / "small.png", (40, 40))
    assert _translate(tiny_run, tmp_path / "o2", small, extra=["--max-pixels", "1000"]) == 2
    assert _translate(tiny_run, tmp_path / "o3", small, extra=["--max-pixels", "2000"]) == 0


def test_mismatched_checkpoints_and_cpu_triton_are_one_line_errors(
    tiny_run, tmp_path, capsys, monkeypatch
):
    state = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    state["config"]["model"]["base_channels"] = 4  # the config no longer describes the weights
    torch.save(state, tmp_path / "bad.pt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "do not match its own config" in err and "\n" not in err

    run_dir = tmp_path / "runs"
    (run_dir / "x").mkdir(parents=True)
    (run_dir / "x" / "checkpoint.pt").write_bytes((tiny_run / "checkpoint.pt").read_bytes())
    argv = ["adapt", "--source", "usps", "--target", "mnist", "--resume", "--out", str(run_dir)]
    assert main([*argv, "--name", "x"]) == 2
    assert "not a digit-adaptation checkpoint" in capsys.readouterr().err

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert train_tiny(tmp_path, "--name", "t", "--set", "kernels=triton") == 2
    assert "kernels=triton needs a CUDA device" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_used_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["train", "--preset", "tiny", "--out", str(blocker), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a_file" in err and "\n" not in err and "Traceback" not in err
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse, as for a user
        import unitlab.run

        def refuse(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(unitlab.run.RunLock, "acquire", refuse)
            assert main(["train", "--preset", "tiny", "--out", str(locked), "--no-progress"]) == 2
    else:
        assert main(["train", "--preset", "tiny", "--out", str(locked), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "PermissionError" in err and "\n" not in err


def test_an_interrupt_during_start_up_is_one_line_and_leaves_no_run(tmp_path, capsys, monkeypatch):
    import unitlab.data.sources as sources

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(sources, "training_data", interrupted)
    assert train_tiny(tmp_path, "--steps", "3") == 130
    err = capsys.readouterr().err.strip()
    assert err == "unitlab train: interrupted"
    assert not (tmp_path / "tiny" / "checkpoint.pt").exists()
    monkeypatch.undo()
    assert train_tiny(tmp_path, "--steps", "3") == 0  # the lock went with the interrupted run


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_on_a_missing_gpu_is_one_line_before_any_work(tmp_path, capsys):
    assert train_tiny(tmp_path, "--device", "cuda") == 2
    err = capsys.readouterr().err.strip()
    assert err == "unitlab train: error: --device cuda: this machine has no CUDA device"
    assert not tmp_path.joinpath("tiny").exists()  # nothing generated, nothing written
    assert train_tiny(tmp_path, "--device", "gpu") == 2
    assert "--device 'gpu' is not a device name" in capsys.readouterr().err
    assert train_tiny(tmp_path, "--device", "auto", "--steps", "2") == 0  # the CPU here
