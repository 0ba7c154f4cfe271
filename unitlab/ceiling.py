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

from collections.abc import Callable
from typing import Any

import torch

from . import losses, metrics, ops
from .config import TrainConfig
from .data.sources import evaluation_pairs, training_pairs
from .evaluate import translate_uint8
from .images import uint8_to_tensor
from .models import UNIT, unique_parameters
from .run import fit


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
    trainer = CeilingTrainer(cfg)
    eval_sat, eval_maps = evaluation_pairs(cfg)
    curve: list[dict[str, float]] = []

    def accuracy() -> dict[str, float]:
        pred = translate_uint8(trainer.model, eval_sat)
        return {"accuracy": metrics.pixel_accuracy(pred, eval_maps)}

    def record(row: dict[str, Any]) -> None:
        curve.append({k: row[k] for k in ("step", "l1", "accuracy", "seconds")})
        if on_point is not None:
            on_point(curve[-1])

    fit(
        trainer, cfg.steps, evaluate=accuracy, eval_every=eval_every, on_eval=record,
        progress=False, desc="ceiling",
    )  # fmt: skip
    return trainer.model, curve


class CeilingTrainer:
    """``enc_a -> gen_b`` of a UNIT model and its optimiser, fit by L1 on training pairs."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg, self.step = cfg, 0
        self.model = UNIT(cfg.model)
        sat, maps = training_pairs(cfg, cfg.data.train_size)
        self.x_a, self.x_b = uint8_to_tensor(sat), uint8_to_tensor(maps)
        o = cfg.optim
        self.opt = torch.optim.Adam(
            # the tied blocks once, as in UNIT's own optimiser
            unique_parameters(self.model.enc_a, self.model.gen_b),
            lr=o.lr,
            betas=(o.beta1, o.beta2),
            weight_decay=o.weight_decay,
        )
        self.batches = torch.Generator().manual_seed(cfg.seed + 1)

    def train_step(self) -> dict[str, float]:
        m = self.model
        m.train()
        idx = torch.randint(len(self.x_a), (self.cfg.batch_size,), generator=self.batches)
        z, _ = ops.reparameterize(m.enc_a(self.x_a[idx]))
        loss = losses.l1(m.gen_b(z), self.x_b[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"l1": loss.item()}

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "opt": self.opt.state_dict()}


def format_point(point: dict[str, float]) -> str:
    return (
        f"step {int(point['step']):>6}  L1 {point['l1']:.3f}  "
        f"pixel accuracy {point['accuracy']:.3f}  ({point['seconds']:.0f} s)"
    )
