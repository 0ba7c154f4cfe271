"""Toy domains with a known 2-D latent space, for seeing what "shared latent space" means.

A latent code is a point ``z = (u, v)`` of the unit square. Two renderers turn the same code into
images of two different-looking domains:

* **dots** (domain 1, grey): a soft white dot at position ``(u, v)`` (``u`` left to right, ``v``
  bottom to top);
* **bars** (domain 2, colour): a bar through the centre whose *angle* is ``u`` (0 to 162 degrees)
  and whose *colour* is ``v`` (cyan to magenta).

Each renderer has an exact inverse read off the pixels (:func:`encode_dots`, :func:`encode_bars`),
so the four maps of UNIT's shared-latent assumption exist in closed form: ``E1 = encode_dots``,
``G1 = render_dots``, ``E2 = encode_bars``, ``G2 = render_bars``.

Unpaired data gives only the two *marginals*. A **coupling** says which image of one domain goes
with which of the other; many couplings share the same marginals. On the latent square, every map
that keeps the uniform distribution (mirror, swap, half-shift) gives a translation whose outputs are
distributed exactly like real domain-2 images, yet pairs the wrong images. :data:`COUPLINGS` holds
a few; on a :func:`latent_grid` with an even side each of them permutes the grid points exactly.

Conventions: codes are float arrays ``(n, 2)``; images uint8 ``(n, size, size, C)`` (as in
:mod:`unitlab.images`: dots have one channel, bars three).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "sample_latents",
    "latent_grid",
    "render_dots",
    "render_bars",
    "encode_dots",
    "encode_bars",
    "COUPLINGS",
    "couple",
    "pair_1d",
    "atlas",
    "BAR_MAX_ANGLE",
]

#: The bar angle at ``u = 1`` (radians). Less than pi, so that the angle identifies ``u``.
BAR_MAX_ANGLE = 0.9 * np.pi
#: Bar colour at ``v = 0`` (cyan) and ``v = 1`` (magenta), through light blue. Both sum to 2 over
#: RGB, so the sum of a pixel's channels measures how much bar it covers, whatever the colour
#: (used by :func:`encode_bars`).
BAR_COLOUR_0 = np.array([0.0, 1.0, 1.0])
BAR_COLOUR_1 = np.array([1.0, 0.0, 1.0])
_DOT_SIGMA = 0.06  # dot radius (standard deviation), as a fraction of the image side
_DOT_MARGIN = 0.2  # the dot centre stays this far (fraction of the side) from the border
_BAR_HALF_LENGTH = 0.4
_BAR_HALF_WIDTH = 0.06


def _check_codes(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"latent codes must have shape (n, 2), got {z.shape}")
    if z.size and (z.min() < 0 or z.max() > 1):
        raise ValueError("latent codes must lie in the unit square [0, 1]^2")
    return z


def sample_latents(n: int, seed: int = 0) -> np.ndarray:
    """``n`` codes drawn uniformly from the unit square, float64 ``(n, 2)``."""
    return np.random.default_rng(seed).random((n, 2))


def latent_grid(k: int) -> np.ndarray:
    """The ``k * k`` cell centres ``((i + 1/2) / k, (j + 1/2) / k)``, row by row from the top.

    Row ``r`` holds ``v = 1 - (r + 1/2) / k`` (top row = largest ``v``) and ``u`` increasing, so
    ``latent_grid(k).reshape(k, k, 2)`` laid out as an image matches the plotted square.
    """
    c = (np.arange(k) + 0.5) / k
    u, v = np.meshgrid(c, c[::-1])
    return np.stack([u.ravel(), v.ravel()], axis=1)


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates on [0, 1]: ``x`` to the right, ``y`` upwards (row 0 at the top)."""
    c = (np.arange(size) + 0.5) / size
    return c[None, :], c[::-1, None]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def render_dots(z: np.ndarray, size: int = 24) -> np.ndarray:
    """Domain 1 (``G1``): a soft dot at ``(u, v)``, uint8 ``(n, size, size, 1)``."""
    z = _check_codes(z)
    x, y = _pixel_centres(size)
    cx = _DOT_MARGIN + (1 - 2 * _DOT_MARGIN) * z[:, 0, None, None]
    cy = _DOT_MARGIN + (1 - 2 * _DOT_MARGIN) * z[:, 1, None, None]
    d2 = (x - cx) ** 2 + (y - cy) ** 2
    return _to_uint8(np.exp(-d2 / (2 * _DOT_SIGMA**2)))[..., None]


def render_bars(z: np.ndarray, size: int = 24) -> np.ndarray:
    """Domain 2 (``G2``): a bar through the centre, angle from ``u``, colour from ``v``.

    Returns uint8 ``(n, size, size, 3)``. Edges are anti-aliased (coverage falls off over about
    one pixel), so small changes of ``z`` change the pixels smoothly.
    """
    z = _check_codes(z)
    x, y = _pixel_centres(size)
    theta = BAR_MAX_ANGLE * z[:, 0, None, None]
    dx, dy = x - 0.5, y - 0.5
    along = dx * np.cos(theta) + dy * np.sin(theta)
    across = -dx * np.sin(theta) + dy * np.cos(theta)
    soft = 1.0 / size  # one pixel of anti-aliasing
    cover = np.clip((_BAR_HALF_WIDTH - np.abs(across)) / soft + 0.5, 0, 1) * np.clip(
        (_BAR_HALF_LENGTH - np.abs(along)) / soft + 0.5, 0, 1
    )
    colour = BAR_COLOUR_0 + z[:, 1, None] * (BAR_COLOUR_1 - BAR_COLOUR_0)  # (n, 3)
    return _to_uint8(cover[..., None] * colour[:, None, None, :])


def encode_dots(images: np.ndarray) -> np.ndarray:
    """``E1``: the code of dot images, from the intensity-weighted centroid. ``(n, 2)``."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"dot images must be (n, H, W, 1), got {images.shape}")
    w = images[..., 0].astype(np.float64)
    x, y = _pixel_centres(images.shape[1])
    total = w.sum(axis=(1, 2))
    cx = (w * x).sum(axis=(1, 2)) / total
    cy = (w * y).sum(axis=(1, 2)) / total
    z = (np.stack([cx, cy], axis=1) - _DOT_MARGIN) / (1 - 2 * _DOT_MARGIN)
    return np.clip(z, 0, 1)


def encode_bars(images: np.ndarray) -> np.ndarray:
    """``E2``: the code of bar images, angle from second moments, colour from the mean colour.

    The coverage of a pixel is its channel sum / 2 (both end colours sum to 2); the bar's
    orientation is that of the principal axis of the coverage, and ``v`` is the position of the
    coverage-weighted mean colour along the line from ``BAR_COLOUR_0`` to ``BAR_COLOUR_1``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"bar images must be (n, H, W, 3), got {images.shape}")
    rgb = images.astype(np.float64) / 255
    cover = rgb.sum(axis=-1) / BAR_COLOUR_0.sum()
    x, y = _pixel_centres(images.shape[1])
    dx, dy = x - 0.5, y - 0.5
    mxx = (cover * dx * dx).sum(axis=(1, 2))
    myy = (cover * dy * dy).sum(axis=(1, 2))
    mxy = (cover * dx * dy).sum(axis=(1, 2))
    theta = 0.5 * np.arctan2(2 * mxy, mxx - myy) % np.pi  # orientation in [0, pi)
    # Angles past the largest one used are closer (mod pi) to 0 than to BAR_MAX_ANGLE.
    theta = np.where(theta > (BAR_MAX_ANGLE + np.pi) / 2, theta - np.pi, theta)
    u = theta / BAR_MAX_ANGLE
    colour = rgb.sum(axis=(1, 2)) / cover.sum(axis=(1, 2))[:, None]
    axis = BAR_COLOUR_1 - BAR_COLOUR_0
    v = (colour - BAR_COLOUR_0) @ axis / (axis @ axis)
    return np.clip(np.stack([u, v], axis=1), 0, 1)


def atlas(render: Callable[..., np.ndarray], k: int = 6, size: int = 24) -> np.ndarray:
    """The images ``render`` makes of the ``k x k`` :func:`latent_grid`, laid out where their
    codes lie in the square (``u`` left to right, ``v`` bottom to top): one uint8 picture."""
    from .images import grid

    images = render(latent_grid(k), size)
    return grid(list(images.reshape(k, k, *images.shape[1:])))


#: Maps of the unit square onto itself that keep the uniform distribution: each turns the true
#: translation ``G2(E1(x))`` into another one whose outputs have *exactly* the same distribution.
COUPLINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "true": lambda z: z.copy(),
    "mirrored": lambda z: np.stack([1 - z[:, 0], z[:, 1]], axis=1),
    "swapped": lambda z: z[:, ::-1].copy(),
    "shifted": lambda z: (z + 0.5) % 1.0,
}


def couple(z: np.ndarray, name: str) -> np.ndarray:
    """The partner code of each code under coupling ``name`` (a key of :data:`COUPLINGS`)."""
    if name not in COUPLINGS:
        raise ValueError(f"unknown coupling {name!r}; known: {', '.join(COUPLINGS)}")
    return COUPLINGS[name](_check_codes(z))


def pair_1d(
    a: np.ndarray, b: np.ndarray, kind: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pair two equally long 1-D samples: return ``(a', b')`` with ``(a'[i], b'[i])`` the pairs.

    Unpaired data is two bags of samples; a *pairing* is a permutation of one bag, so every
    pairing has exactly the marginals of the bags. ``kind``: ``monotone`` (the i-th smallest
    with the i-th smallest), ``antitone`` (smallest with largest) or ``random`` (independent).
    """
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-D samples of equal length, got {a.shape} and {b.shape}")
    if kind == "monotone":
        return a, b
    if kind == "antitone":
        return a, b[::-1].copy()
    if kind == "random":
        return a, np.random.default_rng(seed).permutation(b)
    raise ValueError(f"unknown pairing {kind!r}; known: monotone, antitone, random")
