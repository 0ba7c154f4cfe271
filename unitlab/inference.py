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
    model.load_state_dict(state["model"])
    return model.eval(), cfg
