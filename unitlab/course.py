"""Small helpers the course notebooks share: the quick-run switch, seeding, showing images.

``UNITLAB_QUICK=1`` shrinks every training run in the notebooks to a few dozen steps, for a
quick check; unset (as in the README's test command), a notebook runs its full, still
CPU-sized, version. Notebooks choose their sizes with
:func:`pick`, so the same cells run in both modes.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

QUICK_ENV = "UNITLAB_QUICK"
T = TypeVar("T")


def notebook_quick() -> bool:
    """Whether ``$UNITLAB_QUICK`` asks for the quick (CI) version of the notebooks."""
    value = os.environ.get(QUICK_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def pick(full: T, quick: T) -> T:
    """``quick`` under ``UNITLAB_QUICK=1``, else ``full`` (e.g. ``steps = pick(600, 40)``)."""
    return quick if notebook_quick() else full


def say(text: str) -> None:
    """Show ``text`` as Markdown in the notebook's output.

    Prose that quotes a measurement is written by code (``say(f"... {accuracy:.3f} ...")``)
    rather than typed into a Markdown cell, so that re-running the notebook updates the number
    with the prose: typed numbers drift from the outputs they describe.
    """
    from IPython.display import Markdown, display

    display(Markdown(text))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (floats to three decimals), for :func:`say`: JupyterLab renders it as a
    table, where a printed pipe-separated string stays raw text."""

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class NotebookClock:
    """Wall time since the notebook's first cell, reported with the machine it ran on.

    Run-time claims in the course are measured, not promised: each notebook starts a clock in
    its first code cell and its last cell prints what the run took here, with the CPU and
    thread count (a 2-core CPU is the reference machine of the course).
    """

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def report(self) -> str:
        from .machine import machine_description

        mode = "quick (UNITLAB_QUICK=1)" if notebook_quick() else "full"
        minutes, seconds = divmod(round(self.seconds), 60)
        return (
            f"This notebook ({mode} version) ran in {minutes} min {seconds:02d} s on "
            f"{os.cpu_count()} CPU cores: {machine_description()}."
        )


def seed_everything(seed: int = 0) -> None:
    """Seed Python's and torch's global generators, so a notebook's outputs repeat.

    NumPy randomness in the course goes through explicit ``np.random.default_rng(seed)``.
    """
    random.seed(seed)
    torch.manual_seed(seed)


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` values (shorter at the start), for noisy loss curves."""
    x = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - max(1, window))
    return (c[idx] - c[lo]) / (idx - lo)


def show(
    rows: Sequence[Any],
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    scale: float = 0.04,
):
    """Plot :func:`unitlab.images.grid` of ``rows`` (one batch per row), pixels kept sharp.

    ``row_labels`` name the rows on the left; ``scale`` is inches per pixel. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .images import grid

    image = grid(rows)
    h, w = image.shape[:2]
    left = 1.6 if row_labels else 0.1
    fig, ax = plt.subplots(figsize=(w * scale + left, h * scale + (0.4 if title else 0.1)))
    ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    if row_labels:
        step = h / len(rows)
        ax.set_yticks([(i + 0.5) * step for i in range(len(rows))], list(row_labels))
        ax.tick_params(length=0)
    else:
        ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
