"""Turn a :class:`~unitlab.config.TrainConfig` into training images and evaluation pairs.

The one place that turns a config into data, so the CLI, the notebooks and the tests all train
and score on the same images for the same config: the embedded map world (generated in memory)
or a dataset of the paper on disk (``data.source`` = ``maps``, ``folders``, ``celeba``; read
lazily, batch by batch, by :mod:`unitlab.data.image_folders`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..config import TrainConfig
from ..images import uint8_to_tensor
from . import mapworld

if TYPE_CHECKING:
    from .image_folders import DiskData


def training_data(cfg: TrainConfig) -> tuple[Tensor | Dataset, Tensor | Dataset]:
    """Unpaired images of domain a and domain b: float (N, C, H, W) tensors in [-1, 1] for the
    map world, datasets yielding such images (randomly cropped and flipped) for data on disk."""
    d = cfg.data
    if d.source != "mapworld":
        disk = disk_data(cfg)
        return disk.train_a, disk.train_b
    sat, maps = mapworld.unpaired(
        d.train_size, cfg.model.image_size, d.seed, zoom=d.zoom, look=d.look
    )
    return uint8_to_tensor(sat), uint8_to_tensor(maps)


def disk_data(cfg: TrainConfig) -> DiskData:
    """The dataset on disk that ``cfg.data`` names (listed once per process and config)."""
    d, m = cfg.data, cfg.model
    return _disk_data(d.source, d.root, d.attribute, d.other, m.image_size, d.load_size)


@lru_cache(maxsize=4)
def _disk_data(
    source: str, root: str, attribute: str, other: str, size: int, load_size: int
) -> DiskData:
    from . import paper_datasets

    if source == "maps":
        return paper_datasets.load_maps(root, size, load_size)
    if source == "folders":
        return paper_datasets.load_folder_pairs(root, size, load_size)
    if source == "celeba":
        return paper_datasets.load_celeba(root, attribute, other, size=size, load_size=load_size)
    raise ValueError(f"data.source={source!r} is not a dataset on disk")


def has_pairs(cfg: TrainConfig) -> bool:
    """Whether the held-out images come in pairs (the same scene in both domains), so that a
    translation can be scored by pixel accuracy: the map world and pix2pix maps do."""
    return cfg.data.source == "mapworld" or disk_data(cfg).paired


def first_images(data: Tensor | Dataset, n: int) -> Tensor:
    """The first ``n`` training images (N, C, H, W), unaugmented: the rows of sample grids."""
    if isinstance(data, Tensor):
        return data[:n]
    n = min(n, len(data))
    return uint8_to_tensor(np.stack([data.uint8(i) for i in range(n)]))


def evaluation_pairs(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Held-out paired (domain a, domain b) images, uint8 (N, H, W, C), never seen in training
    as pairs (the first ``data.test_size``); refused for data without pairs."""
    if cfg.data.source == "mapworld":
        sat, maps, _ = evaluation_triples(cfg)
        return sat, maps
    disk = disk_data(cfg)
    if not disk.paired:
        raise ValueError(
            f"data.source={cfg.data.source} has no paired held-out images: its translations "
            f"cannot be scored by pixel accuracy (look at the sample grids)"
        )
    n = min(cfg.data.test_size, len(disk.test_a))
    a = np.stack([disk.test_a.uint8(i) for i in range(n)])
    b = np.stack([disk.test_b.uint8(i) for i in range(n)])
    return a, b


def evaluation_triples(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The map world's evaluation pairs with the class labels (N, H, W) of each layout."""
    d = cfg.data
    if d.source != "mapworld":
        raise ValueError(f"class labels exist for the map world only, not data.source={d.source}")
    return mapworld.paired(d.test_size, cfg.model.image_size, d.seed, zoom=d.zoom, look=d.look)


def training_pairs(cfg: TrainConfig, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The first ``n`` training satellites with their true maps, uint8 (N, H, W, C); ``None``
    for data on disk (its training domains are unpaired by construction).

    Only the *baselines* that are allowed pairs use these (per-pixel methods fitted with
    supervision); UNIT itself never sees them paired.
    """
    d = cfg.data
    if d.source != "mapworld":
        return None
    sat, maps, _ = mapworld.paired(
        n, cfg.model.image_size, d.seed, split="train", zoom=d.zoom, look=d.look
    )
    return sat, maps


def training_sample_uint8(data: Tensor | Dataset, n: int = 256) -> np.ndarray:
    """Up to ``n`` training images as uint8 (N, H, W, C), e.g. for the constant baseline."""
    from ..images import tensor_to_uint8

    if isinstance(data, Tensor):
        return tensor_to_uint8(data)
    idx = torch.linspace(0, len(data) - 1, min(n, len(data))).long().tolist()
    return np.stack([data.uint8(i) for i in idx])
