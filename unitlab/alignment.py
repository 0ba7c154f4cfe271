"""How shared is the shared latent space? Distances between the codes of paired images.

UNIT assumes that a satellite image and its map have the *same* code, ``E_a(x_a) = E_b(x_b)``.
Training never sees the pairs, so whether the codes of a pair end up close is a measurable
consequence of the design (tied layers, GANs, cycle), not something the loss asks for directly.
These functions measure it on held-out pairs:

* ``ratio``: mean squared distance between the codes of true pairs, divided by the same for
  mismatched pairs (each satellite against another layout's map). 1 means pairing is invisible in
  the codes; 0 means every satellite sits exactly on its own map.
* ``retrieval``: for each satellite code, is its own map's code the nearest of all map codes?
  Chance is ``1 / n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .images import uint8_to_tensor
from .models import UNIT


@dataclass(frozen=True)
class Alignment:
    """Code distances of ``n`` held-out pairs (see the module docstring)."""

    paired: float
    mismatched: float
    retrieval: float
    n: int

    @property
    def ratio(self) -> float:
        return self.paired / self.mismatched

    @property
    def chance(self) -> float:
        return 1.0 / self.n


def _as_batch(images: np.ndarray | Tensor) -> Tensor:
    return uint8_to_tensor(images) if isinstance(images, np.ndarray) else images


@torch.no_grad()
def codes(model: UNIT, images: np.ndarray | Tensor, domain: str) -> Tensor:
    """Deterministic codes ``mu`` of one domain's images (uint8 arrays or tensors on [-1, 1])."""
    was_training = model.training
    model.eval()
    try:
        return model.encoder(domain)(_as_batch(images))
    finally:
        model.train(was_training)


def code_alignment(
    model: UNIT, images_a: np.ndarray | Tensor, images_b: np.ndarray | Tensor
) -> Alignment:
    """Compare the codes of paired images ``images_a[i] <-> images_b[i]`` with mismatched ones."""
    if len(images_a) != len(images_b) or len(images_a) < 2:
        raise ValueError(
            f"code_alignment needs two equally long batches of at least 2 pairs, got "
            f"{len(images_a)} and {len(images_b)}"
        )
    z_a = codes(model, images_a, "a").flatten(1)
    z_b = codes(model, images_b, "b").flatten(1)
    distances = torch.cdist(z_a, z_b).pow(2) / z_a.shape[1]  # (n, n): mean squared distance
    n = distances.shape[0]
    paired = distances.diagonal()
    mismatched = (distances.sum() - paired.sum()) / (n * (n - 1))
    hits = (distances.argmin(dim=1) == torch.arange(n)).float().mean()
    return Alignment(float(paired.mean()), float(mismatched), float(hits), n)
