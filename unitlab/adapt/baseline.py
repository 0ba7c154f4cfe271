"""The source-only baseline every adaptation number is measured against.

Before any adaptation is trusted, the same discriminator-classifier trained on source labels
alone (no target images at all) gives the number adaptation has to beat:
:func:`train_source_only`. It reads only ``split.source_train`` while training, and
``split.target_eval`` once, to score the result (``docs/domain_adaptation.md``, rule 4).
:func:`fit_source_classifier` is also the adaptation run's warm start.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data.adaptation import AdaptationSplit, LabeledImages
from ..data.digit_geometry import random_affine
from ..run import fit
from .models import BETAS, PAPER_CHANNELS, WEIGHT_DECAY, DigitDiscriminator


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


class SourceClassifierTrainer:
    """Cross-entropy on source labels through domain a's path of a :class:`DigitDiscriminator`:
    the trainer :func:`unitlab.run.fit` drives for the baseline and the warm start.

    Only ``source`` is passed in, so nothing here can reach the target's images or labels.
    ``augment``: random affine warps of each batch, drawn from ``generator`` (which also
    orders the batches).
    """

    def __init__(
        self,
        model: DigitDiscriminator,
        source: LabeledImages,
        batch_size: int,
        lr: float,
        generator: torch.Generator,
        augment: bool = False,
    ) -> None:
        self.model, self.source, self.generator, self.augment = model, source, generator, augment
        self.device = next(model.parameters()).device
        params = [*model.private_a.parameters(), *model.shared.parameters()]
        params += [*model.classifier.parameters()]  # the real/fake head and private_b stay unused
        self.opt = torch.optim.Adam(params, lr=lr, betas=BETAS, weight_decay=WEIGHT_DECAY)
        self.rows = _batches(len(source), batch_size, generator)
        self.step = 0

    def train_step(self) -> dict[str, float]:
        self.model.train()
        idx = next(self.rows)
        x, y = self.source.images[idx], self.source.labels[idx].to(self.device)
        x = (random_affine(x, self.generator) if self.augment else x).to(self.device)
        _, logits = self.model(x, "a")
        loss = nn.functional.cross_entropy(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"loss": loss.item()}

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "opt": self.opt.state_dict()}


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
    """Train ``model``'s source classifier path (:class:`SourceClassifierTrainer`) for
    ``steps``; return the mean loss of every ``eval_every`` steps (none if None)."""
    trainer = SourceClassifierTrainer(model, source, batch_size, lr, generator, augment)
    rows = fit(trainer, steps, progress=False, desc="source classifier")
    if not eval_every:
        return []
    return [
        {"step": end, "loss": sum(r["loss"] for r in rows[end - eval_every : end]) / eval_every}
        for end in range(eval_every, len(rows) + 1, eval_every)
    ]


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
