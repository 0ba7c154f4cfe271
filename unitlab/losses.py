"""The terms of UNIT's objective, one function each.

The paper's VAE likelihood is Laplacian, so reconstruction and cycle terms are L1; the KL of the
reduced VAE (unit variance) is ``mean(mu**2)`` and comes from :func:`unitlab.ops.reparameterize`.
GAN terms take *lists* of logit maps so a multi-scale discriminator sums over its scales.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def l1(x: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error: the negative log-likelihood of a Laplacian, up to constants.

    In fp32 whatever the inputs (bf16 autocast outputs included): a loss is a long sum.
    """
    return (x.float() - target.float()).abs().mean()


def _target_like(logits: Tensor, real: bool) -> Tensor:
    return torch.ones_like(logits) if real else torch.zeros_like(logits)


def gan_term(logits: list[Tensor], real: bool, mode: str = "vanilla") -> Tensor:
    """How far the discriminator's logits are from saying "real" (or "fake"), summed over scales.

    ``vanilla``: binary cross-entropy with logits (the paper); ``lsgan``: least squares on the
    raw outputs against 1 / 0 (Mao et al.), steadier gradients when D wins early.
    """
    total = logits[0].new_zeros(())
    for out in logits:
        out = out.float()  # losses in fp32, also under bf16 autocast
        target = _target_like(out, real)
        if mode == "vanilla":
            total = total + F.binary_cross_entropy_with_logits(out, target)
        elif mode == "lsgan":
            total = total + F.mse_loss(out, target)
        else:
            raise ValueError(f"GAN mode {mode!r} must be vanilla or lsgan")
    return total


def discriminator_loss(real: list[Tensor], fake: list[Tensor], mode: str = "vanilla") -> Tensor:
    """D's loss: call real images real and translated images fake."""
    return gan_term(real, True, mode) + gan_term(fake, False, mode)


def generator_gan_loss(fake: list[Tensor], mode: str = "vanilla") -> Tensor:
    """G's adversarial loss (non-saturating): make D call translations real."""
    return gan_term(fake, True, mode)
