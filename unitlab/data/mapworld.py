"""Map world: procedural cities rendered as a flat web map and as an aerial photo.

It stands in, offline, for the pix2pix ``maps`` dataset (satellite -> map, scored by pixel
accuracy): every layout is a label image, so every satellite image has its true map.

Design choices worth knowing:

* **Classes** (uint8 labels): 0 land, 1 major road, 2 minor road, 3 building, 4 park, 5 water.
  The map style adds one effect that is not a class: a darker outline around major roads (drawn
  on the neighbouring land/building/park/water pixels), as web maps do.
* **Determinism by image**: image ``i`` draws from ``np.random.default_rng([seed, stream, i,
  purpose])`` and from nothing else, so it depends only on ``(seed, stream, i)``: the first 100 of
  a 2000-image set are the 100-image set, and chunked processing cannot change a pixel. Only the
  few *parameters* are drawn per image in Python; every per-pixel operation is vectorised numpy
  over a chunk of images (chunks bound memory, not results).
* **Streams**: training satellites, training maps and the paired evaluation set come from
  different ``stream`` numbers, so the three are disjoint by construction (different random
  streams, not different slices of one), whatever ``n`` each asks for.
* **Not a toy**: the satellite look is built so that colours of different classes overlap (tree
  canopy vs dark roofs vs water vs shadowed asphalt; light roofs vs paving vs sun glints; lawns vs
  park grass; cars on roads; trees over yards). A per-pixel colour rule therefore cannot solve it;
  context (shapes, shadows, textures, neighbours) can. ``tests/test_mapworld.py`` checks both.
* **Caching** (``cache=None``, the default) is on from 128 px, off below: 2000 training pairs
  take seconds at 32-64 px (~1.5 and ~5 ms per pair on one busy core) but minutes at 256 px
  (~100 ms per pair), and a cache is a second source of truth that can go stale. Files live under
  ``<data root>/mapworld``, keyed by :data:`GENERATOR_VERSION`, which must be bumped whenever the
  output of this module changes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import numpy as np

from .paths import data_root

LAND, MAJOR_ROAD, MINOR_ROAD, BUILDING, PARK, WATER = range(6)
CLASS_NAMES = ("land", "major road", "minor road", "building", "park", "water")
N_CLASSES = len(CLASS_NAMES)

# A web-map palette: few flat colours, each class >16 from every other on some channel, so the
# pixel-accuracy metric (threshold 16) cannot confuse them.
MAP_PALETTE = np.array(
    [
        (240, 236, 226),  # land: light beige-grey
        (252, 214, 120),  # major road: yellow
        (255, 255, 255),  # minor road: white
        (214, 205, 195),  # building: grey-beige
        (196, 226, 176),  # park: green
        (166, 206, 227),  # water: blue
    ],
    dtype=np.uint8,
)
MAJOR_OUTLINE = np.array((214, 160, 84), dtype=np.uint8)

# Bump when the generated pixels change: it keys the on-disk cache.
GENERATOR_VERSION = 1

# Streams: which independent random stream a set of layouts comes from.
STREAM_DEFAULT, STREAM_TRAIN_SAT, STREAM_TRAIN_MAP, STREAM_EVAL = 0, 1, 2, 3
_LAYOUT, _SATELLITE = 0, 1  # the purpose word of the per-image entropy
_DENSE, _SPARSE, _PARK_BLOCK, _EMPTY = range(4)  # block types

# About 1M pixels per chunk: bounded memory at every size, large batches at small sizes.
_CHUNK_PIXELS = 1 << 20


# ----------------------------------------------------------------------------- random helpers


def _rngs(seed: int, stream: int, start: int, stop: int, purpose: int) -> list[np.random.Generator]:
    """One generator per image. Fixed-length entropy: SeedSequence pads short lists with zeros,
    so ``[s, i]`` and ``[s, i, 0]`` would collide; four words each never do."""
    return [np.random.default_rng([seed, stream, i, purpose]) for i in range(start, stop)]


def _each(
    rngs: list[np.random.Generator], draw: Callable[[np.random.Generator], object]
) -> np.ndarray:
    """Stack one draw per image. Each generator sees the draws in code order, so the values of
    image i never depend on the other images of the chunk."""
    return np.stack([np.asarray(draw(r)) for r in rngs])


def _col(x: np.ndarray) -> np.ndarray:
    """Per-image values (m,) or (m, 3) shaped to broadcast over (m, H, W[, 3])."""
    return x.reshape(x.shape[0], 1, 1, *x.shape[1:]).astype(np.float32)


def _chunks(n: int, pixels_per_image: int):
    step = max(1, _CHUNK_PIXELS // pixels_per_image)
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _check_args(n: int, size: int, seed: int) -> None:
    if not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(size, int | np.integer) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _check_layouts(layouts: np.ndarray) -> None:
    if not isinstance(layouts, np.ndarray) or layouts.dtype != np.uint8 or layouts.ndim != 3:
        got = getattr(layouts, "dtype", type(layouts).__name__), getattr(layouts, "shape", None)
        raise ValueError(f"layouts must be a uint8 array (n, H, W), got {got}")
    if layouts.size and layouts.max() >= N_CLASSES:
        raise ValueError(f"layout labels must be < {N_CLASSES}, got {layouts.max()}")


# ----------------------------------------------------------------------------- pixel helpers


def _shift(a: np.ndarray, dy: int, dx: int, fill=0) -> np.ndarray:
    """``a`` moved by (dy, dx) over its last two axes, uncovered pixels set to ``fill``."""
    out = np.full_like(a, fill)
    h, w = a.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = a[..., ys, xs]
    return out


_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _any_neighbour(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in ``mask``."""
    out = np.zeros_like(mask)
    for dy, dx in _NEIGHBOURS:
        out |= _shift(mask, dy, dx)
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` whose four neighbours are in it too (the border counts as inside)."""
    out = mask.copy()
    for dy, dx in _NEIGHBOURS:
        out &= _shift(mask, dy, dx, fill=True)
    return out


def _value_noise(
    rngs: list[np.random.Generator], shape: tuple[int, int], cell: float
) -> np.ndarray:
    """Smooth noise (m, H, W) in [0, 1] with features of ~``cell`` px.

    Random values on a coarse grid, upsampled with smoothstep weights: cheap and separable.
    """
    cell = max(cell, 1.0)
    h, w = shape
    grid = _each(rngs, lambda r: r.random((int(h / cell) + 2, int(w / cell) + 2), dtype=np.float32))
    out = grid
    for axis, n in ((1, h), (2, w)):
        pos = (np.arange(n) + 0.5) / cell
        i0 = pos.astype(np.int64)
        f = (pos - i0).astype(np.float32)
        f = (f * f * (3 - 2 * f)).reshape((n, 1) if axis == 1 else (n,))
        out = np.take(out, i0, axis=axis) * (1 - f) + np.take(out, i0 + 1, axis=axis) * f
    return out


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return x / (x.std(axis=(1, 2), keepdims=True) + 1e-6)


def _fbm(
    rngs: list[np.random.Generator], shape: tuple[int, int], cells: tuple[float, ...]
) -> np.ndarray:
    """Fractal noise: octaves of value noise, each half the weight of the previous, standardised
    per image so that thresholds mean "this many standard deviations"."""
    return _standardise(sum(0.5**k * _value_noise(rngs, shape, c) for k, c in enumerate(cells)))


def _neighbour_mean(x: np.ndarray) -> np.ndarray:
    """Mean of the 4 neighbours over axes 1, 2 (edges replicated, so borders do not darken)."""
    p = np.pad(x, [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 3), mode="edge")
    return (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4


# ----------------------------------------------------------------------------- layouts


class _Uniforms:
    """Hands out columns of one (m, k) block of uniforms, in code order.

    One generator call per image for all its scalar parameters: the per-call overhead of numpy's
    generators, not the arithmetic, is what costs at thousands of small images. Columns are
    appended, never reordered, so adding a parameter at the end changes no earlier one.
    """

    def __init__(self, rngs: list[np.random.Generator], k: int) -> None:
        self.u = _each(rngs, lambda r: r.random(k))
        self.i = 0

    def __call__(self, lo: float = 0.0, hi: float = 1.0, count: int | None = None) -> np.ndarray:
        k = 1 if count is None else count
        if self.i + k > self.u.shape[1]:
            raise RuntimeError("_Uniforms budget exhausted: raise its k")  # a bug, not input
        u = self.u[:, self.i : self.i + k]
        self.i += k
        u = lo + (hi - lo) * u
        return u[:, 0] if count is None else u

    def colour(self, base: tuple[float, float, float], spread: float) -> np.ndarray:
        """A per-image colour (m, 3): ``base`` shifted in brightness and a little in hue."""
        bright = self(-spread, spread)[:, None]
        return np.asarray(base, np.float32) + bright + self(-spread / 3, spread / 3, 3)


def _mix64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hash (a, b) uint64 -> 64 well-mixed bits (splitmix64's finaliser).

    Per-lot and per-block randomness is a hash of (image salt, id along u, id along v): no 2-D
    random table to draw per image, and a lot's values do not depend on how many lots exist.
    """
    with np.errstate(over="ignore"):
        x = a ^ (b.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _byte(h: np.ndarray, k: int) -> np.ndarray:
    """Byte ``k`` of a hash as a float in [0, 1)."""
    return ((h >> np.uint64(8 * k)) & np.uint64(255)).astype(np.float32) / 256


def _pick(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, idx, axis=1)


class _Axes:
    """One axis of each image's street grid: roads alternating with blocks cut into equal lots.

    Per position t (m, length): ``road`` class (0 off-road) and ``lot`` id. Per lot id q
    (m, q_max): ``lot_start``, ``lot_len``, ``lot_block``. Two axes (u, v) make the 2-D grid;
    a rotation maps pixels to (u, v), so the per-pixel work is gathers and comparisons.
    """

    def __init__(self, draw: _Uniforms, length: int, z: float) -> None:
        density = draw(0.8, 1.3)
        lo, hi = np.maximum(5, 10 * z * density), np.maximum(8, 22 * z * density)
        w_minor = np.maximum(1, np.round(z * draw(1.6, 2.8)))
        w_major = np.maximum(w_minor + 1, np.round(z * draw(3.5, 5.5)))
        p_major = draw(0.1, 0.35)
        lot_target = np.maximum(3, z * draw(5, 9))
        offset = draw() * hi
        # Enough roads to pass `length` from the most negative offset with the shortest blocks.
        most = int((length + 8 + 22 * z * 1.3) / max(5, 8 * z)) + 2
        major = draw(count=most) < p_major[:, None]
        width = np.where(major, w_major[:, None], w_minor[:, None])
        step = width + lo[:, None] + (hi - lo)[:, None] * draw(count=most)  # road + next block
        start = np.cumsum(step, axis=1) - step[:, :1] - offset[:, None]
        start = np.round(start).astype(np.int64)
        width = width.astype(np.int64)
        block_start = start[:, :-1] + width[:, :-1]
        block_len = np.maximum(start[:, 1:] - block_start, 1)
        jitter = draw(0.7, 1.4, most - 1)
        lots = np.maximum(1, np.round(block_len / (lot_target[:, None] * jitter))).astype(np.int64)
        first_lot = np.cumsum(lots, axis=1) - lots

        t = np.arange(length)
        r = (start[:, None, :-1] <= t[None, :, None]).sum(-1) - 1  # road at or before t, >= 0
        blen, m = _pick(block_len, r), _pick(lots, r)
        j = np.clip((t - _pick(block_start, r)) * m // blen, 0, m - 1)
        on_road = t < _pick(start, r) + _pick(width, r)
        self.road = np.where(on_road, np.where(_pick(major, r), MAJOR_ROAD, MINOR_ROAD), 0)
        self.lot = _pick(first_lot, r) + j
        q = np.arange(int(self.lot.max()) + 1)
        b = (first_lot[:, None, :] <= q[None, :, None]).sum(-1) - 1
        k = q - _pick(first_lot, b)
        bs, bl, bn = _pick(block_start, b), _pick(block_len, b), _pick(lots, b)
        self.lot_start = bs + k * bl // bn
        self.lot_len = bs + (k + 1) * bl // bn - self.lot_start
        self.lot_block = b


def _lot_table(u: _Axes, v: _Axes, draw: _Uniforms, salt: np.ndarray, z: float) -> np.ndarray:
    """Per lot (m, Qu, Qv, 9) int32: [kind, building u0, u1, v0, v1, cut u0, u1, v0, v1].

    kind 0 land, 1 park, 2 building. Bounds are half-open grid coordinates: the per-pixel test
    is ``u0 <= iu < u1`` etc. Every decision is made here, once per lot, not once per pixel.
    """
    p_park = draw(0.03, 0.2)[:, None, None]
    p_empty = p_park + draw(0.02, 0.1)[:, None, None]
    p_sparse = draw(0.0, 0.5)[:, None, None]
    s0, s1 = salt[:, 0, None, None], salt[:, 1, None, None]

    hb = _mix64(_mix64(s0, u.lot_block[:, :, None]), v.lot_block[:, None, :])
    b = _byte(hb, 0)
    rest = (b - p_empty) / (1 - p_empty)
    btype = np.where(
        b < p_park,
        _PARK_BLOCK,
        np.where(b < p_empty, _EMPTY, np.where(rest < p_sparse, _SPARSE, _DENSE)),
    )
    h = _mix64(
        _mix64(s1, np.arange(u.lot_len.shape[1])[None, :, None]), np.arange(v.lot_len.shape[1])
    )
    sparse = btype == _SPARSE
    # Dense blocks: small insets, nearly every lot built. Sparse: houses in yards.
    max_inset = np.where(sparse, max(1, round(2.5 * z)) + 1, max(1, round(z)))
    inset = [(_byte(h, k) * (max_inset + 1)).astype(np.int64) for k in range(1, 5)]
    # A gap of at least 1 px on the +u and +v sides: buildings never touch, so a renderer can
    # tell them apart as connected components (one roof each).
    inset[1], inset[3] = np.maximum(inset[1], 1), np.maximum(inset[3], 1)
    su, lu = u.lot_start[:, :, None], u.lot_len[:, :, None]
    sv, lv = v.lot_start[:, None, :], v.lot_len[:, None, :]
    u0, u1 = su + inset[0], su + lu - inset[1]
    v0, v1 = sv + inset[2], sv + lv - inset[3]
    present = _byte(h, 0) < np.where(sparse, 0.6, 0.93)
    built = ((btype == _DENSE) | sparse) & present & (u1 - u0 >= 2) & (v1 - v0 >= 2)
    kind = np.where(btype == _PARK_BLOCK, 1, np.where(built, 2, 0))
    # L-shapes: 30% of buildings lose one corner; the rest of byte 5 says which corner.
    sel = _byte(h, 5)
    corner = (sel / 0.3 * 4).astype(np.int64)
    keep_u = np.maximum(1, ((u1 - u0) * (0.35 + 0.35 * _byte(h, 6))).astype(np.int64))
    keep_v = np.maximum(1, ((v1 - v0) * (0.35 + 0.35 * _byte(h, 7))).astype(np.int64))
    cu0, cu1 = np.where(corner & 1, u0, u0 + keep_u), np.where(corner & 1, u1 - keep_u, u1)
    cv0, cv1 = np.where(corner & 2, v0, v0 + keep_v), np.where(corner & 2, v1 - keep_v, v1)
    cu1 = np.where(sel < 0.3, cu1, cu0)  # empty cut range: no cut
    return np.stack([kind, u0, u1, v0, v1, cu0, cu1, cv0, cv1], axis=-1).astype(np.int32)


def _layout_chunk(rngs: list[np.random.Generator], size: int) -> np.ndarray:
    m, z = len(rngs), size / 64
    length = int(np.ceil(size * np.sqrt(2))) + 4  # covers the image at any rotation
    draw = _Uniforms(rngs, 200)
    salt = _each(rngs, lambda r: r.integers(0, 2**63, 2, dtype=np.uint64))

    angle = np.where(draw() < 0.4, 0.0, draw(-np.pi / 4, np.pi / 4))
    u, v = _Axes(draw, length, z), _Axes(draw, length, z)
    table = _lot_table(u, v, draw, salt, z)
    qu, qv = table.shape[1:3]
    table = table.reshape(m * qu * qv, 9)

    # Pixel centres -> grid coordinates (iu, iv) of each image's rotated street grid.
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) - c
    cos, sin = _col(np.cos(angle)), _col(np.sin(angle))
    iu = np.clip(x * cos + y * sin + length / 2, 0, length - 1).astype(np.int64)
    iv = np.clip(-x * sin + y * cos + length / 2, 0, length - 1).astype(np.int64)
    img = np.arange(m)[:, None, None]
    flat_u, flat_v = img * length + iu, img * length + iv
    road_u, road_v = u.road.ravel()[flat_u], v.road.ravel()[flat_v]
    lot = (img * qu + u.lot.ravel()[flat_u]) * qv + v.lot.ravel()[flat_v]
    t = np.take(table, lot, axis=0)  # (m, H, W, 9)
    inside = (iu >= t[..., 1]) & (iu < t[..., 2]) & (iv >= t[..., 3]) & (iv < t[..., 4])
    cut = (iu >= t[..., 5]) & (iu < t[..., 6]) & (iv >= t[..., 7]) & (iv < t[..., 8])

    labels = np.where(t[..., 0] == 1, PARK, LAND).astype(np.uint8)
    labels[(t[..., 0] == 2) & inside & ~cut] = BUILDING
    labels[(road_u == MINOR_ROAD) | (road_v == MINOR_ROAD)] = MINOR_ROAD
    labels[(road_u == MAJOR_ROAD) | (road_v == MAJOR_ROAD)] = MAJOR_ROAD
    core, margin = _avenue(draw, x, y, z)
    labels[margin & (labels == BUILDING)] = LAND
    labels[core] = MAJOR_ROAD
    labels[_water(draw, x, y, size) & (labels != MAJOR_ROAD)] = WATER  # major roads bridge it
    return labels


def _avenue(
    draw: _Uniforms, x: np.ndarray, y: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray]:
    """A diagonal major road across the grid in 25% of images (a Broadway): (road, road plus a
    setback that keeps buildings off it)."""
    size = x.shape[0]
    present = _col(draw() < 0.25) > 0
    angle = _col(draw(0, np.pi))
    px, py = _col(draw(-0.3, 0.3) * size), _col(draw(-0.3, 0.3) * size)
    half = _col(np.maximum(1.0, z * draw(1.8, 2.6)))
    dist = np.abs((x - px) * np.sin(angle) - (y - py) * np.cos(angle))
    return present & (dist < half), present & (dist < half + 1.5)


def _water(draw: _Uniforms, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Water: none (55%), a meandering river (30%) or a wobbly lake (15%)."""
    kind = _col(draw())
    # river: distance across the flow from a meandering centre line
    d = _col(draw(0, np.pi))
    offset, amp = _col(draw(-0.45, 0.45) * size), _col(draw(0, 0.15) * size)
    wavelength, phase = _col(draw(0.8, 2.0) * size), _col(draw(0, 2 * np.pi))
    half = _col(draw(0.06, 0.18) * size)
    along, across = x * np.cos(d) + y * np.sin(d), -x * np.sin(d) + y * np.cos(d)
    river = np.abs(across - offset - amp * np.sin(2 * np.pi * along / wavelength + phase)) < half
    # lake: polar radius modulated by two harmonics
    cx, cy = _col(draw(-0.5, 0.5) * size), _col(draw(-0.5, 0.5) * size)
    radius = _col(draw(0.15, 0.35) * size)
    a2, a3 = _col(draw(0, 0.2)), _col(draw(0, 0.15))
    p2, p3 = _col(draw(0, 2 * np.pi)), _col(draw(0, 2 * np.pi))
    dx, dy = x - cx, y - cy
    theta = np.arctan2(dy, dx)
    r = radius * (1 + a2 * np.sin(2 * theta + p2) + a3 * np.sin(3 * theta + p3))
    lake = dx * dx + dy * dy < r * r
    return ((kind >= 0.55) & (kind < 0.85) & river) | ((kind >= 0.85) & lake)


def generate_layouts(
    n: int, size: int, seed: int = 0, *, stream: int = STREAM_DEFAULT
) -> np.ndarray:
    """``n`` random city layouts, uint8 labels (n, size, size) with values in ``range(6)``.

    A jittered (sometimes rotated) street grid of major and minor roads; blocks of buildings
    (rectangles in the grid frame, some L-shaped), parks and empty plots; sometimes a diagonal
    avenue, a river or a lake (major roads bridge water). Feature sizes scale with ``size``
    (a 64 px image shows ~3-6 blocks across). Layout ``i`` depends only on ``(seed, stream, i)``.
    """
    _check_args(n, size, seed)
    out = np.empty((n, size, size), dtype=np.uint8)
    for a, b in _chunks(n, size * size):
        out[a:b] = _layout_chunk(_rngs(seed, stream, a, b, _LAYOUT), size)
    return out


# ----------------------------------------------------------------------------- rendering


def render_map(layouts: np.ndarray) -> np.ndarray:
    """The web-map style (n, H, W, 3) uint8: the class palette plus major-road outlines.

    Deterministic, almost a lookup table: a translation model is scored on reproducing it.
    """
    _check_layouts(layouts)
    rgb = MAP_PALETTE[layouts]
    major = layouts == MAJOR_ROAD
    outline = _any_neighbour(major) & ~major & (layouts != MINOR_ROAD)
    rgb[outline] = MAJOR_OUTLINE
    return rgb


# Roof colours of aerial photos: dark and light greys, terracotta, brown, tar. Dark roofs overlap
# canopy, water and asphalt; light ones overlap paving and sun glints. Weights sum to 1.
_ROOFS = np.array(
    [
        (62, 62, 66),
        (96, 98, 100),
        (138, 134, 128),
        (188, 184, 176),
        (222, 218, 210),
        (164, 90, 66),
        (122, 94, 72),
        (74, 84, 76),
    ],
    dtype=np.float32,
)
_ROOF_CUMULATIVE = np.cumsum([0.18, 0.14, 0.14, 0.14, 0.10, 0.14, 0.08, 0.08])
# The "clear" look keeps everything of the photo but its roofs: light concrete, greys and
# terracottas, none as dark as canopy, water or asphalt. Roofs then differ from their
# surroundings by colour *and* by shape, shading and cast shadows, while paving, trees over
# yards, cars and shadows still make a per-pixel rule fail where context does not.
_CLEAR_ROOFS = np.array(
    [
        (190, 186, 178),
        (164, 90, 66),
        (200, 120, 90),
        (170, 170, 175),
        (150, 80, 60),
        (210, 205, 195),
        (180, 110, 80),
        (160, 160, 165),
    ],
    dtype=np.float32,
)
LOOKS = ("photo", "clear")
_CARS = np.array(
    [(228, 228, 226), (28, 28, 32), (160, 40, 36), (40, 60, 120), (150, 150, 156)],
    dtype=np.float32,
)


def _run_max(val: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """The max of ``val`` over each run of ``mask`` along ``axis`` (-1 outside ``mask``).

    A segmented scan: prefixing each value with its run number (a cumulative count of the gaps)
    makes a plain running maximum stop at run boundaries. Needs ``val >= 0`` inside.
    """
    big = int(val.max(initial=0)) + 2
    dtype = np.int32 if (mask.shape[axis] + 1) * big < 2**31 else np.int64
    out = val.astype(dtype)
    for flip in (False, True):
        gaps = np.flip(~mask, axis) if flip else ~mask
        run = np.cumsum(gaps, axis=axis, dtype=dtype) * dtype(big)
        key = (np.flip(out, axis) if flip else out) + run
        out = np.maximum.accumulate(key, axis=axis) - run
        out = np.flip(out, axis) if flip else out
    return np.where(mask, out, dtype(-1))


def _components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of ``mask`` (m, H, W): per pixel, the in-image flat index (y * W +
    x) of its component's representative pixel; -1 outside.

    Alternating row and column run maxima until a pass changes nothing (labels are then constant
    along rows and columns, hence on components): 3 passes for an axis-aligned rectangle, ~6 for
    rotated ones, far fewer than one pass per pixel of extent.
    """
    h, w = mask.shape[1:]
    lab = _run_max(np.where(mask, np.arange(h * w).reshape(h, w), -1), mask, axis=2)
    axis = 1
    while True:
        new = _run_max(lab, mask, axis)
        if np.array_equal(new, lab):
            return lab
        lab, axis = new, 3 - axis


def _edge_distances(mask: np.ndarray) -> np.ndarray:
    """Per pixel, the distance (m, H, W, 4) to the nearest pixel outside ``mask`` towards
    -x, +x, -y, +y: the nearest roof edge says which face of a hip roof a pixel is on."""
    out = []
    for axis in (2, 1):
        n = mask.shape[axis]
        idx = np.arange(n, dtype=np.int32).reshape((1, n, 1) if axis == 1 else (1, 1, n))
        for flip in (False, True):
            mk = np.flip(mask, axis) if flip else mask
            d = idx - np.maximum.accumulate(np.where(mk, np.int32(-1), idx), axis=axis)
            out.append(np.flip(d, axis) if flip else d)
    return np.stack(out, axis=-1)


_FACE_NORMALS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.float32)  # (x, y)


def _depth(mask: np.ndarray, steps: int) -> np.ndarray:
    """Erosion depth in [0, 1]: 0 at the mask's edge, 1 at ``steps`` pixels in and beyond."""
    depth, core = np.zeros(mask.shape, np.float32), mask
    for _ in range(steps):
        core = _erode(core)
        depth += core
    return depth / steps


# Materials of the satellite look. Per image each has two colours, mixed per pixel by a field t
# (ground: paving -> lawn; water: shallow -> deep) and scaled by a per-pixel brightness: one
# gather and a few multiplies then colour the whole chunk.
_GROUND, _CANOPY, _GRASS, _MAJOR_ASPHALT, _MINOR_ASPHALT, _SIDEWALK, _MARKING, _SPARKLE = range(8)
_WATER_MATERIAL, _CAR0 = 8, 9
_ROOF0 = _CAR0 + len(_CARS)
_N_MATERIALS = _ROOF0 + len(_ROOFS)


class _Look:
    """Per-image draws of one chunk (colours, scalars, noise fields), in a fixed order."""

    def __init__(self, rngs: list[np.random.Generator], shape: tuple[int, int]) -> None:
        self.rngs, self.shape = rngs, shape
        self.z = np.sqrt(shape[0] * shape[1]) / 64
        self.draw = _Uniforms(rngs, 80)

    def noise(self, *cells: float) -> np.ndarray:
        """Standardised smooth noise (m, H, W); cells in px of a 64 px image, scaled with it."""
        return _fbm(self.rngs, self.shape, tuple(c * self.z for c in cells))

    def normal(self, channels: int) -> np.ndarray:
        h, w = self.shape
        return _each(self.rngs, lambda r: r.standard_normal((h, w, channels), dtype=np.float32))

    def uniform(self) -> np.ndarray:
        return _each(self.rngs, lambda r: r.random(self.shape, dtype=np.float32))

    def scalar(self, lo: float, hi: float) -> np.ndarray:
        """A per-image value shaped (m, 1, 1)."""
        return _col(self.draw(lo, hi))

    def palette(self, roofs: np.ndarray) -> np.ndarray:
        """(m, materials, 2, 3) colours: each image gets its own shades of every material."""
        m = self.draw.u.shape[0]
        pal = np.empty((m, _N_MATERIALS, 2, 3), np.float32)
        paving, lawn = self.draw.colour((158, 152, 142), 22), self.draw.colour((98, 120, 70), 16)
        asphalt = self.draw.colour((88, 88, 92), 14)
        shallow, deep = self.draw.colour((74, 94, 86), 14), self.draw.colour((32, 52, 66), 10)
        pairs = {
            _GROUND: (paving, lawn),
            _CANOPY: self.draw.colour((46, 70, 40), 10),
            _GRASS: self.draw.colour((110, 136, 76), 14),
            _MAJOR_ASPHALT: asphalt * self.draw(0.8, 1.3)[:, None],  # new tarmac or concrete
            _MINOR_ASPHALT: asphalt * 1.08 + 4,
            _SIDEWALK: paving * 1.08,
            _MARKING: asphalt * 0.45 + 100,
            _SPARKLE: shallow * 0.4 + 140,
            _WATER_MATERIAL: (shallow, deep),
        }
        for k, c in pairs.items():
            pal[:, k] = np.stack(c, axis=1) if isinstance(c, tuple) else c[:, None]
        pal[:, _CAR0 : _CAR0 + len(_CARS)] = _CARS[None, :, None]
        pal[:, _ROOF0:] = roofs[None, :, None]
        return pal


def _satellite_chunk(
    lab: np.ndarray, rngs: list[np.random.Generator], roofs: np.ndarray = _ROOFS
) -> np.ndarray:
    m, h, w = lab.shape
    look = _Look(rngs, (h, w))
    z = look.z
    land, park, water, bldg = lab == LAND, lab == PARK, lab == WATER, lab == BUILDING
    major = lab == MAJOR_ROAD
    road = major | (lab == MINOR_ROAD)
    fine, patches, clumps = look.noise(1, 0.5), look.noise(6, 3), look.noise(4, 2, 1)
    speck = look.uniform()
    pal = look.palette(roofs)

    # Ground: paving and lawn mixed at the scale of yards.
    mat = np.full((m, h, w), _GROUND, np.int8)
    t = 1 / (1 + np.exp(-2.5 * (patches + look.scalar(-1.5, 1.5))))
    bright = 1 + 0.07 * fine
    # Asphalt (major roads: own shade, dashed lane lines), sidewalks along wide roads, cars.
    inner = _erode(road)
    sidewalk = road & ~inner & _any_neighbour(inner)
    lanes = _erode(major)
    lanes &= ~_erode(lanes)  # one line on 3-4 px roads, two lane lines on 5-6 px ones
    yy, xx = np.mgrid[0:h, 0:w]
    dashes = lanes & (((yy + xx) // max(2, round(2 * z))) % 3 == 0)
    car_p = look.scalar(0.0, 0.07)
    cars = inner & (speck < car_p)
    car = _CAR0 + np.minimum(speck / np.maximum(car_p, 1e-6) * len(_CARS), len(_CARS) - 1)
    mat = np.where(road, np.where(major, _MAJOR_ASPHALT, _MINOR_ASPHALT), mat)
    mat = np.where(sidewalk, _SIDEWALK, np.where(dashes, _MARKING, mat))
    mat = np.where(cars, car.astype(np.int8), mat)
    bright = np.where(road & ~sidewalk, 1 + 0.05 * fine + 0.06 * patches, bright)
    # Tree canopy: clumpy crowns. Parks: mostly trees over grass; land: a few yard trees.
    trees = (park & (clumps > look.scalar(-0.9, 0.4))) | (
        (land | sidewalk) & (clumps > look.scalar(1.0, 2.2))
    )
    mat = np.where(park, _GRASS, mat)
    mat = np.where(trees, _CANOPY, mat)
    bright = np.where(park, 1 + 0.08 * fine, bright)
    bright = np.where(trees, np.clip(0.8 + 0.25 * fine, 0.45, 1.3), bright)
    # Water: shallow to deep away from the shore, waves, a sun-glint sheen, sparkles.
    sheen = np.clip(patches - look.scalar(0.8, 3.0), 0, 1)
    sparkle = water & (speck > 1 - look.scalar(0.0, 0.03))
    mat = np.where(water, np.where(sparkle, _SPARKLE, _WATER_MATERIAL), mat)
    t = np.where(water, _depth(water, max(2, round(4 * z))), np.where(mat == _GROUND, t, 0))
    bright = np.where(water, (1 + 0.05 * fine) * (1 + 0.8 * sheen), bright)

    # Roofs: one colour per building; hip roofs lit face by face by the sun, or flat ones.
    comp = np.maximum(_components(bldg), 0).reshape(m, h * w, 1)
    per_building = _each(rngs, lambda r: r.random((h * w, 4), dtype=np.float32))
    roof_u = np.take_along_axis(per_building, comp, axis=1).reshape(m, h, w, 4)
    roof = _ROOF0 + np.searchsorted(_ROOF_CUMULATIVE, roof_u[..., 0] * 0.9999)
    sun = look.draw(0, 2 * np.pi)
    sun_xy = np.stack([np.cos(sun), np.sin(sun)], axis=-1)  # towards the sun, image x/y
    face = np.argmin(_edge_distances(bldg), axis=-1)
    light = (sun_xy @ _FACE_NORMALS.T)[np.arange(m)[:, None, None], face]
    pitched = roof_u[..., 2] < look.scalar(0.2, 0.8)
    shade = np.where(pitched, 1 + 0.28 * light, 1 + 0.05 * fine)
    mat = np.where(bldg, roof.astype(np.int8), mat)
    bright = np.where(bldg, (0.85 + 0.3 * roof_u[..., 1]) * shade, bright)

    # Shadows: a building of height k px darkens the ground up to k px away from the sun.
    height = np.where(bldg, 1 + (roof_u[..., 3] * max(1, round(3 * z))).astype(int), 0)
    shadow = np.zeros((m, h, w), bool)
    base = np.arange(m)[:, None, None] * (h * w)
    for k in range(1, int(height.max(initial=0)) + 1):
        sy = yy + np.round(k * sun_xy[:, 1]).astype(int)[:, None, None]
        sx = xx + np.round(k * sun_xy[:, 0]).astype(int)[:, None, None]
        inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
        src = base + np.clip(sy, 0, h - 1) * w + np.clip(sx, 0, w - 1)
        shadow |= inside & (height.ravel()[src] >= k)
    shadow &= ~bldg
    bright = np.where(shadow, bright * look.scalar(0.4, 0.6), bright)

    # The camera: exposure and colour cast (folded into the palette), haze, blur, sensor noise.
    haze = look.scalar(0.0, 0.25)[..., None]
    exposure = look.draw(0.8, 1.2)[:, None] * look.draw(0.92, 1.08, 3)
    pal *= exposure[:, None, None, :] * (1 - haze)
    idx = np.arange(m)[:, None, None] * _N_MATERIALS + mat
    a, b = pal[:, :, 0].reshape(-1, 3)[idx], pal[:, :, 1].reshape(-1, 3)[idx]
    rgb = (a + (b - a) * t[..., None]) * bright[..., None]
    rgb += haze * np.array((190, 195, 205), np.float32)
    rgb[shadow] += (0, 2, 8)  # shadows are lit by the blue sky
    blur = look.scalar(0.0, 0.5 * min(1.0, z))[..., None]  # 1 px is a lot in a small image
    rgb = rgb * (1 - blur) + blur * _neighbour_mean(rgb)
    rgb += look.scalar(2, 6)[..., None] * look.normal(3)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def render_satellite(
    layouts: np.ndarray, seed: int = 0, *, stream: int = STREAM_DEFAULT, look: str = "photo"
) -> np.ndarray:
    """The aerial-photo style (n, H, W, 3) uint8 of ``layouts``.

    Textured canopy, roofs of varied colours with sunlit and shaded faces, asphalt with cars,
    sidewalks, water with depth and glints, shadows cast by buildings, per-image light, haze,
    blur and sensor noise. Image ``i`` draws from ``(seed, stream, i)`` only.

    ``look``: ``"photo"`` (roof colours chosen to overlap canopy, water and asphalt on purpose)
    or ``"clear"`` (the same photo with light and terracotta roofs only); see :data:`LOOKS`.
    """
    _check_layouts(layouts)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    roofs = {"photo": _ROOFS, "clear": _CLEAR_ROOFS}.get(look)
    if roofs is None:
        raise ValueError(f"look={look!r} is unknown; known looks: {', '.join(LOOKS)}")
    n, h, w = layouts.shape
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for a, b in _chunks(n, h * w):
        out[a:b] = _satellite_chunk(layouts[a:b], _rngs(seed, stream, a, b, _SATELLITE), roofs)
    return out


# ----------------------------------------------------------------------------- datasets


def unpaired(
    n: int,
    size: int,
    seed: int = 0,
    *,
    cache: bool | None = None,
    zoom: int = 1,
    look: str = "photo",
) -> tuple[np.ndarray, np.ndarray]:
    """Training data: ``n`` satellite images and ``n`` maps of *different* layouts.

    Satellites come from stream :data:`STREAM_TRAIN_SAT`, maps from :data:`STREAM_TRAIN_MAP`:
    no map is the translation of any satellite, as in unsupervised translation. Returns
    ``(sat, map)``, each uint8 (n, size, size, 3). ``cache``: True, False, or None for "from
    128 px" (see the module docstring). ``zoom`` and ``look``: see :func:`paired`.
    """
    _check_args(n, size, seed)
    _check_view(zoom, look)

    def make() -> dict[str, np.ndarray]:
        sat = _view(n, size, seed, STREAM_TRAIN_SAT, zoom, look)[0]
        return {"sat": sat, "map": _view(n, size, seed, STREAM_TRAIN_MAP, zoom, None)[1]}

    key = f"unpaired-n{n}-s{size}-seed{seed}{_view_key(zoom, look)}"
    data = _cached(key, ("sat", "map"), make) if _use_cache(cache, size * zoom) else make()
    return data["sat"], data["map"]


def paired(
    n: int,
    size: int,
    seed: int = 0,
    *,
    split: str = "eval",
    cache: bool | None = None,
    zoom: int = 1,
    look: str = "photo",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` (satellite, map, layout) triples where ``sat[i]`` and ``map[i]`` render ``layout[i]``.

    ``split="eval"`` (default): the held-out stream :data:`STREAM_EVAL`, never used for training.
    ``split="train"``: the true maps of the training satellites of :func:`unpaired` (same stream,
    same pixels), for supervised upper bounds and per-pixel baselines fit with pairs.

    ``zoom``: each image is the central ``size`` x ``size`` crop of a ``size * zoom`` world, so
    roads, blocks and rivers are ``zoom`` times wider in pixels (at 32 px and zoom 1 a minor
    road is one pixel wide). ``look``: the satellite style, one of :data:`LOOKS`.
    """
    _check_args(n, size, seed)
    _check_view(zoom, look)
    streams = {"eval": STREAM_EVAL, "train": STREAM_TRAIN_SAT}
    if split not in streams:
        raise ValueError(f"split must be 'eval' or 'train', got {split!r}")

    def make() -> dict[str, np.ndarray]:
        sat, maps, layouts = _view(n, size, seed, streams[split], zoom, look)
        return {"sat": sat, "map": maps, "layouts": layouts}

    key = f"paired-{split}-n{n}-s{size}-seed{seed}{_view_key(zoom, look)}"
    fields = ("sat", "map", "layouts")
    data = _cached(key, fields, make) if _use_cache(cache, size * zoom) else make()
    return data["sat"], data["map"], data["layouts"]


def _check_view(zoom: int, look: str) -> None:
    if not isinstance(zoom, int | np.integer) or zoom < 1:
        raise ValueError(f"zoom must be an int >= 1, got {zoom!r}")
    if look not in LOOKS:
        raise ValueError(f"look={look!r} is unknown; known looks: {', '.join(LOOKS)}")


def _view_key(zoom: int, look: str) -> str:
    """Cache-key suffix; empty for the original view, whose files keep their names."""
    return "" if (zoom, look) == (1, "photo") else f"-z{zoom}-{look}"


def _view(
    n: int, size: int, seed: int, stream: int, zoom: int, look: str | None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(satellites, maps, layouts)`` of one stream, rendered at ``size * zoom`` and cropped to
    the central ``size`` px (rendering first keeps shadows and outlines right at the crop's
    edge). ``look=None`` skips the satellites."""
    full = size * zoom
    layouts = generate_layouts(n, full, seed, stream=stream)
    lo = (full - size) // 2

    def crop(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[:, lo : lo + size, lo : lo + size])

    sat = None if look is None else crop(render_satellite(layouts, seed, stream=stream, look=look))
    return sat, crop(render_map(layouts)), crop(layouts)


def _use_cache(cache: bool | None, size: int) -> bool:
    """``None`` means: cache where generating costs minutes, not seconds (see module docstring)."""
    return size >= 128 if cache is None else cache


def _cached(
    key: str, fields: tuple[str, ...], make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Load ``<data root>/mapworld/<key>-v<version>.npz``, or make and store it.

    A file that cannot be read (truncated, corrupt, other arrays) is regenerated, never fatal;
    writes go to a temporary file renamed into place, so readers never see half a file and
    concurrent writers just race to the same content. An unwritable root still returns data.
    """
    path = data_root() / "mapworld" / f"{key}-v{GENERATOR_VERSION}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                data = {k: f[k] for k in f.files}
            if set(data) == set(fields):
                return data
        except Exception:  # whatever is wrong with the file, regenerate it below
            pass
    data = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass  # a read-only data root (e.g. CI's shared data): serve without caching
    return data
