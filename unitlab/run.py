"""Runs: the run folder, its lock, and the one training loop every trainer goes through.

A *run* is a trainer taken to a number of steps, optionally in a folder that holds what it
leaves: ``config.json``, ``log.jsonl`` (losses), ``curve.jsonl`` (held-out evaluations),
``samples/``, the checkpoint and ``metrics.json``. Everything here is shared by map-world
UNIT (:class:`unitlab.trainer.Trainer`), digit adaptation (:class:`unitlab.adapt.AdaptTrainer`),
the supervised ceiling and the course's VAE, so each has the same Ctrl-C behaviour, the same
files and the same resume rules.

* :class:`RunFolder` writes the files (JSON atomically, checkpoints through
  :func:`unitlab.checkpoint.save_checkpoint`), and nothing else writes them.
* :class:`RunLock` makes a folder belong to one process: two ``unitlab train`` processes writing
  one folder would interleave their logs and leave a config from one and a checkpoint from the
  other. It is an OS lock (``flock``) on ``<run>/.lock``, which the kernel releases when the
  process exits, however it exits (a crash or ``kill -9`` included), so a stale lock never
  blocks a later run. The file holds the owner's PID, which the refusal names.
* :func:`fit` is the loop: a trainer is anything with a ``step`` counter, ``train_step()``
  (one iteration on a batch it draws itself) and ``state_dict()``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from .checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are then not locked
    fcntl = None

LOCK_NAME = ".lock"


class RunFolderInUse(ValueError):
    """Another live process owns the run folder."""


class RunLock:
    """``with RunLock(run_dir):`` owns ``run_dir`` until the block ends or the process dies."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunFolderInUse(
                    f"run folder {self.dir} is in use by process {owner}; wait for it to "
                    f"finish or choose another --name"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is left untouched."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run at the end of step ``step`` (saved, when the run has a folder)."""

    def __init__(self, step: int, message: str) -> None:
        super().__init__(message)
        self.step = step


def _replace_text(path: Path, text: str) -> Path:
    """Write ``text`` through a temp file and ``os.replace``: a reader (or a run killed
    mid-write) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


class RunFolder:
    """The files of one run folder; the only writer of them."""

    CONFIG, LOG, CURVE, METRICS, SAMPLES = (
        "config.json",
        "log.jsonl",
        "curve.jsonl",
        "metrics.json",
        "samples",
    )

    def __init__(self, path: str | Path) -> None:
        self.dir = Path(path)
        self.checkpoint = self.dir / CHECKPOINT_NAME

    def has_checkpoint(self) -> bool:
        return self.checkpoint.is_file()

    def load(self, map_location: Any = "cpu") -> dict:
        """The checkpoint's state (config, weights, step, RNG states), loaded safely."""
        return load_checkpoint(self.checkpoint, map_location=map_location)

    def save(self, state: dict) -> Path:
        return save_checkpoint(state, self.checkpoint)

    def write_json(self, name: str, data: Any) -> Path:
        """``name`` in the folder as indented JSON, written atomically."""
        return _replace_text(self.dir / name, json.dumps(data, indent=2))

    def write_config(self, config: dict) -> Path:
        return self.write_json(self.CONFIG, config)

    def write_metrics(self, metrics: dict) -> Path:
        return self.write_json(self.METRICS, metrics)

    def append(self, name: str, row: dict) -> None:
        """One JSON line at the end of ``name`` (``log.jsonl`` or ``curve.jsonl``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / name, "a") as f:
            f.write(json.dumps(row) + "\n")

    def sample_path(self, step: int) -> Path:
        return self.dir / self.SAMPLES / f"step_{step:06d}.png"

    def logged_seconds(self) -> float:
        """The ``seconds`` of the log's last row (0 for a new or unreadable log): a resumed
        run keeps counting its time from there."""
        try:
            last = (self.dir / self.LOG).read_text().strip().splitlines()[-1]
            return float(json.loads(last)["seconds"])
        except (OSError, IndexError, ValueError, KeyError, TypeError):
            return 0.0

    def truncate(self, step: int) -> None:
        """Drop the log and curve rows written after ``step``.

        A run killed between two checkpoints logged steps that its checkpoint does not hold; on
        resume those steps are trained again, so their old rows go, and every step appears once.
        Unreadable rows (a line cut by the kill) go too. Rewritten atomically.
        """
        for name in (self.LOG, self.CURVE):
            path = self.dir / name
            if not path.is_file():
                continue
            kept = []
            for line in path.read_text().splitlines():
                try:
                    if int(json.loads(line)["step"]) <= step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    continue
            _replace_text(path, "".join(f"{line}\n" for line in kept))

    def clear_logs(self) -> None:
        """A fresh run does not append to an old run's rows."""
        for name in (self.LOG, self.CURVE):
            (self.dir / name).unlink(missing_ok=True)


class Trainable(Protocol):
    """What :func:`fit` needs of a trainer."""

    step: int

    def train_step(self) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...


def fit(
    trainer: Trainable,
    steps: int,
    *,
    folder: RunFolder | None = None,
    log_every: int = 10,
    checkpoint_every: int = 250,
    evaluate: Callable[[], dict[str, float]] | None = None,
    eval_every: int = 0,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    after_step: Callable[[int, bool], None] | None = None,
    progress: bool = True,
    desc: str = "train",
    spent: float = 0.0,
) -> list[dict[str, float]]:
    """Train until ``trainer.step == steps``; return one ``{"step", **losses}`` row per step.

    Every ``eval_every`` steps and at the last step, ``evaluate()`` adds its numbers to that
    step's row, which goes to ``on_eval`` (steps are multiples of ``eval_every``, so a resumed
    run keeps the same grid of points). With a ``folder``, rows go to ``log.jsonl`` (every
    ``log_every`` steps, evaluated steps and the last one, each with the run's ``seconds``)
    and the checkpoint is written every ``checkpoint_every`` steps, at evaluated steps and at
    the end. ``after_step(step, boundary)`` runs after each step (``boundary``: evaluated or
    last), e.g. to draw a sample grid. ``spent``: seconds the run spent before this loop
    (a warm start), counted in its ``seconds``.

    Ctrl-C (SIGINT) stops at the end of the current iteration: the checkpoint is saved there,
    so nothing is lost and a resume continues exactly; then :class:`RunInterrupted` (a
    ``KeyboardInterrupt``) is raised.
    """
    rows: list[dict[str, float]] = []
    start = time.perf_counter() - spent - (folder.logged_seconds() if folder else 0.0)
    bar = tqdm(total=steps, initial=trainer.step, disable=not progress, desc=desc)
    with bar, StopAtStepBoundary() as stop:
        while trainer.step < steps:
            try:
                losses = trainer.train_step()
            except RunInterrupted:
                raise
            except KeyboardInterrupt:  # a second Ctrl-C, mid-step: that step is lost
                message = f"interrupted during step {trainer.step + 1}, which is not saved"
                raise RunInterrupted(trainer.step, message) from None
            step = trainer.step
            rows.append({"step": step, **losses})
            bar.update(1)
            final = step == steps
            due = final or (eval_every > 0 and step % eval_every == 0)
            evaluated = evaluate is not None and due
            row = {"step": step, "seconds": round(time.perf_counter() - start, 3), **losses}
            if evaluated:
                row |= evaluate()
                if on_eval is not None:
                    on_eval(row)
            if step % 10 == 0:
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
            if folder is not None and (step % log_every == 0 or evaluated or final):
                folder.append(RunFolder.LOG, row)
            if after_step is not None:
                after_step(step, evaluated or final)
            if folder is not None and (
                step % checkpoint_every == 0 or evaluated or final or stop.requested
            ):
                folder.save(trainer.state_dict())
            if stop.requested:
                where = f"; {folder.checkpoint} holds that step" if folder is not None else ""
                raise RunInterrupted(step, f"stopped at step {step}{where}")
    return rows


class StopAtStepBoundary:
    """Turn SIGINT into a flag checked between iterations (a half-done step is never saved).

    Only the main thread may install signal handlers; elsewhere Ctrl-C behaves as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> StopAtStepBoundary:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
