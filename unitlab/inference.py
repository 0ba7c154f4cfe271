"""Rebuild a trained model from a checkpoint for translation and evaluation."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .models import UNIT


def load_model(
    run_or_file: str | Path, device: str | torch.device = "cpu"
) -> tuple[UNIT, TrainConfig]:
    """Return ``(model in eval mode, its config)`` from a run folder or checkpoint file."""
    state = load_checkpoint(run_or_file, map_location=device)
    cfg = TrainConfig.from_dict(state["config"])
    model = UNIT(cfg.model).to(device)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:  # weights of another architecture than the config's
        first = str(exc).strip().splitlines()[-1].strip()
        raise ValueError(
            f"checkpoint {run_or_file}: its weights do not match its own config ({first})"
        ) from exc
    return model.eval(), cfg
