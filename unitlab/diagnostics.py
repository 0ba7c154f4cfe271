"""Does the discriminator learn? Two measurements that tell a blind D from a working one.

A GAN only teaches the generator what its discriminator has learnt. Two ways a D fails here:

* **it starts blind**: with the paper's N(0, 0.02) initialisation, a narrow stack of 3x3 convs
  multiplies a signal by ~0.02 * sqrt(fan-in) < 1 per layer, so its logits start near zero
  (std ~1e-5 at 16 channels) and their gradients with them;
* **it stays at chance**: its loss never leaves the value of a D that outputs one constant
  (``2 ln 2`` per scale for the vanilla GAN, ``0.5`` for LSGAN), so the generator's GAN term is
  noise.

:func:`discriminator_check` measures both on a *copy* of a model's ``D_b`` against the model's
*fixed* translations ``G_b(E_a(x_a))``: with the generator frozen the task is plain
classification (real maps vs translations), so a D that cannot leave chance here cannot guide
anything during training.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from . import losses
from .config import TrainConfig
from .models import UNIT
from .run import fit


@dataclass
class DiscriminatorCheck:
    """What :func:`discriminator_check` measured (losses are D_b's, unweighted)."""

    logit_std: float  # spread of D_b's logits on real maps before the check's training
    chance: float  # the loss of the best constant output: a blind D's loss
    losses: list[float]  # D_b's loss at each step against the fixed translations
    separation: float  # after training: P(score of a real map > score of a translation)

    @property
    def final_loss(self) -> float:
        """The mean loss over the last tenth of the steps (one step is noisy)."""
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)

    @property
    def left_chance(self) -> bool:
        """Whether D learnt: its final loss is at least 10% below a blind D's."""
        return self.final_loss < 0.9 * self.chance

    def summary(self) -> str:
        return (
            f"D_b logit std {self.logit_std:.2e}; loss {self.losses[0]:.3f} -> "
            f"{self.final_loss:.3f} in {len(self.losses)} steps (chance {self.chance:.3f}): "
            f"{'left chance' if self.left_chance else 'still at chance'}; "
            f"ranks a real map above a translation {self.separation:.0%} of the time"
        )


def chance_loss(gan_mode: str, scales: int = 1) -> float:
    """The discriminator loss of the best constant output, summed over ``scales``."""
    per_scale = {"vanilla": 2 * math.log(2), "lsgan": 0.5}
    if gan_mode not in per_scale:
        raise ValueError(f"GAN mode {gan_mode!r} must be vanilla or lsgan")
    return per_scale[gan_mode] * scales


@torch.no_grad()
def _scores(dis: torch.nn.Module, x: Tensor) -> Tensor:
    """One score per image: its logits averaged over positions and scales."""
    return torch.stack([out.mean(dim=(1, 2, 3)) for out in dis(x)]).mean(0)


def discriminator_check(
    model: UNIT,
    cfg: TrainConfig,
    data_a: Tensor,
    data_b: Tensor,
    steps: int = 100,
    seed: int = 0,
) -> DiscriminatorCheck:
    """Train a copy of ``model.dis_b`` for ``steps`` steps on real maps vs ``G_b(E_a(x_a))``.

    The model itself is not changed. The optimiser, learning rate (``lr * dis_lr_mult``),
    batch size and GAN mode are ``cfg``'s, so the check answers "can *this recipe's* D learn
    from these translations", e.g. at initialisation or for a trained model.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    mode, o = cfg.loss.gan_mode, cfg.optim
    dis = copy.deepcopy(model.dis_b).train()
    opt = torch.optim.Adam(
        dis.parameters(),
        lr=o.lr * o.dis_lr_mult,
        betas=(o.beta1, o.beta2),
        weight_decay=o.weight_decay,
    )
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def batch(data: Tensor, n: int = cfg.batch_size) -> Tensor:
        return data[torch.randint(len(data), (n,), generator=g)].to(device)

    @torch.no_grad()
    def translate(x_a: Tensor) -> Tensor:
        return model.gen_b(model.enc_a(x_a))

    class Probe:  # the trainer run.fit drives: D's step against the fixed generator
        step = 0

        def train_step(self) -> dict[str, float]:
            real, fake = batch(data_b), translate(batch(data_a))
            loss = losses.discriminator_loss(dis(real), dis(fake), mode)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.step += 1
            return {"loss": loss.item()}

        def state_dict(self) -> dict:
            return {"step": self.step, "dis": dis.state_dict()}

    try:
        held_real, held_fake = batch(data_b, 64), translate(batch(data_a, 64))
        logit_std = torch.cat([out.flatten() for out in dis(held_real)]).std().item()
        history = [row["loss"] for row in fit(Probe(), steps, progress=False, desc="D check")]
        real_scores, fake_scores = _scores(dis, held_real), _scores(dis, held_fake)
        separation = (real_scores[:, None] > fake_scores[None, :]).float().mean().item()
    finally:
        model.train(was_training)
    return DiscriminatorCheck(
        logit_std=logit_std,
        chance=chance_loss(mode, cfg.model.d_scales),
        losses=history,
        separation=separation,
    )
