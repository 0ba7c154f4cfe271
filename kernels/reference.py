"""The PyTorch definitions of the fused ops: the readable spec, and the ground truth of the tests.

:mod:`unitlab.ops` runs these when the Triton kernels are not used (CPU tensors, or the ``torch``
backend), so there is exactly one definition of each op; the kernels in this package must agree
with them. Nothing here imports Triton, so this module works on any machine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Activations the residual-block tail supports.
ACTIVATIONS = ("relu", "lrelu", "none")


def check_activation(activation: str) -> None:
    """Refuse an unknown activation name with the list of known ones (both backends share it)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} must be one of {', '.join(ACTIVATIONS)}")


def kl_divergence(mu: Tensor, logvar: Tensor | None = None) -> Tensor:
    """KL(q(z|x) || N(0, I)) as UNIT uses it.

    Reduced VAE (``logvar is None``, the variance fixed to one): ``mean(mu**2)`` over all elements
    (the authors' code; the constant and the factor 1/2 are dropped). Full Gaussian: the closed form
    ``0.5 * sum(mu**2 + exp(logvar) - logvar - 1)`` per sample, averaged over the batch.
    """
    if logvar is None:
        return mu.pow(2).mean()
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).flatten(1).sum(1).mean()


def reparameterize(
    mu: Tensor, logvar: Tensor | None = None, *, sample: bool = True, noise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Return ``(z, kl)``: ``z = mu + std * eps`` (``std = 1`` for the reduced VAE) and the KL.

    The KL is computed on ``mu`` (and ``logvar``), never on the noisy ``z``. ``sample=False``
    returns ``z = mu`` (test-time translation is deterministic). ``noise`` replaces the draw
    of ``eps`` from torch's RNG, so that tests can feed the kernels' own ``eps``.
    """
    kl = kl_divergence(mu, logvar)
    if not sample:
        return mu, kl
    eps = torch.randn_like(mu) if noise is None else noise
    if logvar is None:
        return mu + eps, kl
    return mu + (0.5 * logvar).exp() * eps, kl


def activate(y: Tensor, activation: str, slope: float = 0.2) -> Tensor:
    """Apply ``relu``, ``lrelu`` (negative ``slope``) or ``none``."""
    check_activation(activation)
    if activation == "relu":
        return F.relu(y)
    if activation == "lrelu":
        return F.leaky_relu(y, slope)
    return y


def instance_norm_act(
    x: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    activation: str = "relu",
    slope: float = 0.2,
    residual: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """``act(instance_norm(x) * weight + bias) + residual``: the tail of every residual block.

    Statistics are per sample and channel over all remaining dimensions (H*W), with the biased
    variance, as ``nn.InstanceNorm2d``; ``weight`` and ``bias`` are optional per-channel affines.
    """
    check_activation(activation)
    y = activate(F.instance_norm(x, weight=weight, bias=bias, eps=eps), activation, slope)
    return y if residual is None else y + residual
