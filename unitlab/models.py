"""UNIT's networks: two VAEs with weight-tied high-level layers, and two discriminators.

One definition serves the notebooks, the CLI and the tests. Shapes follow the NIPS code
(``version_02``): encoder ``conv7 -> strided convs -> residual blocks``, generator the mirror
image, tanh output; discriminators are stacks of strided 3x3 convs with LeakyReLU.

Weight tying is done by *object identity*: the last ``n_shared`` residual blocks of both
encoders are one ``nn.ModuleList`` object, and so are the first ``n_shared`` of both generators.
A gradient through domain A's encoder therefore changes the layer domain B uses, and
``UNIT.generator_parameters()`` lists each parameter once (Adam must not step a tied weight
twice — a mistake seen in public reimplementations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from . import ops
from .config import ModelConfig


class ResBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))``; both norm tails go through :mod:`unitlab.ops`."""

    def __init__(self, channels: int, padding: str = "reflect") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding)

    def forward(self, x: Tensor) -> Tensor:
        h = ops.instance_norm_act(self.conv1(x), activation="relu")
        return ops.instance_norm_act(self.conv2(h), activation="none", residual=x)


class ConvNormAct(nn.Module):
    """Conv (or transposed conv) + instance norm + activation, the down/up-sampling unit."""

    def __init__(self, conv: nn.Module, activation: str = "relu", norm: bool = True) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x)
        if self.norm:
            return ops.instance_norm_act(h, activation=self.activation)
        if self.activation == "lrelu":
            return nn.functional.leaky_relu(h, 0.2)
        return torch.relu(h) if self.activation == "relu" else h


def _res_stack(n: int, channels: int, padding: str) -> nn.ModuleList:
    return nn.ModuleList(ResBlock(channels, padding) for _ in range(n))


def _run(blocks: nn.ModuleList, h: Tensor) -> Tensor:
    for block in blocks:
        h = block(h)
    return h


class Encoder(nn.Module):
    """Image -> mean code ``mu`` of the reduced VAE (variance fixed to one).

    ``shared`` is passed in so that both domains' encoders hold the *same* tied blocks.
    """

    def __init__(self, cfg: ModelConfig, in_channels: int, shared: nn.ModuleList) -> None:
        super().__init__()
        ch, pad = cfg.base_channels, cfg.padding
        layers: list[nn.Module] = [
            ConvNormAct(
                nn.Conv2d(in_channels, ch, 7, padding=3, padding_mode=pad), "lrelu", norm=False
            )
        ]
        for _ in range(cfg.n_downsample):
            layers.append(
                ConvNormAct(nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1, padding_mode=pad))
            )
            ch *= 2
        self.stem = nn.Sequential(*layers)
        self.private = _res_stack(cfg.n_res_blocks - cfg.n_shared, ch, pad)
        self.shared = shared

    def private_features(self, x: Tensor) -> Tensor:
        """The domain's own layers: the stem and the untied residual blocks."""
        h = self.stem(x)
        for block in self.private:
            h = block(h)
        return h

    def forward(self, x: Tensor) -> Tensor:
        return _run(self.shared, self.private_features(x))


class Generator(nn.Module):
    """Code ``z`` -> image in [-1, 1]; the first ``n_shared`` residual blocks are tied."""

    def __init__(self, cfg: ModelConfig, out_channels: int, shared: nn.ModuleList) -> None:
        super().__init__()
        ch, pad = cfg.latent_channels, cfg.padding
        self.shared = shared
        self.private = _res_stack(cfg.n_res_blocks - cfg.n_shared, ch, pad)
        layers: list[nn.Module] = []
        for _ in range(cfg.n_downsample):
            layers.append(
                ConvNormAct(
                    nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1)
                )
            )
            ch //= 2
        layers += [nn.Conv2d(ch, out_channels, 7, padding=3, padding_mode=pad), nn.Tanh()]
        self.head = nn.Sequential(*layers)

    def from_shared(self, h: Tensor) -> Tensor:
        """The domain's own layers, applied after the tied blocks: untied blocks and head."""
        return self.head(_run(self.private, h))

    def forward(self, z: Tensor) -> Tensor:
        return self.from_shared(_run(self.shared, z))


class Discriminator(nn.Module):
    """A stack of ``d_layers`` strided 3x3 convs + LeakyReLU (no norm), then a 1x1 logit map.

    ``d_scales > 1`` adds copies that look at the image average-pooled by 2, 4, ...; the loss
    then sums over scales. Returns a list of logit maps, one per scale.
    """

    def __init__(self, cfg: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList(self._single(cfg, in_channels) for _ in range(cfg.d_scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    @staticmethod
    def _single(cfg: ModelConfig, in_channels: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        ch_in, ch = in_channels, cfg.d_channels
        for _ in range(cfg.d_layers):
            layers += [nn.Conv2d(ch_in, ch, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch_in, ch = ch, min(2 * ch, cfg.d_max_channels)
        layers.append(nn.Conv2d(ch_in, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for i, net in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            outputs.append(net(x))
        return outputs


class UNIT(nn.Module):
    """The full model: ``enc_a, enc_b, gen_a, gen_b`` (sharing tied blocks), ``dis_a, dis_b``.

    Domain ``a`` is the source of an ``a2b`` translation (satellite in the map world).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c = cfg.latent_channels
        shared_enc = _res_stack(cfg.n_shared, c, cfg.padding)
        shared_gen = _res_stack(cfg.n_shared, c, cfg.padding)
        self.enc_a = Encoder(cfg, cfg.channels_a, shared_enc)
        self.enc_b = Encoder(cfg, cfg.channels_b, shared_enc)
        self.gen_a = Generator(cfg, cfg.channels_a, shared_gen)
        self.gen_b = Generator(cfg, cfg.channels_b, shared_gen)
        self.dis_a = Discriminator(cfg, cfg.channels_a)
        self.dis_b = Discriminator(cfg, cfg.channels_b)
        self.apply(init_weights)
        if cfg.d_init != "dcgan":
            for module in (*self.dis_a.modules(), *self.dis_b.modules()):
                if isinstance(module, nn.Conv2d):
                    _init_discriminator_conv(module, cfg.d_init)

    def encoder(self, domain: str) -> Encoder:
        return {"a": self.enc_a, "b": self.enc_b}[check_domain(domain)]

    def generator(self, domain: str) -> Generator:
        return {"a": self.gen_a, "b": self.gen_b}[check_domain(domain)]

    def encode_pair(self, x_a: Tensor, x_b: Tensor) -> tuple[Tensor, Tensor]:
        """``(enc_a(x_a), enc_b(x_b))`` with the tied blocks run once on both batches.

        The tied blocks are one function of the concatenated features, and instance norm is per
        sample, so this equals two encoder calls; fewer, larger convolutions are faster.
        """
        h = torch.cat([self.enc_a.private_features(x_a), self.enc_b.private_features(x_b)])
        return _run(self.enc_a.shared, h).split([x_a.shape[0], x_b.shape[0]])

    def decode_both(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(gen_a(z), gen_b(z))``: both generators start with the same tied blocks, so their
        output on the same codes is computed once."""
        h = _run(self.gen_a.shared, z)
        return self.gen_a.from_shared(h), self.gen_b.from_shared(h)

    def decode_pair(self, z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor]:
        """``(gen_a(z_a), gen_b(z_b))`` with the tied blocks run once on both batches."""
        h = _run(self.gen_a.shared, torch.cat([z_a, z_b]))
        h_a, h_b = h.split([z_a.shape[0], z_b.shape[0]])
        return self.gen_a.from_shared(h_a), self.gen_b.from_shared(h_b)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        """Encoders + generators, each parameter once (tied ones included exactly once)."""
        return unique_parameters(self.enc_a, self.enc_b, self.gen_a, self.gen_b)

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return unique_parameters(self.dis_a, self.dis_b)

    @torch.no_grad()
    def translate(self, x: Tensor, direction: str = "a2b") -> Tensor:
        """Deterministic translation (z = mu, no test-time noise)."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction {direction!r} must be a2b or b2a")
        src, dst = direction[0], direction[-1]
        expected = self.cfg.channels_a if src == "a" else self.cfg.channels_b
        check_images(x, expected, self.cfg.image_size, what=f"input of {direction}")
        return self.generator(dst)(self.encoder(src)(x))


def check_images(x: Tensor, channels: int, size: int, what: str = "images") -> None:
    """Raise a ValueError that names the expected and actual shape of an image batch."""
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(
            f"{what}: expected a batch of shape (N, {channels}, {size}, {size}), "
            f"got {tuple(x.shape)}"
        )


def check_domain(domain: str) -> str:
    """``domain`` itself if it is ``a`` or ``b``; else a ValueError naming it."""
    if domain not in ("a", "b"):
        raise ValueError(f"domain {domain!r} must be 'a' or 'b'")
    return domain


def unique_parameters(*modules: nn.Module) -> Iterator[nn.Parameter]:
    """The parameters of ``modules``, each once: tied layers belong to several modules, and an
    optimiser given a tensor twice would step it twice."""
    seen: set[int] = set()
    for module in modules:
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                yield p


def _init_discriminator_conv(conv: nn.Conv2d, scheme: str) -> None:
    """``pytorch``: the framework's default (Kaiming uniform with a = sqrt(5), which shrinks a
    signal by ~0.6 per layer); ``kaiming``: He-normal for LeakyReLU(0.2), which keeps the signal's
    scale through the stack, so D's logits start with a spread of order one."""
    if scheme == "pytorch":
        conv.reset_parameters()
    else:
        nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
        nn.init.zeros_(conv.bias)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions, as the authors' code (DCGAN-style init)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def model_cost(cfg: ModelConfig) -> dict[str, float]:
    """Parameters and convolution FLOPs of a config, without running it (meta tensors).

    ``encoder_flops``, ``generator_flops``, ``discriminator_flops``: one image through one of
    each (2 FLOPs per multiply-add, convolutions only: norms and activations are a few percent).
    ``train_flops``: one training iteration per image of the batch, estimated as 3x (forward
    + backward) the forward passes of both updates: 4 encoder passes (reconstruction and
    cycle), 6 generator passes (both codes through both generators, then the cycle) and 6
    discriminator passes (2 in the generator's update, 4 in the discriminator's).
    """
    with torch.device("meta"):
        model = UNIT(cfg)
    flops = {"count": 0.0}

    def count(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        weight = module.weight
        if isinstance(module, nn.ConvTranspose2d):  # each input cell meets the whole kernel
            flops["count"] += 2.0 * inputs[0][0].numel() * weight[0].numel()
        else:  # each output cell meets one kernel's worth of inputs
            flops["count"] += 2.0 * output[0].numel() * weight[0].numel()

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]

    def measure(fn: Callable[[], object]) -> float:
        flops["count"] = 0.0
        fn()
        return flops["count"]

    s = cfg.image_size
    x = torch.empty(1, cfg.channels_a, s, s, device="meta")
    z = torch.empty(1, cfg.latent_channels, cfg.latent_size, cfg.latent_size, device="meta")
    with torch.no_grad():
        enc = measure(lambda: model.enc_a(x))
        gen = measure(lambda: model.gen_a(z))
        dis = measure(lambda: model.dis_a(x))
    for hook in hooks:
        hook.remove()
    return {
        "gen_params": sum(p.numel() for p in model.generator_parameters()),
        "dis_params": sum(p.numel() for p in model.discriminator_parameters()),
        "encoder_flops": enc,
        "generator_flops": gen,
        "discriminator_flops": dis,
        "train_flops": 3.0 * (4 * enc + 6 * gen + 6 * dis),
    }
