"""Checkpoints that survive interruptions and refuse to load into the wrong model.

Written atomically (a temp file in the same folder, then ``os.replace``) so a run killed mid-write
leaves the previous checkpoint intact; loaded with ``weights_only=True`` so opening a checkpoint
from elsewhere cannot execute code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def half_precision(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with its floating-point tensors in fp16 (integer buffers kept): what
    shipped model files hold, half the size; loading casts them back to the module's dtype."""
    return {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-save
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format_version": FORMAT_VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_checkpoint(run_or_file: str | Path) -> Path:
    """Accept a run folder (its checkpoint) or a checkpoint file; name what is missing."""
    path = Path(run_or_file)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} (pass a run folder or a .pt file)")
    return path


def load_checkpoint(run_or_file: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely; a truncated or foreign file gives an error naming the file."""
    path = resolve_checkpoint(run_or_file)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or "format_version" not in state or "config" not in state:
        raise ValueError(f"{path} is not a unitlab checkpoint (no format_version/config)")
    if state["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format {state['format_version']}; this unitlab reads "
            f"<= {FORMAT_VERSION}: upgrade unitlab"
        )
    return state


def config_mismatch(
    saved: dict[str, Any],
    current: dict[str, Any],
    prefix: str = "",
    names: tuple[str, str] = ("checkpoint", "config"),
) -> list[str]:
    """List ``field: <names[0]> has saved, <names[1]> has current`` for every differing leaf."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_mismatch(a, b, f"{prefix}{key}.", names)
        elif a != b:
            diffs.append(f"{prefix}{key}: {names[0]} has {a!r}, {names[1]} has {b!r}")
    return diffs
