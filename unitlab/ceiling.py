"""The supervised ceiling: UNIT's own translation network trained *with* pairs.

UNIT translates satellite -> map through ``gen_b(enc_a(x))`` and never sees a satellite next to
its map. Train exactly that path (same config, same VAE noise, same optimiser, batch size and
number of steps) on the training satellites *with* their true maps, by L1, and the held-out
pixel accuracy it reaches is what the architecture can do in that budget when it is told the
answer. An unsupervised run cannot be expected to beat it, so the ceiling separates "UNIT's
objective does not find the translation" from "this network cannot learn the task in this many
steps". It is a diagnostic, not a competitor: it uses the pairs UNIT is denied.

Run it with ``unitlab ceiling`` (same preset and ``--set`` options as ``unitlab train``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from . import losses, metrics, ops
from .config import TrainConfig
from .data.sources import evaluation_pairs, training_pairs
from .evaluate import translate_uint8
from .images import uint8_to_tensor
from .models import UNIT, _unique


def train_ceiling(
    cfg: TrainConfig,
    eval_every: int = 100,
    on_point: Callable[[dict[str, float]], None] | None = None,
) -> tuple[UNIT, list[dict[str, float]]]:
    """Train ``enc_a -> gen_b`` of ``UNIT(cfg.model)`` by L1 on paired training data.

    Returns the model and the curve: one ``{"step", "l1", "accuracy", "seconds"}`` point every
    ``eval_every`` steps and at the last step (``on_point`` sees each as it comes). Seeds,
    batch size, learning rate, betas and weight decay are the config's, so the budget is the
    one ``unitlab train`` would spend on the same config.
    """
    cfg.validate()
    if eval_every < 1:
        raise ValueError(f"eval_every={eval_every} must be >= 1")
    torch.manual_seed(cfg.seed)
    model = UNIT(cfg.model)
    sat, maps = training_pairs(cfg, cfg.data.train_size)
    x_a, x_b = uint8_to_tensor(sat), uint8_to_tensor(maps)
    eval_sat, eval_maps = evaluation_pairs(cfg)
    o = cfg.optim
    opt = torch.optim.Adam(
        _unique(model.enc_a, model.gen_b),  # the tied blocks once, as in UNIT's own optimiser
        lr=o.lr,
        betas=(o.beta1, o.beta2),
        weight_decay=o.weight_decay,
    )
    batches = torch.Generator().manual_seed(cfg.seed + 1)
    curve: list[dict[str, float]] = []
    start = time.perf_counter()
    model.train()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(x_a), (cfg.batch_size,), generator=batches)
        z, _ = ops.reparameterize(model.enc_a(x_a[idx]))
        loss = losses.l1(model.gen_b(z), x_b[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == cfg.steps:
            point = {
                "step": step,
                "l1": loss.item(),
                "accuracy": metrics.pixel_accuracy(translate_uint8(model, eval_sat), eval_maps),
                "seconds": time.perf_counter() - start,
            }
            curve.append(point)
            if on_point is not None:
                on_point(point)
    return model, curve


def format_point(point: dict[str, float]) -> str:
    return (
        f"step {int(point['step']):>6}  L1 {point['l1']:.3f}  "
        f"pixel accuracy {point['accuracy']:.3f}  ({point['seconds']:.0f} s)"
    )
