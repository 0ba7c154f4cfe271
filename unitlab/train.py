"""A map-world UNIT run as one library call: :func:`train_run`.

``unitlab train``, the shipped models (:mod:`unitlab.pretrained`) and anyone's script run the
same function, so a run folder means the same thing whoever made it: its config, log, samples,
checkpoint, held-out curve and ``metrics.json`` (UNIT's held-out pixel accuracy next to the
baselines'). The command line only parses arguments and prints.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

from . import distributed
from .checkpoint import config_mismatch
from .config import TrainConfig
from .data import sources
from .evaluate import evaluate_run
from .run import RunFolder, RunLock
from .trainer import Trainer, train_with_curve


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The config a run folder's checkpoint was written with."""
    folder = RunFolder(run_dir)
    return TrainConfig.from_dict(folder.load()["config"])


def train_run(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    device: str | torch.device = "cpu",
    eval_every: int = 0,
    progress: bool = True,
    on_eval: Callable[[int, float], None] | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Train ``cfg`` into ``run_dir``; return (and write as ``metrics.json``) its held-out report.

    ``resume`` continues the folder's checkpoint exactly; ``cfg`` must then be the saved config
    (only ``steps`` may differ, to extend a run, and ``data.root``/``data.workers``, which say
    where and how the same images are read), and anything else is refused, naming each field.
    A fresh run refuses a folder that already holds one. ``eval_every`` > 0 measures
    the held-out pixel accuracy every so many steps (``curve.jsonl``; ``on_eval(step,
    accuracy)`` sees each point). The folder belongs to this process while it trains
    (:class:`unitlab.run.RunLock`). Raises :class:`unitlab.run.NonFiniteLossError` on a NaN loss
    and :class:`unitlab.run.RunInterrupted` on Ctrl-C, the last checkpoint kept in both cases.

    Started by ``torchrun`` (:mod:`unitlab.distributed`), every process trains its share of
    each batch and rank 0 alone writes the folder and returns the report (the others return
    ``{}``). ``cfg.batch_size`` is the global batch, so a run resumes on any number of processes.
    """
    cfg.validate()
    if eval_every < 0:
        raise ValueError(f"eval_every={eval_every} must be >= 0")
    if eval_every and not sources.has_pairs(cfg):
        raise ValueError(
            f"--eval-every needs paired held-out images; data.source={cfg.data.source} has none"
        )
    folder = RunFolder(run_dir)
    with distributed.process_group(torch.device(device)) as device:
        main = distributed.is_main()
        # One process per run folder (rank 0 for all of them), released however it ends.
        with RunLock(run_dir) if main else nullcontext():
            state = folder.load() if resume else None
            if state is not None:
                _refuse_changes(TrainConfig.from_dict(state["config"]), cfg)
            elif folder.has_checkpoint():
                raise ValueError(
                    f"{run_dir} already holds a run; pass --resume to continue it or "
                    f"--name to start another (nothing was overwritten)"
                )
            distributed.barrier()  # every process has checked the folder before rank 0 writes
            if state is None and main:
                folder.clear_logs()
            trainer = Trainer(cfg, device)
            if state is not None:
                trainer.load_state_dict(state)
                if cfg.steps < trainer.step:
                    raise ValueError(
                        f"--steps {cfg.steps} is below the {trainer.step} steps {run_dir} has done"
                    )
                if main:
                    folder.truncate(trainer.step)
                    if on_resume is not None:
                        on_resume(trainer.step)
            data_a, data_b = sources.training_data(cfg)
            try:
                if not main:  # the others train their share; rank 0 keeps the files, scores
                    trainer.fit(data_a, data_b, progress=False)
                    return {}
                # held-out pairs made (for data on disk: decoded) once, for curve and report
                held_out = sources.evaluation_pairs(cfg) if eval_every else None
                if eval_every:

                    def point(step: int, accuracy: float) -> None:
                        folder.append(RunFolder.CURVE, {"step": step, "accuracy": accuracy})
                        if on_eval is not None:
                            on_eval(step, accuracy)

                    train_with_curve(
                        trainer, data_a, data_b, held_out, eval_every, run_dir, progress, point
                    )
                else:
                    trainer.fit(data_a, data_b, run_dir=run_dir, progress=progress)
            finally:
                trainer.close()  # its DataLoader workers hold the lock too (see close())
            report = evaluate_run(trainer.model, cfg, train_maps=data_b, pairs=held_out)
            folder.write_metrics(report)
            return report


#: What a resume may change: the length, and where and how the same images are read.
_RESUMABLE_CHANGES = ("steps:", "data.root:", "data.workers:")


def _refuse_changes(saved: TrainConfig, requested: TrainConfig) -> None:
    """A resumed run continues its saved config: only ``steps`` (and how data is read) change."""
    diffs = config_mismatch(saved.to_dict(), requested.to_dict(), names=("the run", "you ask"))
    diffs = [d for d in diffs if not d.startswith(_RESUMABLE_CHANGES)]
    if diffs:
        raise ValueError(
            "--resume continues the saved config and cannot change "
            + "; ".join(diffs)
            + " (start a new run with --name instead)"
        )
