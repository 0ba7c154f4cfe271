"""Turn a :class:`~unitlab.config.DataConfig` into training tensors and evaluation pairs.

The one place that turns a config into data, so the CLI, the notebooks and the tests all train
and score on the same images for the same config.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from ..config import TrainConfig
from ..images import uint8_to_tensor
from . import mapworld


def training_data(cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    """Unpaired images of domain a and domain b, float (N, C, H, W) in [-1, 1]."""
    d = cfg.data
    sat, maps = mapworld.unpaired(
        d.train_size, cfg.model.image_size, d.seed, zoom=d.zoom, look=d.look
    )
    return uint8_to_tensor(sat), uint8_to_tensor(maps)


def evaluation_pairs(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Held-out paired (domain a, domain b) images, uint8 (N, H, W, C), never seen in training."""
    sat, maps, _ = evaluation_triples(cfg)
    return sat, maps


def evaluation_triples(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`evaluation_pairs` with the class labels (N, H, W) of each pair's layout."""
    d = cfg.data
    return mapworld.paired(d.test_size, cfg.model.image_size, d.seed, zoom=d.zoom, look=d.look)


def training_pairs(cfg: TrainConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` training satellites with their true maps, uint8 (N, H, W, C).

    Only the *baselines* that are allowed pairs use these (per-pixel methods fitted with
    supervision); UNIT itself never sees them paired.
    """
    d = cfg.data
    sat, maps, _ = mapworld.paired(
        n, cfg.model.image_size, d.seed, split="train", zoom=d.zoom, look=d.look
    )
    return sat, maps
