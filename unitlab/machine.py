"""One line naming the machine a number was measured on.

Results files (the ablation's records, the adaptation results, the benchmark tables) carry it,
because a timing or even a GAN's accuracy means little without the hardware and versions behind
it (GAN runs differ with the thread count).
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

import torch


def machine_description(device: torch.device | str = "cpu") -> str:
    """The device (GPU name, or CPU model and torch threads), torch and Python versions, date."""
    device = torch.device(device)
    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        hw = f"{cpu_name()}, {torch.get_num_threads()} torch threads"
    return (
        f"{hw}; torch {torch.__version__}, Python {platform.python_version()}; "
        f"{datetime.date.today().isoformat()}"
    )


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
