"""One domain's VAE, built from UNIT's own encoder and generator, and a short training loop.

UNIT is two of these with their high-level layers tied. Here the tied stacks are empty
(``n_shared = 0`` and an empty :class:`~torch.nn.ModuleList`), so :class:`VAE` is exactly one
domain's half of :class:`unitlab.models.UNIT`: same blocks, same initialisation, same
:func:`unitlab.ops.reparameterize` and :func:`unitlab.losses.l1`.

Two posteriors ``q(z|x)``:

* ``reduced`` (UNIT's image translation): ``N(mu, I)``; ``z = mu + eps``, ``KL = mean(mu**2)``;
* ``full``: ``N(mu, diag(exp(logvar)))``; a 1x1 convolution reads the encoder's output and
  predicts ``logvar`` (initialised near 0, i.e. starting as the reduced VAE); the KL is the
  closed form summed over latent elements, averaged over the batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from . import losses, ops
from .config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from .images import tensor_to_uint8, uint8_to_tensor
from .models import Encoder, Generator, check_images, init_weights
from .run import fit

Posterior = Literal["reduced", "full"]

__all__ = ["VAE", "VAEOutput", "vae_config", "vae_loss", "train_vae", "as_tensor"]


@dataclass
class VAEOutput:
    """What one forward pass computes: the code, its sample, the KL and the reconstruction."""

    mu: Tensor
    logvar: Tensor | None
    z: Tensor
    kl: Tensor
    recon: Tensor


class VAE(nn.Module):
    """``x -> mu (, logvar) -> z -> x_hat`` for one domain (``cfg.channels_a`` channels).

    ``encoder`` and ``generator`` are :class:`unitlab.models.Encoder` / ``Generator`` built
    with ``n_shared = 0``: the full ``n_res_blocks`` are private to this domain.
    """

    def __init__(self, cfg: ModelConfig, posterior: Posterior = "reduced") -> None:
        super().__init__()
        if posterior not in ("reduced", "full"):
            raise ValueError(f"posterior {posterior!r} must be 'reduced' or 'full'")
        cfg = dataclasses.replace(cfg, n_shared=0)
        cfg.validate()
        self.cfg = cfg
        self.posterior = posterior
        self.encoder = Encoder(cfg, cfg.channels_a, nn.ModuleList())
        self.generator = Generator(cfg, cfg.channels_a, nn.ModuleList())
        c = cfg.latent_channels
        self.logvar_head = nn.Conv2d(c, c, 1) if posterior == "full" else None
        self.apply(init_weights)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of a code."""
        return (self.cfg.latent_channels, self.cfg.latent_size, self.cfg.latent_size)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mu, logvar)``; ``logvar`` is None for the reduced VAE (variance one)."""
        check_images(x, self.cfg.channels_a, self.cfg.image_size, "VAE input")
        mu = self.encoder(x)
        return mu, (None if self.logvar_head is None else self.logvar_head(mu))

    def decode(self, z: Tensor) -> Tensor:
        """Code ``(N, C, h, w)`` -> image ``(N, channels, H, W)`` on [-1, 1]."""
        return self.generator(z)

    def forward(self, x: Tensor, sample: bool = True) -> VAEOutput:
        mu, logvar = self.encode(x)
        z, kl = ops.reparameterize(mu, logvar, sample=sample)
        return VAEOutput(mu, logvar, z, kl, self.decode(z))

    @torch.no_grad()
    def codes(self, images: np.ndarray | Tensor, batch_size: int = 128) -> Tensor:
        """Mean codes ``mu`` of many images (uint8 ``(N, H, W, C)`` or a tensor), no gradient."""
        x = as_tensor(images)
        chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        return torch.cat([self.encode(chunk)[0] for chunk in chunks])

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray | Tensor) -> np.ndarray:
        """Deterministic reconstructions ``G(mu)`` as uint8 ``(N, H, W, C)``."""
        return tensor_to_uint8(self.decode(self.codes(images)))


def as_tensor(images: np.ndarray | Tensor) -> Tensor:
    """uint8 ``(N, H, W, C)`` images -> model tensors; tensors pass through unchanged."""
    return images if isinstance(images, Tensor) else uint8_to_tensor(images)


def vae_config(image_size: int = 32, channels: int = 3, **model: int) -> TrainConfig:
    """A CPU-sized VAE setup: UNIT's blocks, narrower (16 base channels, 2 residual blocks).

    The loss weights are UNIT's (L1 reconstruction 100, KL 0.1); the learning rate is 1e-3, ten
    times UNIT's, and weight decay is off, because the course trains for hundreds of steps, not
    hundreds of thousands. ``model`` overrides :class:`~unitlab.config.ModelConfig` fields
    (``n_shared`` is always 0: one domain has nothing to share).
    """
    fields = dict(image_size=image_size, channels_a=channels, base_channels=16, n_res_blocks=2)
    fields.update(model, n_shared=0)
    cfg = TrainConfig(preset="vae", batch_size=16, steps=600, log_every=10)
    cfg.model = ModelConfig(**fields)
    cfg.loss = LossConfig(gan=0.0, recon=100.0, kl=0.1, use_cycle=False)
    cfg.optim = OptimConfig(lr=1e-3, weight_decay=0.0)
    cfg.data = DataConfig(train_size=1000, test_size=100)
    return cfg


def vae_loss(model: VAE, x: Tensor, weights: LossConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """``recon * L1(x_hat, x) + kl * KL``: the VAE part of UNIT's objective, for one domain."""
    out = model(x)
    terms = {"recon": losses.l1(out.recon, x), "kl": out.kl}
    return weights.recon * terms["recon"] + weights.kl * terms["kl"], terms


def train_vae(
    images: np.ndarray | Tensor,
    cfg: TrainConfig,
    steps: int | None = None,
    *,
    posterior: Posterior = "reduced",
    model: VAE | None = None,
) -> tuple[VAE, list[dict[str, float]]]:
    """Train a :class:`VAE` on ``images`` for ``steps`` (default ``cfg.steps``) Adam steps.

    Uses ``cfg.model``, ``cfg.loss.recon`` / ``cfg.loss.kl``, ``cfg.optim``, ``cfg.batch_size``
    and ``cfg.seed`` (which fixes the initial weights, the batches and the noise, so a run
    repeats exactly on the CPU). Pass ``model`` to continue training it. Returns the model (in
    eval mode) and one ``{"step", "loss", "recon", "kl"}`` row per step.
    """
    torch.manual_seed(cfg.seed)
    trainer = VAETrainer(model or VAE(cfg.model, posterior), as_tensor(images), cfg)
    history = fit(trainer, cfg.steps if steps is None else steps, progress=False)
    trainer.model.eval()
    return trainer.model, history


class VAETrainer:
    """One VAE, its Adam and its batch RNG: the trainer :func:`unitlab.run.fit` drives."""

    def __init__(self, model: VAE, images: Tensor, cfg: TrainConfig) -> None:
        o = cfg.optim
        self.model, self.images, self.cfg, self.step = model, images, cfg, 0
        self.opt = torch.optim.Adam(
            model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay
        )
        self.batches = torch.Generator().manual_seed(cfg.seed + 1)

    def train_step(self) -> dict[str, float]:
        self.model.train()
        rows = torch.randint(len(self.images), (self.cfg.batch_size,), generator=self.batches)
        loss, terms = vae_loss(self.model, self.images[rows], self.cfg.loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite VAE loss at step {self.step + 1}; lower the lr")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "opt": self.opt.state_dict()}
