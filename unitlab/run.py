"""Run folders: one owner at a time.

Two ``unitlab train`` processes writing one run folder interleave their logs and leave a
config from one and a checkpoint from the other. :class:`RunLock` makes a folder belong to one
process: an OS lock (``flock``) on ``<run>/.lock``, which the kernel releases when the process
exits, however it exits (a crash or ``kill -9`` included), so a stale lock never blocks a
later run. The file holds the owner's PID, which the refusal names.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def truncate_logs(
    run_dir: str | Path, step: int, names: tuple[str, ...] = ("log.jsonl", "curve.jsonl")
) -> None:
    """Drop the rows of a run's JSON-lines logs written after ``step``.

    A run killed between two checkpoints logged steps that its checkpoint does not hold; on
    resume those steps are trained again, so their old rows go, and every step appears once.
    Unreadable rows (a line cut by the kill) go too. Rewritten atomically.
    """
    import json

    for name in names:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        kept = []
        for line in path.read_text().splitlines():
            try:
                if int(json.loads(line)["step"]) <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, path)
