"""Size normalisation and affine augmentation of digit images, on drawn rectangles whose
geometry is known exactly."""

from __future__ import annotations

import pytest
import torch

from unitlab.data.digit_geometry import MNIST_FILL, ink_boxes, normalise_size, random_affine


def _rectangles(boxes: list[tuple[int, int, int, int]], size: int = 32) -> torch.Tensor:
    """Background -1, a white (1) rectangle per image at (top, bottom, left, right) inclusive."""
    images = -torch.ones(len(boxes), 1, size, size)
    for image, (top, bottom, left, right) in zip(images, boxes, strict=True):
        image[:, top : bottom + 1, left : right + 1] = 1.0
    return images


def test_ink_boxes() -> None:
    boxes = [(0, 31, 0, 31), (3, 10, 20, 25), (30, 31, 0, 0)]
    images = torch.cat([_rectangles(boxes), -torch.ones(1, 1, 32, 32)])
    expected = torch.tensor([*boxes, (0, 31, 0, 31)], dtype=torch.float)  # no ink: whole frame
    assert torch.equal(ink_boxes(images), expected)


def test_normalise_size_centres_and_scales() -> None:
    # A full-frame "USPS-like" digit and a small off-centre one: afterwards both boxes are
    # centred, and their longer sides span `fill` of the frame (within a pixel per side: bilinear
    # resampling blurs each edge into a partly-inked pixel).
    images = _rectangles([(0, 31, 4, 27), (2, 9, 20, 23)])
    out = normalise_size(images, fill=0.75)
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    for top, bottom, left, right in ink_boxes(out).tolist():
        assert abs((top + bottom) / 2 - 15.5) <= 1 and abs((left + right) / 2 - 15.5) <= 1
        assert abs((bottom - top + 1) - 0.75 * 32) <= 2  # the longer side is the height
    # Aspect ratio kept: the first box is 32 x 24, so its width becomes 24 * 0.75 = 18.
    top, bottom, left, right = ink_boxes(out)[0].tolist()
    assert abs((right - left + 1) - 18) <= 2


def test_normalise_size_is_stable_and_leaves_blank_images() -> None:
    # A normalised digit stays (nearly) where it is: only the edge blur may grow the box.
    once = normalise_size(_rectangles([(5, 20, 8, 15)]))
    assert (ink_boxes(normalise_size(once)) - ink_boxes(once)).abs().max() <= 1
    blank = -torch.ones(2, 3, 32, 32)
    assert torch.equal(normalise_size(blank), blank)


def test_normalise_size_matches_mnist_convention(offline_data) -> None:
    """Real MNIST digits are already normalised this way (20x20 box, centred): the rule moves
    them little, while USPS digits shrink to MNIST's size."""
    from unitlab.data.digits import load_mnist, load_usps

    mnist = load_mnist("test").as_tensors(32)[0][:200]
    usps = load_usps("test").as_tensors(32)[0][:200]

    def longer_side(x: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = ink_boxes(x).unbind(1)
        return torch.maximum(bottom - top, right - left) + 1

    assert longer_side(usps).mean() > 29  # USPS fills its frame
    assert abs(longer_side(normalise_size(usps)).mean() - 32 * MNIST_FILL) < 1.5
    assert abs(longer_side(normalise_size(mnist)).mean() - longer_side(mnist).mean()) < 1.5


def test_random_affine_is_seeded_and_varies() -> None:
    images = _rectangles([(8, 23, 12, 19)] * 8)
    a = random_affine(images, torch.Generator().manual_seed(1))
    b = random_affine(images, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.shape == images.shape and a.min() >= -1 and a.max() <= 1
    assert not torch.allclose(a[0], a[1])  # each image its own warp
    identity = random_affine(images, torch.Generator(), scale=(1, 1), degrees=0, shift=0)
    assert torch.allclose(identity, images, atol=1e-5)


@pytest.mark.parametrize("bad", [torch.zeros(32, 32), torch.zeros(1, 1, 8, 8, dtype=torch.uint8)])
def test_bad_images_are_named(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"normalise_size needs float images \(N, C, H, W\)"):
        normalise_size(bad)
    with pytest.raises(ValueError, match="fill must be in"):
        normalise_size(torch.zeros(1, 1, 8, 8), fill=1.5)
