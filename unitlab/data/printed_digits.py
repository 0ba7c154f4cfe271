"""Printed digits: an offline, procedural stand-in for SVHN's house-number crops.

SVHN -> MNIST is the paper's hardest digit task because the source domain is *printed* digits
in many fonts and colours, photographed: blurred, noisy, unevenly lit, with the neighbouring
digits of the house number cut off at the crop's edges. This module makes such images from the
fonts that matplotlib ships (DejaVu, STIX, Computer Modern; upright, bold, italic), so the task
can be run without SVHN's 1.6 GB download. It is a stand-in, not a substitute: numbers measured
on it say how a method copes with font and colour shift, not what it scores on SVHN.

Design choices worth knowing:

* **Glyphs once, transforms batched**: each (font, digit) is rasterised once, antialiased, by
  matplotlib's Agg renderer into a 32x32 atlas cell (~0.2 s, kept for the process); every image
  then samples up to three glyphs (the digit and its left and right neighbours) through one
  affine map each (``grid_sample``, bilinear). The drawn digits are 0.8-1.4x the atlas glyphs,
  a range bilinear sampling handles without aliasing: supersampling looked the same, cost 1.5x.
* **Determinism by image**, as in ``unitlab.data.mapworld``: image ``i`` draws its parameters
  and noise from its own generator, ``SeedSequence(seed, spawn_key=(0, i))``, and every pixel
  operation is per image, so ``printed_digits(100, s)`` is the first 100 of
  ``printed_digits(10_000, s)`` and chunking cannot change a pixel. Different seeds give
  independent sets: use one seed for training and another for testing.
* **Balanced labels**: each block of 10 images holds every digit once, in an order drawn from
  ``SeedSequence(seed, spawn_key=(1, block))``; any prefix is balanced to within one per class.
* **No cache**: 10,000 images take ~3.5 s of CPU time on one core (~0.35 ms each, a third of
  it drawing the per-image parameters in Python), fast enough that a cache would be a second
  source of truth for little gain.

The pixels depend on the fonts and matplotlib's rasteriser: the same seed gives the same
arrays for a given matplotlib version. Bump :data:`GENERATOR_VERSION` whenever this module's
output changes, so that anything keyed on it (results, caches) is not silently mixed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from unitlab.data.digits import DigitData
from unitlab.images import LUMA

GENERATOR_VERSION = 1
SIZE = 32  # output images are SIZE x SIZE RGB, as SVHN's cropped digits

# Font files in matplotlib's mpl-data/fonts/ttf: serif, sans and monospaced, upright and slanted,
# regular and bold, so that stroke width, serifs and the shapes of 1, 4 and 7 all vary.
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmti10.ttf",
)

_ATLAS = 32  # atlas cell, pixels
_GLYPH = 0.625  # a glyph's height as a fraction of its cell (20 of 32 px): room for any width
_BLUR_RADIUS = 3  # taps each side: enough for the largest blur sigma drawn below
_CHUNK = 1024  # images per batch of pixel work; bounds memory (~50 MB), not results

_IMAGE, _LABELS = 0, 1  # the first spawn-key word: which purpose a generator serves


# ----------------------------------------------------------------------------- glyphs


@functools.lru_cache(maxsize=1)
def glyph_atlas() -> tuple[torch.Tensor, np.ndarray]:
    """Every digit of every font: ``(masks, aspect)``.

    ``masks``: float32 (len(FONTS), 10, 32, 32) coverage in [0, 1], each glyph's bounding box
    centred and scaled to 20 px high (digits are all the same height in a font, so sizes match
    within a font). ``aspect``: float64 (len(FONTS), 10), bounding-box width / height, for
    spacing neighbouring digits.
    """
    import matplotlib  # imported here: only generation needs it
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    masks = np.zeros((len(FONTS), 10, _ATLAS, _ATLAS), np.float32)
    aspect = np.zeros((len(FONTS), 10))
    for f, name in enumerate(FONTS):
        path = folder / name
        if not path.is_file():  # a trimmed matplotlib (some distributions unbundle fonts)
            raise FileNotFoundError(
                f"font {path} is missing: printed digits need the fonts that matplotlib's "
                "wheels ship (pip install matplotlib)"
            )
        prop = FontProperties(fname=path)
        for d in range(10):
            outline = TextPath((0, 0), str(d), size=100, prop=prop)
            box = outline.get_extents()
            scale = _GLYPH * _ATLAS / box.height
            to_cell = (
                Affine2D()
                .translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2)
                .scale(scale)
                .translate(_ATLAS / 2, _ATLAS / 2)
            )
            renderer = RendererAgg(_ATLAS, _ATLAS, 72)
            gc = renderer.new_gc()
            gc.set_linewidth(0)  # fill only: an outline would thicken every glyph by a pixel
            renderer.draw_path(gc, outline, to_cell, (1.0, 1.0, 1.0, 1.0))
            masks[f, d] = np.asarray(renderer.buffer_rgba())[..., 3] / 255.0
            aspect[f, d] = box.width / box.height
    return torch.from_numpy(masks), aspect


# ----------------------------------------------------------------------------- parameters


_MIN_CONTRAST = 0.2  # |luma(ink) - luma(background)|: SVHN crops are readable, if barely
_INK_TRIES = 16  # candidates per image; all 16 fail with probability ~5e-5 (then black/white)


def _ink(background: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The first candidate colour that stands out from ``background`` by luma."""
    luma = np.array(LUMA)
    ok = np.abs(candidates @ luma - background @ luma) >= _MIN_CONTRAST
    if ok.any():
        return candidates[ok.argmax()]
    return np.zeros(3) if background @ luma > 0.5 else np.ones(3)


def _draw(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One image's parameters. Ranges are eyeballed against SVHN's train split: digits fill
    half to most of the height, tilt a little, and sit between cut-off neighbours.

    Three calls to ``rng`` (uniforms, colours, normals) instead of one per value: generator
    calls, not arithmetic, are what per-image parameters cost.
    """
    u = iter(rng.random(17))  # as many as the uniform() calls below: one more raises

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * next(u)

    colours = rng.random((1 + _INK_TRIES, 3))
    normals = rng.standard_normal(4 * 4 + 3 * SIZE * SIZE)
    # left and right neighbours of the house number: a digit 0..9, or -1 for none
    neighbours = [(int(uniform(0, 10)), uniform(0, 1) < 0.75) for _ in range(2)]
    return {
        "font": np.array(int(uniform(0, len(FONTS)))),
        "neighbours": np.array([digit if shown else -1 for digit, shown in neighbours]),
        "height": np.array(uniform(0.5, 0.85)),  # digit height / image height
        "stretch": np.exp(uniform(-0.15, 0.15)),  # width factor
        "angle": np.deg2rad(uniform(-12.0, 12.0)),
        "shear": np.array(uniform(-0.2, 0.2)),
        "centre": np.array([uniform(-0.1, 0.1), uniform(-0.1, 0.1)]),  # in half-images: +-1.6 px
        "gap": np.array(uniform(0.05, 0.4)),  # between neighbours, in digit heights
        "background": colours[0],
        "ink": _ink(colours[0], colours[1:]),
        "light": np.array([uniform(0, 2 * np.pi), uniform(0.0, 0.3)]),  # direction, amount
        "stain": np.array(uniform(0.0, 0.08)),  # amplitude of a smooth field over everything
        "blur": np.array(uniform(0.2, 1.1)),  # Gaussian sigma, output pixels
        "noise": np.array(uniform(0.0, 0.04)),
        "stain_field": normals[:16].reshape(4, 4),
        "grain": normals[16:].reshape(3, SIZE, SIZE),
    }


def _stack(params: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Per-image parameters -> one tensor per name, images first."""
    out = {}
    for k in params[0]:
        values = np.stack([p[k] for p in params])
        out[k] = torch.from_numpy(
            values.astype(np.int64 if k in ("font", "neighbours") else np.float32)
        )
    return out


def _labels(n: int, seed: int) -> np.ndarray:
    """Block ``b`` of 10 images holds each digit once, shuffled by its own generator."""
    blocks = [
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_LABELS, b))).permutation(10)
        for b in range(-(-n // 10))
    ]
    return np.concatenate(blocks)[:n].astype(np.int64) if blocks else np.zeros(0, np.int64)


# ----------------------------------------------------------------------------- rendering


def _mosaic() -> torch.Tensor:
    """The atlas as one image (1, 1, fonts * 32, 10 * 32): font f, digit d in cell (f, d).

    One input for ``grid_sample`` instead of a copy of each image's cells (the gather cost as
    much as the sampling). Glyphs leave >= 6 px of empty margin in their cells, so a sample
    clamped into its own cell (see ``_glyph_coverage``) never picks up a neighbouring glyph.
    """
    masks, _ = glyph_atlas()
    return rearrange(masks, "font digit h w -> 1 1 (font h) (digit w)")


def _glyph_coverage(p: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Ink coverage (B, 1, SIZE, SIZE) in [0, 1]: the digit and its neighbours on one line.

    A glyph's cell coordinates q map to image coordinates u (both normalised to [-1, 1]) by
    ``u = centre + L (s D q + (offset, 0))``: ``s D`` scales the 20 px atlas glyph to the drawn
    height and width, ``offset`` places it along the line, ``L`` tilts and shears the line.
    Sampling needs the inverse, from output pixels back to the cell, then to the mosaic; the
    grid is built by broadcasting, several times faster than ``affine_grid``'s batched matmul.
    """
    masks, aspect = glyph_atlas()
    fonts = masks.shape[0]
    b = len(labels)
    font = p["font"]
    digits = torch.stack([labels, p["neighbours"][:, 0], p["neighbours"][:, 1]], 1)  # (B, 3)
    present = (digits >= 0).float()
    digits = digits.clamp(min=0)
    height, stretch = p["height"], p["stretch"]
    widths = (
        2
        * height[:, None]
        * stretch[:, None]
        * torch.from_numpy(aspect).float()[font[:, None], digits]
    )  # (B, 3), in normalised units
    gap = 2 * height * p["gap"]
    offset = torch.stack(
        [
            torch.zeros(b),
            -(widths[:, 0] / 2 + gap + widths[:, 1] / 2),
            widths[:, 0] / 2 + gap + widths[:, 2] / 2,
        ],
        1,
    )
    cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
    rotate = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shear = torch.eye(2).repeat(b, 1, 1)
    shear[:, 0, 1] = p["shear"]
    line_inv = torch.linalg.inv(rotate @ shear)  # (B, 2, 2)
    scale = height / _GLYPH
    glyph_inv = torch.diag_embed(torch.stack([1 / (scale * stretch), 1 / scale], -1))
    a = (glyph_inv @ line_inv).view(b, 2, 2, 1, 1, 1)  # image -> cell, linear part
    local = (line_inv @ p["centre"][:, :, None])[:, None, :, 0]  # (B, 1, 2)
    shift = local + torch.stack([offset, torch.zeros_like(offset)], -1)  # (B, 3, 2)
    t = -(glyph_inv[:, None] @ shift[..., None])  # (B, 3, 2, 1): image -> cell, shift

    axis = (torch.arange(SIZE, dtype=torch.float32) * 2 + 1) / SIZE - 1  # pixel centres
    x, y = axis.view(1, 1, 1, SIZE), axis.view(1, 1, SIZE, 1)
    edge = 1 - 1 / _ATLAS  # the centre of a cell's border pixel: empty, so clamping is safe
    cells = (digits.float(), font[:, None].float().expand(-1, 3))
    grid = torch.empty(b, 3, SIZE, SIZE, 2)
    for k, (cell, count) in enumerate(zip(cells, (10, fonts), strict=True)):
        # Cell -> mosaic is affine too, m = (q + 2 cell + 1) / count - 1: folded into the map
        # and the clamp bounds, so each coordinate costs two full-size passes.
        to_mosaic = (2 * cell[..., None, None] + 1) / count - 1  # (B, 3, 1, 1)
        ak, tk = a[:, k] / count, t[:, :, k, :, None] / count + to_mosaic
        q = torch.add(ak[:, 1] * y + tk, ak[:, 0] * x, out=grid[..., k])  # small part first
        q.clamp_(to_mosaic - edge / count, to_mosaic + edge / count)
    grid = grid.view(1, 3 * b * SIZE, SIZE, 2)
    ink = F.grid_sample(_mosaic(), grid, mode="bilinear", align_corners=False)
    return (ink.view(b, 3, SIZE, SIZE) * present[:, :, None, None]).amax(1, keepdim=True)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a sigma per image, edges replicated.

    Written as a weighted sum of shifted copies rather than a convolution: exactly the same
    arithmetic whatever the batch, so chunking never changes a pixel.
    """
    r = _BLUR_RADIUS
    taps = torch.arange(-r, r + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True))[:, :, None, None, None]  # (B, taps, 1,1,1)
    for dim, pad in ((-1, (r, r, 0, 0)), (-2, (0, 0, r, r))):
        padded = F.pad(x, pad, mode="replicate")
        n = x.shape[dim]
        x = kernel[:, 0] * padded.narrow(dim, 0, n)
        for i in range(1, 2 * r + 1):
            x.addcmul_(kernel[:, i], padded.narrow(dim, i, n))
    return x


def _render(p: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """A chunk of images, uint8 (B, SIZE, SIZE, 3)."""
    b = len(labels)
    coverage = _glyph_coverage(p, labels)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    angle, amount = p["light"][:, 0, None, None], p["light"][:, 1, None, None]
    light = 1 + amount * (torch.cos(angle) * xs + torch.sin(angle) * ys)  # uneven lighting
    stain = F.interpolate(p["stain_field"][:, None], size=(SIZE, SIZE), mode="bicubic")
    x = p["background"].view(b, 3, 1, 1) * (1 - coverage) + p["ink"].view(b, 3, 1, 1) * coverage
    x = x * light[:, None] + p["stain"].view(b, 1, 1, 1) * stain
    x = _blur(x, p["blur"]) + p["noise"].view(b, 1, 1, 1) * p["grain"]
    x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


# ----------------------------------------------------------------------------- the dataset


def printed_digits(n: int, seed: int = 0) -> DigitData:
    """``n`` printed colour digits, uint8 (n, 32, 32, 3), with balanced labels 0..9.

    Deterministic in ``(n, seed)``, and the first ``k`` images of any ``n >= k`` are the same
    (see the module docstring). ~0.35 ms of one core per image.
    """
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    labels = torch.from_numpy(_labels(n, seed))
    images = torch.empty((n, SIZE, SIZE, 3), dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        rngs = (
            np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_IMAGE, i)))
            for i in range(start, stop)
        )
        images[start:stop] = _render(_stack([_draw(r) for r in rngs]), labels[start:stop])
    return DigitData(images, labels)
