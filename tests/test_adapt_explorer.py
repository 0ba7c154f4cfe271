"""The digit translation explorer (notebook 00), driven from Python with small random models."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from unitlab.adapt import CoupledDigitVAE, DigitDiscriminator
from unitlab.adapt.explorer import TranslationExplorer, translation_rows
from unitlab.widgets import EXPLORER_CLASS, png_image


@pytest.fixture(scope="module")
def models() -> tuple[CoupledDigitVAE, DigitDiscriminator]:
    torch.manual_seed(0)
    return CoupledDigitVAE(1, 1, 8).eval(), DigitDiscriminator(1, (8, 8, 8, 8)).eval()


def digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n, 1, 32, 32, generator=generator) * 2 - 1
    return images, torch.arange(n) % 10


def test_rows_are_digits_translation_and_round_trip_with_readings(models) -> None:
    gen, classifier = models
    images, labels = digits(5)
    shown = translation_rows(gen, classifier, images, labels, ("USPS", "MNIST"))
    assert len(shown.rows) == len(shown.labels) == 3
    assert shown.labels[0] == "USPS (true digits 0 1 2 3 4)"
    with torch.no_grad():
        translated = gen.translate(images, "a2b")
        reads = classifier(translated, "b")[1].argmax(1).tolist()
    assert shown.labels[1] == "-> MNIST: read " + " ".join(map(str, reads))
    assert shown.labels[2].startswith("-> USPS again: read ")
    # One strip per row, all as wide, and the three differ (a translation is not a copy).
    assert {row.shape[1] for row in shown.rows} == {shown.rows[0].shape[1]}
    assert not np.array_equal(shown.rows[0], shown.rows[1])
    assert shown.image().shape[0] == sum(row.shape[0] for row in shown.rows)


def test_slider_picks_other_digits_and_the_fallback_follows(models) -> None:
    gen, classifier = models
    images, labels = digits(24)
    explorer = TranslationExplorer(gen, classifier, images, labels, ("USPS", "MNIST"), count=8)
    assert EXPLORER_CLASS in explorer._dom_classes
    before_image, before_png = explorer.snapshot(), explorer.view.images[0].value
    explorer.slider.value = 8
    assert explorer.shown.labels[0] == "USPS (true digits 8 9 0 1 2 3 4 5)"
    assert explorer.view.images[0].value != before_png, "the widget's image did not redraw"
    assert "8 9 0 1" in explorer.view.labels[0].value
    assert not np.array_equal(explorer.snapshot(), before_image)
    # A viewer without a kernel gets the current state as a PNG beside the widget's view.
    bundle = explorer._repr_mimebundle_()
    fallback = png_image(base64.b64decode(bundle["image/png"]))
    np.testing.assert_array_equal(fallback, explorer.snapshot())


def test_too_few_digits_is_refused_by_name(models) -> None:
    gen, classifier = models
    images, labels = digits(4)
    with pytest.raises(ValueError, match="count=8"):
        TranslationExplorer(gen, classifier, images, labels, count=8)
    with pytest.raises(ValueError, match="3 labels"):
        TranslationExplorer(gen, classifier, images, labels[:3], count=2)
