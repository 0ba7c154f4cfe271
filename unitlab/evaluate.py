"""Score a map-world model the paper's way: satellite->map average pixel accuracy.

A pixel counts as correct when its colour is within 16 (of 255) of the true map colour on every
channel (the max over channels of the absolute difference; the paper leaves "colour difference"
undefined). Baselines put the number in context: the satellite image itself (identity), the most
common map colour everywhere (constant), and two per-pixel methods fitted *with* pairs, a
nearest-class-colour mapping and a linear classifier on RGB (a 1x1 conv): what a method without
spatial context can do.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import metrics
from .config import TrainConfig
from .data import mapworld, sources
from .data.sources import evaluation_pairs, evaluation_triples, training_data, training_pairs
from .images import tensor_to_uint8, uint8_to_tensor
from .models import UNIT


@torch.no_grad()
def translate_uint8(
    model: UNIT, images: np.ndarray, direction: str = "a2b", batch_size: int = 64
) -> np.ndarray:
    """Translate uint8 (N, H, W, C) images in batches; returns uint8 of the target domain."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [
            tensor_to_uint8(
                model.translate(uint8_to_tensor(images[i : i + batch_size]).to(device), direction)
            )
            for i in range(0, len(images), batch_size)
        ]
    finally:
        model.train(was_training)
    return np.concatenate(out)


def evaluate_run(
    model: UNIT,
    cfg: TrainConfig,
    train_maps=None,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Pixel accuracy of UNIT and the baselines on held-out pairs (``{"n_pairs": 0}`` for data
    without pairs, e.g. street scenes or faces: nothing to score a translation against).

    Pass the domain-b training images and the held-out ``pairs`` when they are at hand, to
    avoid generating (or decoding) them again.
    """
    if not sources.has_pairs(cfg):
        return {"n_pairs": 0}
    sat, maps = evaluation_pairs(cfg) if pairs is None else pairs
    if train_maps is None:  # the constant baseline's colour comes from the training maps
        _, train_maps = training_data(cfg)
    train_maps_u8 = sources.training_sample_uint8(train_maps)
    return {
        "unit": metrics.pixel_accuracy(translate_uint8(model, sat), maps),
        "identity": metrics.pixel_accuracy(metrics.identity_baseline(sat), maps),
        "constant": metrics.pixel_accuracy(metrics.constant_baseline(train_maps_u8, sat), maps),
        **_paired_pixel_baselines(cfg, sat, maps),
        "n_pairs": len(sat),
    }


def detail_report(
    model: UNIT,
    cfg: TrainConfig,
    train_maps: Tensor | None = None,
    tolerances: tuple[int, ...] = (16, 24, 32),
) -> str:
    """Where the translations fail: UNIT's accuracy per class of the true layout, and at looser
    colour tolerances than the paper's 16, next to the constant map at the same tolerance.

    A run whose colours are in the right family but a little off (a tinted land, a water of the
    wrong blue) gains a lot from 16 to 32; one that paints the wrong class does not. The
    constant gains too (white minor roads are within 29 of the land colour), hence its column.
    """
    sat, maps, layouts = evaluation_triples(cfg)  # generated once, layouts included
    pred = translate_uint8(model, sat)
    if train_maps is None:
        _, train_maps = training_data(cfg)
    constant = metrics.constant_baseline(tensor_to_uint8(train_maps), sat)
    by_class = metrics.pixel_accuracy_by_class(pred, maps, layouts, mapworld.N_CLASSES)
    lines = ["UNIT by class of the true layout (tolerance 16):"]
    lines += [
        f"  {name:12s} {acc:.3f}" for name, acc in zip(mapworld.CLASS_NAMES, by_class, strict=True)
    ]
    lines.append("by colour tolerance (max over channels of |difference|):")
    lines.append("  within     UNIT   constant")
    lines += [
        f"  {t:6d}    {metrics.pixel_accuracy(pred, maps, t):.3f}   "
        f"{metrics.pixel_accuracy(constant, maps, t):.3f}"
        for t in tolerances
    ]
    return "\n".join(lines)


def _paired_pixel_baselines(
    cfg: TrainConfig, sat: np.ndarray, maps: np.ndarray, n_pairs: int = 500
) -> dict[str, float]:
    """Context-free methods fitted *with* pairs: what UNIT must beat to show it uses context
    (the map world only: it generates training pairs; a dataset on disk gives none)."""
    pairs = training_pairs(cfg, min(n_pairs, cfg.data.train_size))
    if pairs is None:
        return {}
    train_sat, train_map = pairs
    return {
        name: metrics.pixel_accuracy(fn(sat, train_sat, train_map), maps)
        for name, fn in (
            ("nearest_colour", metrics.nearest_colour_baseline),
            ("pixel_linear", metrics.pixel_classifier_baseline),
        )
    }


def format_report(report: dict[str, float]) -> str:
    """A small table: method | pixel accuracy, best first."""
    if not report["n_pairs"]:
        return "no paired held-out images: no pixel accuracy (look at the run's sample grids)"
    rows = [(k, v) for k, v in report.items() if k != "n_pairs"]
    names = {
        "unit": "UNIT (this run)",
        "identity": "identity (satellite as map)",
        "constant": "constant (most common map colour)",
        "nearest_colour": "per-pixel nearest colour (fit with pairs)",
        "pixel_linear": "per-pixel linear, 1x1 conv (fit with pairs)",
    }
    lines = [
        f"satellite->map pixel accuracy on {report['n_pairs']} held-out pairs "
        "(colour within 16/255 on every channel):"
    ]
    for key, value in sorted(rows, key=lambda kv: -kv[1]):
        lines.append(f"  {names.get(key, key):44s} {value:.3f}")
    return "\n".join(lines)
