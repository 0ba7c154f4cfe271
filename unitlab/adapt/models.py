"""The two networks of UNIT's digit domain adaptation (the paper's section 4, digits).

**The coupled VAE** (:class:`CoupledDigitVAE`, the generator). The image-translation model
(:mod:`unitlab.models`) is fully convolutional with a spatial latent; for digits the authors use
a small DCGAN-like pair instead (``CoVAE32x32`` in their NIPS code): each domain's *first*
encoder layer and *last* generator layers are private, everything in between is one module
object used by both domains, and the latent is a full Gaussian (mu and a softplus sigma) of
``8 * channels`` numbers per image. Three details matter for adaptation:

* **xy-coordinate channels.** Two constant channels holding each pixel's (row, column) in
  [-1, 1] are appended to every input image, so the convolutions know *where* a stroke is;
  USPS digits fill their frame while MNIST digits sit in a 20-pixel box, and the encoder has to
  map both to one code.
* **Domain frames** (optional, :class:`DomainFrame`): a learnable affine resampling per domain
  around the shared layers, so that a translation can also change where a digit sits and how
  large it is, which the local private layers do not learn.
* **Shared batch norm.** Both domains' batches go through the shared layers *together*, so the
  batch statistics are those of the union: a feature means the same in both domains.

**The discriminator-classifier** (:class:`DigitDiscriminator`): each domain has a *private*
first layer (5x5 conv + max-pool), the higher layers (convs of 128, 256, 512 channels, each +
max-pool) are *shared*, and two shared heads read the top features: real/fake, and a 10-class
digit classifier trained on source labels. Adaptation works because the shared layers must
serve both domains' images. Layer details follow the authors' ``CoDis32x32``: conv (stride 1)
-> ReLU -> max-pool 2, dropout 0.1 / 0.3 / 0.5 / 0.5 on the classifier/discriminator path and
none on the features used for feature matching, heads as convolutions over the last 2x2 map.

Tying is by object identity, as in :class:`unitlab.models.UNIT`: a shared layer is one module,
so ``parameters()`` lists each weight once and a gradient from either domain moves the one copy.
The reparameterisation and its KL go through :func:`unitlab.ops.reparameterize` (the fused
Triton kernel on a GPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn

from .. import ops
from ..models import check_domain, check_images, init_weights, unique_parameters

# The coupled VAE's code sizes: one vector per image (the authors'), or 8x8 places.
LATENT_SIZES = (1, 8)
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


class DomainFrame(nn.Module):
    """A learnable affine frame of one domain: where its digits sit and how large they are.

    MNIST centres a 20-pixel digit in a wide margin, USPS scales every digit to fill its frame:
    a *global* change of scale and position that no stack of local convolutions makes within a
    few hundred steps (every translation kept the source's framing). The frame makes it one
    small set of numbers: the shared layers work in a canonical frame, the encoder resamples a
    domain's image into it (``to_canonical``) and the decoder resamples its output back
    (``from_canonical``). ``delta`` is the offset from the identity (2 x 3, zero at the start,
    so an untrained frame changes nothing); what moves it is the adversarial game, which sees
    that a translation is framed like the wrong domain. Reconstructions go through the frame
    and its inverse, so they hardly constrain it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(2, 3))
        self.register_buffer("identity", torch.eye(2, 3), persistent=False)

    def matrix(self) -> Tensor:
        """(2, 3): output pixel coordinates (in [-1, 1]) -> canonical ones (``from_canonical``)."""
        return self.identity + self.delta

    def inverse(self) -> Tensor:
        """(2, 3): the inverse map, canonical coordinates -> this domain's (``to_canonical``)."""
        full = torch.cat([self.matrix(), self.identity.new_tensor([[0.0, 0.0, 1.0]])])
        return torch.linalg.inv(full)[:2]

    @staticmethod
    def _resample(x: Tensor, theta: Tensor) -> Tensor:
        grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="border", align_corners=False)

    def from_canonical(self, x: Tensor) -> Tensor:
        """The decoder's canonical output -> this domain's framing."""
        return self._resample(x, self.matrix())

    def to_canonical(self, x: Tensor) -> Tensor:
        """This domain's image -> the canonical frame the shared layers see."""
        return self._resample(x, self.inverse())


def coordinate_channels(size: int = SIZE) -> Tensor:
    """(2, size, size): row and column of each pixel, scaled to [-1, 1)."""
    ramp = (torch.arange(size, dtype=torch.float32) - size / 2) / (size / 2)
    return torch.stack([repeat(ramp, "h -> h w", w=size), repeat(ramp, "w -> h w", h=size)])


class CoupledDigitVAE(nn.Module):
    """Two digit VAEs sharing their high layers; domain "a" is the source, "b" the target.

    Encoder: private 5x5/2 conv (32 -> 16 px) | shared 5x5/2 conv (-> 8 px), 8x8 conv (-> 1 px),
    1x1 conv, then 1x1 heads for mu and sigma (softplus) of a ``8 * channels`` code.
    Generator: shared 4x4/2 transposed convs (1 -> 4 -> 8 -> 16 px) | private transposed conv
    (-> 32 px) and a 1x1 transposed conv to the image, tanh.

    ``latent_size=8`` (not the authors') keeps the code spatial, ``8 * channels`` numbers at
    each of 8x8 places, as UNIT's image-translation networks do (:mod:`unitlab.models`): the
    8x8 encoder conv becomes a 3x3 one and the decoder's first two layers 3x3 convs at 8 px.
    A translation then redraws the digit where it is instead of regenerating it from one
    vector, which for cluttered printed digits the 1x1 code does not carry
    (docs/results.md, trials 56-61). Codes are flattened to (N, D) either way.
    """

    def __init__(
        self,
        channels_a: int = 1,
        channels_b: int = 1,
        channels: int = 64,
        initial_sigma: float = math.log(2.0),
        mirror_init: bool = False,
        frames: bool = False,
        latent_size: int = 1,
    ) -> None:
        super().__init__()
        if latent_size not in LATENT_SIZES:
            raise ValueError(
                f"latent_size must be 1 (a vector) or 8 (8x8 places), got {latent_size}"
            )
        ch = channels
        self.channels_a, self.channels_b = channels_a, channels_b
        self.latent_shape = (8 * ch, latent_size, latent_size)
        self.latent_dim = 8 * ch * latent_size**2
        spatial = latent_size > 1
        self.register_buffer("xy", coordinate_channels(), persistent=False)
        self.private_encoder_a = _down(channels_a + 2, ch, 5, 2, 2)
        self.private_encoder_b = _down(channels_b + 2, ch, 5, 2, 2)
        self.shared_encoder = nn.Sequential(
            _down(ch, 2 * ch, 5, 2, 2),  # 16 -> 8 px
            _down(2 * ch, 4 * ch, 3, 1, 1) if spatial else _down(2 * ch, 4 * ch, 8, 1, 0),  # -> 1
            _down(4 * ch, 8 * ch, 1, 1, 0),
        )
        self.mu = nn.Conv2d(8 * ch, 8 * ch, 1)
        self.sigma = nn.Conv2d(8 * ch, 8 * ch, 1)
        first = (
            [_down(8 * ch, 8 * ch, 3, 1, 1), _down(8 * ch, 4 * ch, 3, 1, 1)]  # 8 px
            if spatial
            else [_up(8 * ch, 8 * ch, 0), _up(8 * ch, 4 * ch, 1)]  # 1 -> 4 -> 8 px
        )
        self.shared_decoder = nn.Sequential(*first, _up(4 * ch, 2 * ch, 1))
        self.private_decoder_a = self._head(ch, channels_a)
        self.private_decoder_b = self._head(ch, channels_b)
        # Only with ``frames``, so that models without them keep their state-dict layout.
        self.frames = nn.ModuleDict({d: DomainFrame() for d in "ab"}) if frames else None
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
        return {"a": self.channels_a, "b": self.channels_b}[check_domain(domain)]

    def _private_encoder(self, domain: str) -> nn.Module:
        return {"a": self.private_encoder_a, "b": self.private_encoder_b}[check_domain(domain)]

    def private_decoder(self, domain: str) -> nn.Module:
        return {"a": self.private_decoder_a, "b": self.private_decoder_b}[check_domain(domain)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The tied weights (encoder top, latent heads, decoder bottom), each once."""
        shared = (self.shared_encoder, self.mu, self.sigma, self.shared_decoder)
        return list(unique_parameters(*shared))

    def encode(self, images: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``{"a": x_a, "b": x_b}`` (either may be missing) -> ``(mu, log-variance)``, (N, D).

        Rows follow the dict's order; the present domains share one pass through the shared
        layers, so batch norm sees them together.
        """
        hidden = []
        for domain, x in images.items():
            check_images(x, self.image_channels(domain), SIZE, what=f"domain {domain} digits")
            if self.frames is not None:
                x = self.frames[domain].to_canonical(x)
            xy = self.xy.expand(len(x), -1, -1, -1)
            hidden.append(self._private_encoder(domain)(torch.cat([x, xy], 1)))
        h = self.shared_encoder(torch.cat(hidden))
        sigma = F.softplus(self.sigma(h)).clamp_min(1e-6)
        return self.mu(h).flatten(1), (2 * sigma.log()).flatten(1)

    def decode(self, z: Tensor, domain: str) -> Tensor:
        """Codes (N, D) -> images of ``domain`` in [-1, 1]."""
        h = self.shared_decoder(z.view(len(z), *self.latent_shape))
        return self._framed(self.private_decoder(domain)(h), domain)

    def _framed(self, x: Tensor, domain: str) -> Tensor:
        return x if self.frames is None else self.frames[domain].from_canonical(x)

    def frame_parameters(self) -> list[nn.Parameter]:
        """The frames' parameters (empty without frames): they train at their own rate."""
        return [] if self.frames is None else list(self.frames.parameters())

    def parameters_without_frames(self) -> list[nn.Parameter]:
        """Every other parameter: what the VAE warm start trains, and Adam's main group."""
        frames = {id(p) for p in self.frame_parameters()}
        return [p for p in self.parameters() if id(p) not in frames]

    def forward(self, x_a: Tensor, x_b: Tensor, sample: bool = True) -> dict[str, Tensor]:
        """The VAE and translation streams of one batch pair.

        Returns ``aa, ab`` (domain a's code decoded as a and as b), ``ba, bb``, and ``kl``
        (the batch mean of the closed-form Gaussian KL over both domains' codes).
        ``sample=False`` decodes ``mu`` (evaluation: no noise).
        """
        mu, logvar = self.encode({"a": x_a, "b": x_b})
        z, kl = ops.reparameterize(mu, logvar, sample=sample)
        # One pass through the shared decoder for both domains' codes, then each private head.
        h = self.shared_decoder(z.view(len(z), *self.latent_shape))
        as_a = self._framed(self.private_decoder_a(h), "a")
        as_b = self._framed(self.private_decoder_b(h), "b")
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


N_CLASSES = 10
# The authors' digit discriminator: 64 private channels, then 128 / 256 / 512 shared.
PAPER_CHANNELS = (64, 128, 256, 512)
# Dropout before the shared layers and after each of them (CoDis32x32).
PAPER_DROPOUT = (0.1, 0.3, 0.5, 0.5)
# The guide's optimiser for the digit experiments: Adam 2e-4, betas (0.5, 0.999), L2 5e-4.
BETAS = (0.5, 0.999)
WEIGHT_DECAY = 5e-4


def _conv_pool(c_in: int, c_out: int, negative_slope: float) -> nn.Sequential:
    """5x5 conv (stride 1, 'same' padding) -> (leaky) ReLU -> 2x2 max-pool: halves the size."""
    act = nn.ReLU() if negative_slope == 0 else nn.LeakyReLU(negative_slope)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 5, padding=2), act, nn.MaxPool2d(2))


class DigitDiscriminator(nn.Module):
    """Both domains' discriminator-classifiers as one module, tied by object identity.

    ``private_a`` / ``private_b`` see the raw images; ``shared`` (one ``nn.Sequential``) and the
    heads ``real_fake`` (one logit) and ``classifier`` (``n_classes`` logits) serve both, so a
    gradient from either domain moves the same weights and ``parameters()`` lists each once.

    ``channels``: the private layer's width, then each shared layer's (paper: 64, 128, 256,
    512). ``image_size`` must be divisible by ``2 ** len(channels)``; the heads are convolutions
    over the remaining map (2x2 for 32x32 digits), i.e. fully connected. ``negative_slope`` 0
    is the authors' ReLU; ``dropout`` gives one rate per dropout point (``len(channels)``).
    ``share_first`` ties the first layer too (``private_a is private_b``): a fully shared
    discriminator, whose target path starts out as the source-only classifier.
    Domain "a" is the source, "b" the target, as in the authors' code.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = PAPER_CHANNELS,
        n_classes: int = N_CLASSES,
        image_size: int = 32,
        negative_slope: float = 0.0,
        dropout: Sequence[float] = PAPER_DROPOUT,
        share_first: bool = False,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if len(channels) < 2:
            raise ValueError(f"channels needs a private and >= 1 shared width, got {channels}")
        if len(dropout) != len(channels):
            raise ValueError(f"dropout needs {len(channels)} rates, got {len(dropout)}")
        final = image_size // 2 ** len(channels)
        if final < 1 or image_size % 2 ** len(channels):
            raise ValueError(
                f"image_size={image_size} must be divisible by 2**{len(channels)} "
                f"(one max-pool per layer)"
            )
        self.private_a = _conv_pool(in_channels, channels[0], negative_slope)
        self.private_b = (
            self.private_a if share_first else _conv_pool(in_channels, channels[0], negative_slope)
        )
        self.shared = nn.Sequential(
            *(
                _conv_pool(c_in, c_out, negative_slope)
                for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
            )
        )
        self.dropout = nn.ModuleList(nn.Dropout(p) for p in dropout)
        self.real_fake = nn.Conv2d(channels[-1], 1, final)
        self.classifier = nn.Conv2d(channels[-1], n_classes, final)
        self.feature_size = channels[-1] * final * final
        self.apply(init_weights)

    def mirror_private_layer(self) -> None:
        """Copy the source's private first layer into the target's (two modules still).

        The target's path then computes the source classifier, as with a tied first layer, but
        the two layers may move apart: the real/fake game can learn what tells the domains
        apart, which is what asks a translation to look like the *target*.
        """
        if self.private_a is self.private_b:
            raise ValueError("the first layer is tied (share_first=True): nothing to mirror")
        self.private_b.load_state_dict(self.private_a.state_dict())

    def private(self, domain: str) -> nn.Sequential:
        return {"a": self.private_a, "b": self.private_b}[check_domain(domain)]

    def _trunk(self, x: Tensor, domain: str, dropout: bool) -> Tensor:
        """Top shared feature map; with ``dropout``, the authors' training-path dropouts."""
        h = self.private(domain)(x)
        for i, layer in enumerate(self.shared):
            h = layer(self.dropout[i](h) if dropout else h)
        return self.dropout[-1](h) if dropout else h

    def features(self, x: Tensor, domain: str) -> Tensor:
        """The highest shared features, flattened (N, feature_size), without dropout.

        These are what the guide's feature-matching loss compares (x_ab vs x_aa, x_ba vs x_bb);
        the authors' code takes them from the dropout-free path.
        """
        return self._trunk(x, domain, dropout=False).flatten(1)

    def forward(self, x: Tensor, domain: str) -> tuple[Tensor, Tensor]:
        """``(real/fake logit (N,), class logits (N, n_classes))`` of images from ``domain``."""
        h = self._trunk(x, domain, dropout=True)
        return self.real_fake(h).flatten(), self.classifier(h).flatten(1)


class StyleCritic(nn.Module):
    """A plain real/fake discriminator per domain, for translations only (not in the paper).

    The shared discriminator-classifier is a weak real/fake judge: dropout on every layer and a
    classification loss weighted 10x pull it to chance on real vs fake (its GAN loss sits near
    2 ln 2), so it barely asks a translation to look like the target. These critics do nothing
    else: four 4x4 stride-2 convolutions (32 -> 16 -> 8 -> 4 px, then one logit), LeakyReLU 0.2,
    no dropout, no normalisation; ``critic("b")`` judges real target digits against ``x_ab``.
    """

    def __init__(self, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({domain: self._net(in_channels, width) for domain in "ab"})
        self.apply(init_weights)

    @staticmethod
    def _net(c: int, w: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for c_in, c_out in ((c, w), (w, 2 * w), (2 * w, 4 * w)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2)]
        return nn.Sequential(*layers, nn.Conv2d(4 * w, 1, 4))

    def forward(self, x: Tensor, domain: str) -> Tensor:
        """One real/fake logit per image of ``domain``, (N,)."""
        check_images(x, self.nets[check_domain(domain)][0].in_channels, SIZE, what="digits")
        return self.nets[domain](x).flatten()
