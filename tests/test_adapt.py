"""The digit DA discriminator (tying, shapes) and the source-only baseline (learns, no leaks).

Training tests use a narrow network (``SMALL``, 16x fewer FLOPs than the paper's widths) on the
real USPS -> MNIST split in ../shared/data, so the whole file stays well under a minute on one
CPU thread.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from unitlab.adapt import DigitDiscriminator, accuracy, baseline, train_source_only
from unitlab.data.adaptation import AdaptationSplit, LabeledImages, adaptation_split

SMALL = (16, 32, 64, 128)
STEPS = 150


@pytest.fixture(scope="module")
def split(offline_data: Path) -> AdaptationSplit:
    """USPS -> MNIST on CI's data, offline, with a private cache."""
    return adaptation_split("usps", "mnist", offline_data)


@pytest.fixture(scope="module")
def trained(split: AdaptationSplit) -> dict[str, Any]:
    return train_source_only(split, steps=STEPS, seed=0, eval_every=50, channels=SMALL)


# --------------------------------------------------------------------------------------------
# The network.


@pytest.mark.parametrize("in_channels", [1, 3])
def test_shapes(in_channels: int) -> None:
    model = DigitDiscriminator(in_channels)
    x = torch.randn(5, in_channels, 32, 32)
    for domain in ("a", "b"):
        logit, classes = model(x, domain)
        assert logit.shape == (5,) and classes.shape == (5, 10)
        assert model.features(x, domain).shape == (5, 512 * 2 * 2) == (5, model.feature_size)
    with pytest.raises(ValueError, match="domain"):
        model(x, "c")


def test_tied_layers_are_one_object_and_listed_once() -> None:
    model = DigitDiscriminator(1)
    assert model.private("a") is model.private_a and model.private("b") is model.private_b
    assert model.private_a is not model.private_b
    ids = [id(p) for p in model.parameters()]
    assert len(ids) == len(set(ids))
    parts = (model.private_a, model.private_b, model.shared, model.real_fake, model.classifier)
    assert len(ids) == sum(len(list(part.parameters())) for part in parts)
    # A loss on domain b's images moves b's private layer and the shared ones, never a's.
    model.zero_grad()
    logit, classes = model(torch.randn(4, 1, 32, 32), "b")
    (logit.sum() + classes.sum()).backward()
    assert all(p.grad is None for p in model.private_a.parameters())
    for part in (model.private_b, model.shared, model.real_fake, model.classifier):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_features_are_the_heads_input_without_dropout() -> None:
    """In eval mode the classifier reads exactly ``features``; in train mode dropout acts."""
    torch.manual_seed(0)
    model = DigitDiscriminator(1, SMALL)
    x = torch.randn(6, 1, 32, 32)
    model.eval()
    _, classes = model(x, "a")
    top = model.features(x, "a").view(6, SMALL[-1], 2, 2)
    torch.testing.assert_close(classes, model.classifier(top).flatten(1))
    model.train()
    assert not torch.equal(model(x, "a")[1], model(x, "a")[1])
    torch.testing.assert_close(model.features(x, "a"), top.flatten(1))


def test_bad_configurations() -> None:
    with pytest.raises(ValueError, match="dropout"):
        DigitDiscriminator(1, SMALL, dropout=(0.1,))
    with pytest.raises(ValueError, match="image_size"):
        DigitDiscriminator(1, SMALL, image_size=24)


def test_accuracy_counts_and_keeps_mode() -> None:
    model = DigitDiscriminator(1, SMALL).train()
    x = torch.randn(7, 1, 32, 32)
    with torch.no_grad():
        model.eval()
        predicted = model(x, "a")[1].argmax(1)
        model.train()
    wrong = (predicted + 1) % 10
    labels = torch.cat([predicted[:3], wrong[3:]])
    assert accuracy(model, x, labels, "a", batch_size=2) == pytest.approx(3 / 7)
    assert model.training


# --------------------------------------------------------------------------------------------
# The source-only baseline.


def test_source_only_learns(trained: dict[str, Any]) -> None:
    # Measured (seed 0, 150 steps, SMALL widths): source 0.852, target 0.391; chance is 0.1.
    assert trained["steps"] == STEPS
    assert trained["source_train_accuracy"] > 0.7
    assert trained["target_accuracy"] > 0.3
    losses = [h["loss"] for h in trained["history"]]
    assert [h["step"] for h in trained["history"]] == [50, 100, 150]
    assert losses[-1] < losses[0]


class _Untouchable:
    """Stands in for ``target_train``: a source-only run must not read it at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"target_train.{name} was read by a source-only run")


def _guarded(split: AdaptationSplit, phase: dict[str, bool]) -> AdaptationSplit:
    """``split`` whose ``target_eval`` images and labels raise until ``phase['trained']``,
    and whose ``target_train`` raises on any read."""

    class ScoredAfterTraining(LabeledImages):
        def __getattribute__(self, name: str) -> Any:
            if name in ("images", "labels") and not phase["trained"]:
                raise AssertionError(f"target_eval.{name} was read before training finished")
            return super().__getattribute__(name)

        def __repr__(self) -> str:  # dataclass repr would read the guarded fields
            return "ScoredAfterTraining()"

    e = split.target_eval
    phase["trained"] = True  # construction checks shapes and rows
    guarded = dataclasses.replace(
        split, target_eval=ScoredAfterTraining(e.images, e.origin, e.indices, e.labels)
    )
    object.__setattr__(guarded, "target_train", _Untouchable())  # past the type check
    phase["trained"] = False
    return guarded


def _subset(split: AdaptationSplit, n: int) -> AdaptationSplit:
    """The first ``n`` rows of ``source_train`` and ``target_eval``: cheap to train and score."""

    def head(part: LabeledImages) -> LabeledImages:
        return LabeledImages(part.images[:n], part.origin, part.indices[:n], part.labels[:n])

    return dataclasses.replace(
        split, source_train=head(split.source_train), target_eval=head(split.target_eval)
    )


def test_target_untouched_until_scored(
    split: AdaptationSplit, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _subset(split, 256)
    plain = train_source_only(small, steps=10, seed=0, channels=SMALL)
    phase = {"trained": False}
    fit = baseline.fit_source_classifier

    def fit_then_open(*args: Any, **kwargs: Any) -> Any:
        history = fit(*args, **kwargs)
        phase["trained"] = True
        return history

    monkeypatch.setattr(baseline, "fit_source_classifier", fit_then_open)
    trap = _guarded(small, phase)
    with pytest.raises(AssertionError, match="before training"):
        trap.target_eval.labels  # noqa: B018 - the guard itself works
    with pytest.raises(AssertionError, match="target_train"):
        trap.target_train.images  # noqa: B018
    guarded = train_source_only(trap, steps=10, seed=0, channels=SMALL)
    # Scored after training (the guards raise otherwise), and with the same numbers.
    assert guarded["target_accuracy"] == plain["target_accuracy"]


def test_seeded_and_leaves_global_rng(split: AdaptationSplit) -> None:
    small = _subset(split, 256)
    state = torch.get_rng_state()
    first = train_source_only(small, steps=10, seed=0, eval_every=1, channels=SMALL)
    assert torch.equal(torch.get_rng_state(), state)
    again = train_source_only(small, steps=10, seed=0, eval_every=1, channels=SMALL)
    other = train_source_only(small, steps=10, seed=1, eval_every=1, channels=SMALL)
    keys = ("source_train_accuracy", "target_accuracy", "history")
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}
    assert other["history"] != first["history"]


def test_augmented_baseline_is_seeded_and_differs(split: AdaptationSplit) -> None:
    small = _subset(split, 256)
    kwargs = dict(steps=10, seed=0, eval_every=1, channels=SMALL)
    plain = train_source_only(small, **kwargs)
    warped = train_source_only(small, augment=True, **kwargs)
    again = train_source_only(small, augment=True, **kwargs)
    assert warped["history"] == again["history"]
    assert warped["history"] != plain["history"]  # the batches were warped


def test_target_inverted_option() -> None:
    """Off by default (USPS <-> MNIST needs no inversion); any preset takes it."""
    from unitlab.adapt.config import AdaptConfig, adapt_preset

    assert AdaptConfig().target_inverted is False
    cfg = adapt_preset("tiny", source="svhn", target="mnist", target_inverted=True)
    assert cfg.target_inverted and cfg.to_dict()["target_inverted"] is True
