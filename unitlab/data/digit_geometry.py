"""Where a digit sits in its frame: size normalisation, and random affine augmentation.

MNIST and USPS differ in a *convention* before they differ in handwriting. MNIST's writers'
digits were scaled to fit a 20x20 box and centred in a 28x28 frame; USPS's were scaled to fill
the whole 16x16 frame. Resized to 32x32, a USPS digit is about 1.4x as large as an MNIST digit,
and a classifier that has only seen one size reads the other badly (notebook 07 and
``docs/results.md`` measure it: most of the USPS -> MNIST gap). Both datasets' creators
normalised size within their own data; ``normalise_size`` applies *one* rule to every grey
digit image:
the ink's bounding box is centred and scaled (keeping its aspect ratio) so that its longer side
spans ``fill`` of the frame (MNIST's 20/28 by default). It reads no label and treats each image
alone, so applying it to evaluation images is as legitimate as resizing them.

``random_affine`` is training augmentation (small random scale, rotation and shift per image),
as used by most digit domain-adaptation work: it teaches the classifier that a digit's class
does not depend on exactly where and how large it is, a variation the two domains disagree on.

Both work on float images (N, C, H, W) in [-1, 1] (``DigitData.as_tensors``), where -1 is the
background, and warp with ``grid_sample`` so a batch costs one call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MNIST_FILL = 20 / 28  # MNIST's digits fit a 20x20 box in a 28x28 frame
INK = -0.5  # a pixel is ink above a quarter of full intensity (in [-1, 1])


def _check(images: Tensor, what: str) -> None:
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"{what} needs float images (N, C, H, W) in [-1, 1], got "
            f"{tuple(images.shape)} {images.dtype}"
        )


def _warp(images: Tensor, theta: Tensor) -> Tensor:
    """Resample each image at ``theta``'s affine grid (output coords -> input coords, both in
    [-1, 1]); outside the image is background (-1)."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    shifted = F.grid_sample(images + 1, grid, mode="bilinear", align_corners=False)
    return (shifted - 1).clamp_(-1.0, 1.0)  # zero padding of images + 1 is -1 padding


def ink_boxes(images: Tensor, ink: float = INK) -> Tensor:
    """(N, 4) float: each image's ink bounding box as (top, bottom, left, right) pixel rows and
    columns, inclusive. An image with no ink gets the whole frame (it is left as it is)."""
    _check(images, "ink_boxes")
    mask = images.mean(1) > ink  # (N, H, W); grey channels are identical, RGB is averaged
    h, w = mask.shape[-2:]
    rows, cols = mask.any(2), mask.any(1)

    def extent(present: Tensor, n: int) -> tuple[Tensor, Tensor]:
        where = torch.arange(n, device=images.device).expand_as(present)
        first = torch.where(present, where, n).amin(1)
        last = torch.where(present, where, -1).amax(1)
        empty = ~present.any(1)
        return first.masked_fill(empty, 0), last.masked_fill(empty, n - 1)

    (top, bottom), (left, right) = extent(rows, h), extent(cols, w)
    return torch.stack([top, bottom, left, right], 1).float()


def normalise_size(images: Tensor, fill: float = MNIST_FILL, ink: float = INK) -> Tensor:
    """Each digit centred on its ink's bounding box, the box's longer side scaled to ``fill``
    of the frame (aspect ratio kept). Same shape and range as ``images``; labels not needed."""
    _check(images, "normalise_size")
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    h, w = images.shape[-2:]
    top, bottom, left, right = ink_boxes(images, ink).unbind(1)
    # In grid coordinates (align_corners=False) pixel i spans [2i/n - 1, 2(i+1)/n - 1].
    centre_y, centre_x = (top + bottom + 1) / h - 1, (left + right + 1) / w - 1
    half_extent = torch.maximum((bottom - top + 1) / h, (right - left + 1) / w)
    scale = half_extent / fill  # output [-1, 1] spans the box enlarged by 1 / fill
    theta = torch.zeros(len(images), 2, 3, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, 0, 2], theta[:, 1, 2] = centre_x, centre_y
    return _warp(images, theta)


def random_affine(
    images: Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.85, 1.15),
    degrees: float = 12.0,
    shift: float = 0.1,
) -> Tensor:
    """Each image scaled by a factor in ``scale``, rotated by up to ``degrees`` and shifted by
    up to ``shift`` of the half-frame, all drawn from ``generator`` (a CPU generator, so a
    seeded run draws the same warps on any device)."""
    _check(images, "random_affine")
    n = len(images)
    factor = torch.empty(n).uniform_(*scale, generator=generator)
    angle = torch.empty(n).uniform_(-degrees, degrees, generator=generator) * math.pi / 180
    offset = torch.empty(n, 2).uniform_(-shift, shift, generator=generator)
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1),
                         torch.stack([sin, cos, offset[:, 1]], 1)], 1)  # fmt: skip
    return _warp(images, theta)
