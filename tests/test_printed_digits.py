"""Printed digits: determinism, layout, and that the pictures hold what the labels say.

Some checks need to know where the ink is, which the images alone do not say; they rebuild an
image's parameters with the module's own helpers (``_draw``, ``_glyph_coverage``), as
``printed_digits`` does, and compare the coverage masks with the pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unitlab.data import printed_digits as pd
from unitlab.data.digits import DigitData
from unitlab.data.printed_digits import FONTS, SIZE, glyph_atlas, printed_digits
from unitlab.images import LUMA

N = 300


@pytest.fixture(scope="module")
def data() -> DigitData:
    return printed_digits(N, seed=7)


@pytest.fixture(scope="module")
def coverage(data: DigitData) -> dict[str, torch.Tensor]:
    """Ink coverage (N, 32, 32) in [0, 1] of each image: ``every`` glyph, the labelled digit
    ``alone``, and alone ``upright`` (no jitter, tilt or shear)."""
    rngs = [np.random.default_rng(np.random.SeedSequence(7, spawn_key=(0, i))) for i in range(N)]
    params = pd._stack([pd._draw(r) for r in rngs])
    alone = dict(params, neighbours=torch.full_like(params["neighbours"], -1))
    zeros = torch.zeros(N)
    upright = dict(alone, centre=torch.zeros(N, 2), angle=zeros, shear=zeros)
    return {
        name: pd._glyph_coverage(p, data.labels)[:, 0]
        for name, p in (("every", params), ("alone", alone), ("upright", upright))
    }


def box_centre(coverage: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the (x, y) offsets of the inked bounding box's centre from the image centre."""
    index = torch.arange(SIZE).float()
    offsets = []
    for covered in (coverage.amax(1) > 0.1, coverage.amax(2) > 0.1):  # columns, rows
        first = torch.where(covered, index, torch.inf).amin(1)
        last = torch.where(covered, index, -torch.inf).amax(1)
        offsets.append((first + last) / 2 - (SIZE - 1) / 2)
    return offsets[0], offsets[1]


def test_shapes_and_types(data: DigitData) -> None:
    assert data.images.shape == (N, SIZE, SIZE, 3) and data.images.dtype == torch.uint8
    assert data.labels.shape == (N,) and data.labels.dtype == torch.int64
    assert data.channels == 3 and len(data) == N
    x, y = data.as_tensors(size=32, channels=3)
    assert x.shape == (N, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    grey, _ = data.as_tensors(size=28, channels=1)
    assert grey.shape == (N, 1, 28, 28)


def test_labels_balanced(data: DigitData) -> None:
    assert data.labels.min() >= 0 and data.labels.max() <= 9
    assert data.class_counts() == [N // 10] * 10
    counts = printed_digits(95, seed=1).class_counts()  # any prefix: within one per class
    assert sum(counts) == 95 and set(counts) == {9, 10}
    assert data.labels[:10].tolist() != list(range(10))  # shuffled within blocks


def test_deterministic(data: DigitData) -> None:
    again = printed_digits(N, seed=7)
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    other = printed_digits(N, seed=8)
    assert not torch.equal(other.labels, data.labels)
    assert (other.images != data.images).float().mean() > 0.9


def test_prefix_and_chunking(monkeypatch: pytest.MonkeyPatch, data: DigitData) -> None:
    """Image i depends on (seed, i) only: not on n, nor on how the work is chunked."""
    prefix = printed_digits(25, seed=7)
    assert torch.equal(prefix.images, data.images[:25])
    monkeypatch.setattr(pd, "_CHUNK", 7)
    chunked = printed_digits(25, seed=7)
    assert torch.equal(chunked.images, prefix.images)
    assert torch.equal(chunked.labels, prefix.labels)


def test_images_vary(data: DigitData) -> None:
    pixels = data.images.float()
    assert pixels.std(dim=(1, 2, 3)).min() > 5  # no flat images
    assert len({img.numpy().tobytes() for img in data.images}) == N  # all different
    # Colours vary between images: both polarities, many hues.
    mean = pixels.mean(dim=(1, 2))  # (N, 3)
    assert mean.std(0).min() > 30


def test_ink_stands_out(data: DigitData, coverage: dict[str, torch.Tensor]) -> None:
    every, alone = coverage["every"], coverage["alone"]
    luma = data.images.float() @ torch.tensor(LUMA) / 255
    ink, background = alone > 0.5, every == 0
    assert ink.sum((1, 2)).min() > 20 and background.sum((1, 2)).min() > 100
    ink_luma = (luma * ink).sum((1, 2)) / ink.sum((1, 2))
    background_luma = (luma * background).sum((1, 2)) / background.sum((1, 2))
    contrast = (ink_luma - background_luma).abs()
    # Blur, light and noise eat into the drawn contrast (>= 0.2), as in SVHN's hard cases.
    assert contrast.min() > 0.02 and contrast.median() > 0.15


def test_digit_centred_neighbours_cut(coverage: dict[str, torch.Tensor]) -> None:
    # Upright, the glyph's box lands on the image centre (to the pixel grid's half pixel);
    # jitter (+-1.6 px) and tilting or shearing lopsided glyphs move it, without bias.
    for offset in box_centre(coverage["upright"]):
        assert offset.abs().max() <= 0.5
    for offset in box_centre(coverage["alone"]):
        assert offset.abs().max() <= 6 and offset.mean().abs() < 0.3
    # The labelled digit is whole; neighbours are cut off at the left or right edge (SVHN-like).
    assert not (coverage["alone"][:, :, [0, -1]] > 0.1).any()
    at_edge = (coverage["every"][:, :, [0, -1]] > 0.5).any(1).any(1).float().mean()
    assert 0.5 < at_edge < 0.95


def test_glyph_atlas() -> None:
    masks, aspect = glyph_atlas()
    assert masks.shape == (len(FONTS), 10, 32, 32) and masks.dtype == torch.float32
    assert masks.amax((2, 3)).min() > 0.99  # every glyph drawn
    # Cell borders stay empty: sampling clamps into a cell's border and must find no ink there.
    assert masks[..., [0, -1], :].max() == 0 and masks[..., :, [0, -1]].max() == 0
    # Holes are holes: the centre of an upright sans-serif 0 is background.
    assert masks[FONTS.index("DejaVuSans.ttf"), 0, 15:17, 15:17].max() < 0.1
    assert ((0.3 < aspect) & (aspect < 1)).all()
    # Distinct digits within every font.
    flat = masks.flatten(2)
    for f in range(len(FONTS)):
        assert torch.cdist(flat[f], flat[f]).fill_diagonal_(torch.inf).min() > 1


def test_missing_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pd, "FONTS", ("NoSuchFont.ttf",))
    glyph_atlas.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="NoSuchFont.ttf"):
            glyph_atlas()
    finally:
        glyph_atlas.cache_clear()  # the real atlas is rebuilt on next use


def test_arguments() -> None:
    empty = printed_digits(0)
    assert empty.images.shape == (0, SIZE, SIZE, 3) and len(empty) == 0
    for n in (-1, 2.0, True):
        with pytest.raises(ValueError, match="n must be"):
            printed_digits(n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be"):
        printed_digits(3, seed=-1)
