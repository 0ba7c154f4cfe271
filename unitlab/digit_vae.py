"""UNIT's coupled VAE for 32x32 digits: the generator of the domain-adaptation experiments.

The image-translation model (:mod:`unitlab.models`) is fully convolutional with a spatial latent;
for digits the authors use a small DCGAN-like pair instead (``CoVAE32x32`` in their NIPS code,
``shared/GUIDE.md`` section 2): each domain's *first* encoder layer and *last* generator layers
are private, everything in between is one module object used by both domains, and the latent is
a full Gaussian (mu and a softplus sigma) of ``8 * channels`` numbers per image.

Two details that matter for adaptation:

* **xy-coordinate channels.** Two constant channels holding each pixel's (row, column) in
  [-1, 1] are appended to every input image, so the convolutions know *where* a stroke is;
  USPS digits fill their frame while MNIST digits sit in a 20-pixel box, and the encoder has to
  map both to one code.
* **Shared batch norm.** Both domains' batches go through the shared layers *together*, so the
  batch statistics are those of the union: a feature means the same in both domains.

Tying is by object identity, as in :class:`unitlab.models.UNIT`: ``shared_encoder`` and
``shared_decoder`` are single modules, so ``parameters()`` lists each weight once and a gradient
from either domain moves the one copy. The reparameterisation and its KL go through
:func:`unitlab.ops.reparameterize` (the fused Triton kernel on a GPU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ops
from .models import _check_domain, _unique, check_images

SIZE = 32  # the layer arithmetic below (two stride-2 convs, then an 8x8 conv) is for 32x32


def _down(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """conv -> batch norm -> LeakyReLU: the encoder's unit (authors: ``LeakyReLUBNNSConv2d``)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.01)
    )


def _up(c_in: int, c_out: int, padding: int) -> nn.Sequential:
    """4x4 stride-2 transposed conv -> batch norm -> LeakyReLU: doubles the size (+3 at 1x1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, padding), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.01)
    )


def coordinate_channels(size: int = SIZE) -> Tensor:
    """(2, size, size): row and column of each pixel, scaled to [-1, 1)."""
    ramp = (torch.arange(size, dtype=torch.float32) - size / 2) / (size / 2)
    rows, cols = torch.meshgrid(ramp, ramp, indexing="ij")
    return torch.stack([rows, cols])


class CoupledDigitVAE(nn.Module):
    """Two digit VAEs sharing their high layers; domain "a" is the source, "b" the target.

    Encoder: private 5x5/2 conv (32 -> 16 px) | shared 5x5/2 conv (-> 8 px), 8x8 conv (-> 1 px),
    1x1 conv, then 1x1 heads for mu and sigma (softplus) of a ``8 * channels`` code.
    Generator: shared 4x4/2 transposed convs (1 -> 4 -> 8 -> 16 px) | private transposed conv
    (-> 32 px) and a 1x1 transposed conv to the image, tanh.
    """

    def __init__(
        self,
        channels_a: int = 1,
        channels_b: int = 1,
        channels: int = 64,
        initial_sigma: float = math.log(2.0),
        mirror_init: bool = False,
    ) -> None:
        super().__init__()
        ch = channels
        self.channels_a, self.channels_b = channels_a, channels_b
        self.latent_dim = 8 * ch
        self.register_buffer("xy", coordinate_channels(), persistent=False)
        self.private_encoder_a = _down(channels_a + 2, ch, 5, 2, 2)
        self.private_encoder_b = _down(channels_b + 2, ch, 5, 2, 2)
        self.shared_encoder = nn.Sequential(
            _down(ch, 2 * ch, 5, 2, 2),  # 16 -> 8 px
            _down(2 * ch, 4 * ch, 8, 1, 0),  # 8 -> 1 px
            _down(4 * ch, 8 * ch, 1, 1, 0),
        )
        self.mu = nn.Conv2d(8 * ch, 8 * ch, 1)
        self.sigma = nn.Conv2d(8 * ch, 8 * ch, 1)
        self.shared_decoder = nn.Sequential(
            _up(8 * ch, 8 * ch, 0), _up(8 * ch, 4 * ch, 1), _up(4 * ch, 2 * ch, 1)
        )
        self.private_decoder_a = self._head(ch, channels_a)
        self.private_decoder_b = self._head(ch, channels_b)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)
        # sigma = softplus(bias) at the start: log 2 (bias 0) as the authors' init. A small
        # value lets the codes carry information from the first steps: with Adam the bias moves
        # about lr per step, so shrinking sigma from 0.69 to ~0.05 alone takes ~15k steps.
        nn.init.constant_(self.sigma.bias, math.log(math.expm1(initial_sigma)))
        if mirror_init:
            self.mirror_private_layers()

    def mirror_private_layers(self) -> None:
        """Copy domain a's private weights into domain b's (they stay two separate modules).

        With random, independent private layers the two domains enter the shared layers as
        unrelated features, so a's code means nothing to b's decoder and ``x_ab`` starts as
        noise that only the adversarial game can slowly turn into digits. Started as copies,
        b's path computes exactly a's: every translation begins as the reconstruction, and
        training moves the private layers apart only as far as the domains differ.
        """
        if self.channels_a != self.channels_b:
            raise ValueError(
                f"mirror_init needs the same image channels in both domains, "
                f"got {self.channels_a} and {self.channels_b}"
            )
        self.private_encoder_b.load_state_dict(self.private_encoder_a.state_dict())
        self.private_decoder_b.load_state_dict(self.private_decoder_a.state_dict())

    @staticmethod
    def _head(ch: int, out_channels: int) -> nn.Sequential:
        return nn.Sequential(_up(2 * ch, ch, 1), nn.ConvTranspose2d(ch, out_channels, 1), nn.Tanh())

    def image_channels(self, domain: str) -> int:
        return {"a": self.channels_a, "b": self.channels_b}[_check_domain(domain)]

    def _private_encoder(self, domain: str) -> nn.Module:
        return {"a": self.private_encoder_a, "b": self.private_encoder_b}[_check_domain(domain)]

    def private_decoder(self, domain: str) -> nn.Module:
        return {"a": self.private_decoder_a, "b": self.private_decoder_b}[_check_domain(domain)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The tied weights (encoder top, latent heads, decoder bottom), each once."""
        return list(_unique(self.shared_encoder, self.mu, self.sigma, self.shared_decoder))

    def encode(self, images: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``{"a": x_a, "b": x_b}`` (either may be missing) -> ``(mu, log-variance)``, (N, D).

        Rows follow the dict's order; the present domains share one pass through the shared
        layers, so batch norm sees them together.
        """
        hidden = []
        for domain, x in images.items():
            check_images(x, self.image_channels(domain), SIZE, what=f"domain {domain} digits")
            xy = self.xy.expand(len(x), -1, -1, -1)
            hidden.append(self._private_encoder(domain)(torch.cat([x, xy], 1)))
        h = self.shared_encoder(torch.cat(hidden))
        sigma = F.softplus(self.sigma(h)).clamp_min(1e-6)
        return self.mu(h).flatten(1), (2 * sigma.log()).flatten(1)

    def decode(self, z: Tensor, domain: str) -> Tensor:
        """Codes (N, D) -> images of ``domain`` in [-1, 1]."""
        h = self.shared_decoder(z[:, :, None, None])
        return self.private_decoder(domain)(h)

    def forward(self, x_a: Tensor, x_b: Tensor, sample: bool = True) -> dict[str, Tensor]:
        """The VAE and translation streams of one batch pair.

        Returns ``aa, ab`` (domain a's code decoded as a and as b), ``ba, bb``, and ``kl``
        (the batch mean of the closed-form Gaussian KL over both domains' codes).
        ``sample=False`` decodes ``mu`` (evaluation: no noise).
        """
        mu, logvar = self.encode({"a": x_a, "b": x_b})
        z, kl = ops.reparameterize(mu, logvar, sample=sample)
        # One pass through the shared decoder for both domains' codes, then each private head.
        h = self.shared_decoder(z[:, :, None, None])
        as_a, as_b = self.private_decoder_a(h), self.private_decoder_b(h)
        n = len(x_a)
        return {"aa": as_a[:n], "ba": as_a[n:], "ab": as_b[:n], "bb": as_b[n:], "kl": kl}

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "a2b") -> Tensor:
        """Deterministic translation (z = mu) of a batch, in eval mode (running BN statistics)."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction {direction!r} must be a2b or b2a")
        was_training = self.training
        self.eval()
        try:
            mu, _ = self.encode({direction[0]: x})
            return self.decode(mu, direction[-1])
        finally:
            self.train(was_training)
