"""Data-parallel training under ``torchrun``: the process group, and which process writes.

``torchrun --nproc_per_node N -m unitlab train ...`` starts N copies of ``unitlab train`` with
``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (and a rendezvous address) in their environment.
:func:`process_group` joins them (NCCL on GPUs, one per process; gloo on the CPU), the
:class:`~unitlab.trainer.Trainer` splits each global batch between them, and only rank 0 owns
the run folder (lock, logs, samples, checkpoints, metrics). Without ``torchrun`` all of this is
a no-op: one process is rank 0 of 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether this process was started by ``torchrun`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the run's files and prints its report."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (nothing to wait for in one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join the ``torchrun`` processes for the duration of a run; yield this process's device.

    On CUDA each process takes the GPU of its ``LOCAL_RANK`` and the group uses NCCL; on the
    CPU, gloo. A group that is already initialised (by the caller) is used as it is and left
    open; outside ``torchrun`` nothing happens.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
    finally:
        dist.destroy_process_group()
