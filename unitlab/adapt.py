"""The digit domain-adaptation discriminator, and the source-only baseline it is measured against.

In UNIT's digit experiments (``shared/GUIDE.md``, section 2, "Domain adaptation") the
discriminator is also the classifier: each domain has a *private* first layer (5x5 conv +
max-pool), the higher layers (convs of 128, 256, 512 channels, each + max-pool) are *shared*,
and two shared heads read the top features: real/fake, and a 10-class digit classifier trained on
source labels. Adaptation works because the shared layers must serve both domains' images.

Before any adaptation is trusted, the same network trained on source labels alone (no target
images at all) gives the number adaptation has to beat: ``train_source_only``. It reads only
``split.source_train`` while training, and ``split.target_eval`` once, to score the result
(``docs/domain_adaptation.md``, rule 4).

Layer details follow the authors' digit code (``CoDis32x32``): conv (stride 1) -> ReLU ->
max-pool 2, dropout 0.1 / 0.3 / 0.5 / 0.5 on the classifier/discriminator path and none on the
features used for feature matching, heads as convolutions over the last 2x2 map. The
UNIT adaptation training (the coupled VAE-GAN + these heads) is :mod:`unitlab.adapt_trainer`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from .data.adaptation import AdaptationSplit, LabeledImages
from .data.digit_geometry import random_affine
from .models import _check_domain, _init_weights

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
        self.apply(_init_weights)

    def private(self, domain: str) -> nn.Sequential:
        return {"a": self.private_a, "b": self.private_b}[_check_domain(domain)]

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


# --------------------------------------------------------------------------------------------
# Source-only baseline.


@torch.no_grad()
def accuracy(
    model: DigitDiscriminator,
    images: Tensor,
    labels: Tensor,
    domain: str,
    batch_size: int = 512,
) -> float:
    """Fraction of ``images`` whose class logit argmax is ``labels``, in eval mode (no dropout).

    The model's train/eval mode is restored afterwards, so this can be called mid-training.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        _, logits = model(x, domain)
        correct += int((logits.argmax(1).cpu() == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless row indices: each epoch a fresh permutation, cut into full batches."""
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training images")
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def fit_source_classifier(
    model: DigitDiscriminator,
    source: LabeledImages,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    eval_every: int | None,
    augment: bool = False,
) -> list[dict[str, float]]:
    """Cross-entropy on source labels through domain a's path; returns the loss history.

    Only ``source`` is passed in, so nothing here can reach the target's images or labels.
    ``eval_every``: every so many steps, log the mean loss since the last log. ``augment``:
    random affine warps of each batch, drawn from ``generator``.
    """
    device = next(model.parameters()).device
    params = [*model.private_a.parameters(), *model.shared.parameters()]
    params += [*model.classifier.parameters()]  # the real/fake head and private_b stay unused
    opt = torch.optim.Adam(params, lr=lr, betas=BETAS, weight_decay=WEIGHT_DECAY)
    model.train()
    history: list[dict[str, float]] = []
    running, count = 0.0, 0
    rows = _batches(len(source), batch_size, generator)
    for step in range(1, steps + 1):
        idx = next(rows)
        x, y = source.images[idx], source.labels[idx].to(device)
        x = (random_affine(x, generator) if augment else x).to(device)
        _, logits = model(x, "a")
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running, count = running + loss.item(), count + 1
        if eval_every and step % eval_every == 0:
            history.append({"step": step, "loss": running / count})
            running, count = 0.0, 0
    return history


def train_source_only(
    split: AdaptationSplit,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    seed: int = 0,
    eval_every: int | None = None,
    *,
    channels: Sequence[int] = PAPER_CHANNELS,
    device: str | torch.device = "cpu",
    return_model: bool = False,
    augment: bool = False,
) -> dict:
    """The source-only baseline: domain a's classifier trained on source labels, no adaptation.

    Trains ``DigitDiscriminator``'s private-a layer, shared layers and classifier head with
    cross-entropy on ``split.source_train`` (Adam ``lr``, betas (0.5, 0.999), weight decay 5e-4,
    as the guide gives for the digit runs; ``augment``: random affine warps of every batch, as
    an adaptation run with ``augment`` has), then scores that *same* path on
    ``split.target_eval``: the accuracy adaptation must improve on. ``split.target_train`` is
    never read, and ``target_eval`` only after training, for the score.

    Seeded: weights, dropout and batch order come from ``seed``, inside a forked RNG so the
    caller's global RNG state is left as it was; on the CPU two calls give the same numbers.
    Returns ``source_train_accuracy``, ``target_accuracy``, ``steps``, ``seconds`` (training
    and scoring), and ``history`` (mean loss every ``eval_every`` steps; empty if None);
    with ``return_model``, also the trained network as ``model``.
    """
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitDiscriminator(split.channels, channels).to(device)
        generator = torch.Generator().manual_seed(seed)
        source = split.source_train
        history = fit_source_classifier(
            model, source, steps, batch_size, lr, generator, eval_every, augment
        )
    evaluation = split.target_eval  # first read of the target, after training
    result = {
        "source_train_accuracy": accuracy(model, source.images, source.labels, "a"),
        "target_accuracy": accuracy(model, evaluation.images, evaluation.labels, "a"),
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "history": history,
    }
    if return_model:
        result["model"] = model.eval()
    return result
