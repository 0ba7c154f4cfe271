"""Interactive explorers for the notebooks: plain functions that return arrays, thin widgets on top.

The logic (principal directions of a batch of codes, editing a code in a region of latent cells,
decoding it into an image) lives in functions that take and return tensors / uint8 arrays, so
tests and static figures use it without a browser. :class:`LatentExplorer` only wires ipywidgets
sliders to :func:`decode_latent`; it keeps its last rendered image in ``.image`` (``Output``
widgets capture nothing outside a kernel), and setting a slider's ``value`` from Python
re-renders it.

A *decoder* is anything that maps codes ``(N, C, h, w)`` to images on [-1, 1]: an object with a
``decode`` method (:class:`unitlab.vae.VAE`) or a module called directly (a UNIT generator such as
``model.gen_b``, which turns the same explorer into a live translator).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
import numpy as np
import torch
from einops import rearrange, repeat
from torch import Tensor

from .course import notebook_quick  # noqa: F401  (re-exported: the notebooks' quick switch)
from .images import tensor_to_uint8

# A CSS class on every explorer, so a browser test (or a user's stylesheet) can find them.
EXPLORER_CLASS = "unitlab-explorer"

__all__ = [
    "EXPLORER_CLASS",
    "Directions",
    "pca_directions",
    "label_directions",
    "region_mask",
    "edit_code",
    "decode_latent",
    "traversal",
    "png_bytes",
    "png_image",
    "outline",
    "grid_rows",
    "labelled_rows",
    "show_rows",
    "stack_images",
    "slider_layout",
    "StaticFallback",
    "LatentExplorer",
    "latent_explorer",
    "notebook_quick",
]


@dataclass
class Directions:
    """Principal directions of a set of codes.

    ``mean``: the mean code (``(C, h, w)``, or ``(C, 1, 1)`` for per-cell directions);
    ``vectors``: ``(k, *mean.shape)`` unit directions scaled by the standard deviation of the
    codes along them (a coefficient of 1 is one standard deviation); ``explained``: the fraction
    of the variance along each direction.
    """

    mean: Tensor
    vectors: Tensor
    explained: Tensor

    def subset(self, indices: Sequence[int]) -> Directions:
        """Only the directions at ``indices``, in that order."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        return Directions(self.mean, self.vectors[idx], self.explained[idx])


def pca_directions(codes: Tensor, k: int = 4, over: str = "cell") -> Directions:
    """The top ``k`` principal directions of spatial codes ``(N, C, h, w)`` (via an SVD).

    ``over="image"``: each whole code is one sample (directions ``(k, C, h, w)``).
    ``over="cell"``: each of the ``h * w`` positions of each code is one ``C``-vector sample
    (directions ``(k, C, 1, 1)``: what a latent *cell* varies in, to be applied where a mask
    says, see :func:`decode_latent`).
    """
    if codes.ndim != 4 or len(codes) < 2:
        raise ValueError(f"need at least two codes (N, C, h, w), got shape {tuple(codes.shape)}")
    if over == "image":
        flat, shape = codes.detach().flatten(1), tuple(codes.shape[1:])
    elif over == "cell":
        flat, shape = codes.detach().movedim(1, -1).flatten(0, 2), (codes.shape[1], 1, 1)
    else:
        raise ValueError(f"over={over!r} must be 'image' or 'cell'")
    if not 1 <= k <= min(flat.shape):
        raise ValueError(f"k={k} must lie in 1..{min(flat.shape)}")
    flat = flat.double()
    mean = flat.mean(0)
    _, s, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    var = s**2 / (len(flat) - 1)
    vectors = (vh[:k] * var[:k, None].sqrt()).float().reshape(k, *shape)
    return Directions(mean.float().reshape(shape), vectors, (var[:k] / var.sum()).float())


def label_directions(
    codes: Tensor, labels: np.ndarray, n_classes: int, min_fraction: float = 0.5
) -> Directions:
    """Per-cell directions that "paint" a class: mean code of its cells minus the mean cell code.

    ``labels``: uint8 ``(N, H, W)`` class maps of the images the ``codes`` ``(N, C, h, w)`` came
    from (e.g. the map world's layouts); a latent cell covers ``H / h`` pixels a side and counts
    for class ``c`` where at least ``min_fraction`` of its pixels are ``c``. Returns vectors
    ``(n_classes, C, 1, 1)`` (zero for a class no cell has) and, as ``explained``, the fraction
    of cells of each class. Adding ``vectors[c]`` to a region moves its cells from the average
    cell towards the average ``c`` cell.
    """
    n, c, h, wd = codes.shape
    labels = np.asarray(labels)
    if labels.shape[0] != n or labels.ndim != 3 or labels.shape[1] % h or labels.shape[2] % wd:
        raise ValueError(
            f"labels {labels.shape} must be (N, H, W) with H, W multiples of the code's {h}x{wd}"
        )
    fh, fw = labels.shape[1] // h, labels.shape[2] // wd
    pixels = torch.from_numpy(labels.astype(np.int64))
    cells = rearrange(pixels, "n (h fh) (w fw) -> (n h w) (fh fw)", fh=fh, fw=fw)
    fraction = torch.nn.functional.one_hot(cells, n_classes).float().mean(1)  # (cells, classes)
    vectors = rearrange(codes.detach(), "n c h w -> (n h w) c").float()
    mean = vectors.mean(0)
    out = torch.zeros(n_classes, c)
    for k in range(n_classes):
        chosen = fraction[:, k] >= min_fraction
        if chosen.any():
            out[k] = vectors[chosen].mean(0) - mean
    share = (fraction >= min_fraction).float().mean(0)
    return Directions(mean.reshape(c, 1, 1), out.reshape(n_classes, c, 1, 1), share)


def region_mask(size: int | tuple[int, int], rows: Sequence[int], cols: Sequence[int]) -> Tensor:
    """A ``(h, w)`` float mask, 1 on latent rows ``rows[0]..rows[1]-1`` and columns likewise."""
    h, wd = (size, size) if isinstance(size, int) else size
    (r0, r1), (c0, c1) = rows, cols
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= wd):
        raise ValueError(f"region rows {tuple(rows)}, cols {tuple(cols)} must lie inside {h}x{wd}")
    mask = torch.zeros(h, wd)
    mask[r0:r1, c0:c1] = 1.0
    return mask


def _decoder(model: Any):
    return model.decode if hasattr(model, "decode") else model


@torch.no_grad()
def edit_code(
    base_code: Tensor,
    directions: Tensor,
    coefficients: Sequence[float],
    mask: Tensor | None = None,
) -> Tensor:
    """``base_code + mask * sum_i coefficients[i] * directions[i]`` (shape of ``base_code``).

    ``directions`` ``(k, ...)`` broadcast against ``base_code`` ``(C, h, w)``; ``mask`` ``(h, w)``
    limits the edit to some latent cells (None: everywhere).
    """
    coefficients = torch.as_tensor(np.asarray(coefficients, dtype=np.float32))
    if directions.shape[0] != len(coefficients):
        raise ValueError(f"{len(coefficients)} coefficients for {directions.shape[0]} directions")
    delta = torch.tensordot(coefficients, directions.float(), dims=1)
    if mask is not None:
        delta = delta * mask
    try:
        return base_code + delta.expand_as(base_code)
    except RuntimeError:
        raise ValueError(
            f"directions {tuple(directions.shape)} (mask "
            f"{None if mask is None else tuple(mask.shape)}) do not fit the base code "
            f"{tuple(base_code.shape)}"
        ) from None


@torch.no_grad()
def decode_latent(
    model: Any,
    base_code: Tensor,
    directions: Tensor,
    coefficients: Sequence[float],
    mask: Tensor | None = None,
) -> np.ndarray:
    """Decode :func:`edit_code` of the arguments into one uint8 image ``(H, W, C)``."""
    z = edit_code(base_code, directions, coefficients, mask)
    return tensor_to_uint8(_decoder(model)(z[None]))[0]


def traversal(
    model: Any,
    base_code: Tensor,
    directions: Tensor,
    values: Sequence[float],
    mask: Tensor | None = None,
) -> list[np.ndarray]:
    """One row per direction: ``base_code`` moved along it by each of ``values``, decoded.

    Returns rows of uint8 ``(len(values), H, W, C)`` for :func:`unitlab.images.grid`.
    """
    k = directions.shape[0]
    rows = []
    for i in range(k):
        images = []
        for value in values:
            coeffs = np.zeros(k, dtype=np.float32)
            coeffs[i] = value
            images.append(decode_latent(model, base_code, directions, coeffs, mask))
        rows.append(np.stack(images))
    return rows


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 ``(H, W, C)`` image as PNG bytes, enlarged ``scale`` times with sharp pixels."""
    from PIL import Image  # Pillow comes with matplotlib

    image = repeat(image, "h w c -> (h sh) (w sw) c", sh=scale, sw=scale)
    if image.shape[-1] == 1:
        image = image[..., 0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def png_image(data: bytes) -> np.ndarray:
    """PNG bytes (as :func:`png_bytes` writes them) back into a uint8 ``(H, W, 3)`` image."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def outline(image: np.ndarray, mask: Tensor, scale: int, colour=(230, 30, 30)) -> np.ndarray:
    """``image`` enlarged ``scale`` times with a 1-pixel box around the masked latent cells."""
    big = repeat(image, "h w c -> (h sh) (w sw) c", sh=scale, sw=scale)
    if big.shape[-1] == 1:
        big = repeat(big, "h w 1 -> h w 3")
    rows, cols = np.nonzero(mask.numpy() > 0)
    if len(rows) == 0:
        return big
    cell = image.shape[0] // mask.shape[0] * scale
    r0, r1 = rows.min() * cell, (rows.max() + 1) * cell - 1
    c0, c1 = cols.min() * cell, (cols.max() + 1) * cell - 1
    big = big.copy()
    big[[r0, r1], c0 : c1 + 1] = colour
    big[r0 : r1 + 1, [c0, c1]] = colour
    return big


def grid_rows(image: np.ndarray, n_rows: int, pad: int = 2) -> list[np.ndarray]:
    """Split an :func:`unitlab.images.grid` image of ``n_rows`` rows back into its row strips.

    Each strip keeps the white padding around its images, so strips stacked again look like
    the grid (a run's saved sample grids are PNGs: this is how an explorer labels their rows).
    """
    height = image.shape[0]
    cell = (height - pad) // max(n_rows, 1)
    if n_rows < 1 or cell <= pad or cell * n_rows + pad != height:
        raise ValueError(f"an image {height} px tall is not a grid of {n_rows} rows (pad {pad})")
    return [image[r * cell : (r + 1) * cell + pad] for r in range(n_rows)]


def labelled_rows(
    rows: Sequence[np.ndarray], labels: Sequence[str], scale: int = 2, title: str | None = None
) -> w.VBox:
    """Images one above the other, each with its label on the left (a two-column grid).

    The labels are ``HTML`` widgets in ``box.labels`` (in order), the images ``Image`` widgets
    in ``box.images``; :func:`show_rows` draws new rows (and labels) into the same widgets.
    """
    if len(rows) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    box = w.VBox()
    box.labels = [w.HTML(layout=w.Layout(margin="0 8px 0 0")) for _ in labels]
    box.images = [w.Image(format="png") for _ in rows]
    show_rows(box, rows, scale, labels)
    cells = [item for pair in zip(box.labels, box.images, strict=True) for item in pair]
    table = w.GridBox(
        cells,
        layout=w.Layout(grid_template_columns="max-content max-content", align_items="center"),
    )
    box.children = ([w.HTML(f"<b>{title}</b>")] if title else []) + [table]
    return box


def show_rows(
    box: w.VBox, rows: Sequence[np.ndarray], scale: int, labels: Sequence[str] | None = None
) -> None:
    """Draw ``rows`` (and ``labels``, where given) into a :func:`labelled_rows` box, reusing its
    widgets: a widget made per redraw would stay alive in the kernel and the saved notebook."""
    for view, row in zip(box.images, rows, strict=True):
        view.value = png_bytes(row, scale)
    for label, text in zip(box.labels, labels or [], strict=False):
        label.value = f"<span style='white-space: nowrap'>{text}</span>"


def stack_images(images: Sequence[np.ndarray], axis: int, gap: int = 0) -> np.ndarray:
    """uint8 images side by side (``axis=1``) or one above the other (``axis=0``) on white,
    each followed by ``gap`` white pixels."""
    other = 1 - axis
    size = max(image.shape[other] for image in images)
    padded = []
    for image in images:
        pad = [(0, 0), (0, 0), (0, 0)]
        pad[other] = (0, size - image.shape[other])
        pad[axis] = (0, gap)
        padded.append(np.pad(image, pad, constant_values=255))
    return np.concatenate(padded, axis=axis)


def slider_layout(width: str = "480px") -> dict[str, Any]:
    """Keyword arguments that give a slider a usable track in JupyterLab's default layout.

    A slider left at ipywidgets' default width keeps only ~90 px of track once a wide
    description takes its share: too short to pick one value of 0-999 by dragging.
    """
    return {"layout": w.Layout(width=width), "style": {"description_width": "120px"}}


class StaticFallback:
    """Mixin for explorer widgets: the cell's output also carries a PNG of the current state.

    A notebook opened without a running kernel (an untrusted notebook in JupyterLab, a page on
    GitHub) cannot draw a widget and shows the best *safe* MIME type of the output instead:
    without this it is the repr text ``VBox(children=...)``; with it, a picture of what the
    explorer showed when the cell ran. In a live kernel JupyterLab prefers the widget view.
    Subclasses define :meth:`snapshot` (a uint8 ``(H, W, 3)`` image).
    """

    def snapshot(self) -> np.ndarray:
        raise NotImplementedError

    def snapshot_png(self) -> bytes:
        """:meth:`snapshot` as PNG bytes."""
        return png_bytes(self.snapshot())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        data = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if data is not None:
            data["image/png"] = base64.b64encode(self.snapshot_png()).decode("ascii")
        return data


class LatentExplorer(StaticFallback, w.HBox):
    """Sliders over a few latent directions, decoded live into images (an ipywidgets box).

    ``model`` is one decoder, or a dict ``{label: decoder}`` to decode the same edited code with
    several (e.g. both generators of UNIT). Attributes that tests and notebooks use:

    * ``sliders``: one ``FloatSlider`` per direction, in standard deviations;
    * ``base``: an ``IntSlider`` choosing which of ``codes`` to start from;
    * ``rows``, ``cols``: ``IntRangeSlider`` s choosing the latent cells the edit applies to;
    * ``image``: the last decoded uint8 image (of the first decoder); ``rendered``: all of them;
    * ``coefficients``, :meth:`mask`, :meth:`base_code`: the current state.
    """

    def __init__(
        self,
        model: Any,
        codes: Tensor,
        directions: Tensor,
        images: np.ndarray | None = None,
        limit: float = 4.0,
        scale: int = 6,
        labels: Sequence[str] | None = None,
        region: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        self.add_class(EXPLORER_CLASS)
        self.decoders = dict(model) if isinstance(model, dict) else {"decoded": model}
        self.codes, self.directions = codes.detach(), directions.detach()
        self.images, self.scale = images, scale
        k, (h, wd) = len(directions), codes.shape[-2:]
        labels = list(labels) if labels is not None else [f"PC {i + 1}" for i in range(k)]
        style = {"description_width": "80px"}
        self.sliders = [
            w.FloatSlider(
                value=0.0, min=-limit, max=limit, step=0.1, description=label, style=style
            )
            for label in labels
        ]
        self.base = w.IntSlider(
            value=0, min=0, max=len(codes) - 1, description="start code", style=style
        )
        (r0, r1), (c0, c1) = region if region is not None else ((0, h), (0, wd))
        self.rows = w.IntRangeSlider(
            value=(r0, r1), min=0, max=h, description="latent rows", style=style
        )
        self.cols = w.IntRangeSlider(
            value=(c0, c1), min=0, max=wd, description="latent cols", style=style
        )
        self.reset = w.Button(description="reset sliders")
        self.reset.on_click(lambda _: self.reset_sliders())
        self.views = {name: w.Image(format="png") for name in self.decoders}
        self.original = w.Image(format="png")
        for s in (*self.sliders, self.base, self.rows, self.cols):
            s.observe(self._changed, names="value")
        panels = [self._captioned(view, name) for name, view in self.views.items()]
        if images is not None:
            panels.insert(0, self._captioned(self.original, "start image + region"))
        controls = w.VBox([self.base, self.rows, self.cols, *self.sliders, self.reset])
        self.children = (controls, *panels)
        self.image: np.ndarray = np.zeros(0, dtype=np.uint8)
        self.rendered: dict[str, np.ndarray] = {}
        self.render()

    @staticmethod
    def _captioned(image: w.Image, text: str) -> w.VBox:
        return w.VBox([w.HTML(f"<b>{text}</b>"), image])

    @property
    def coefficients(self) -> list[float]:
        return [s.value for s in self.sliders]

    def base_code(self) -> Tensor:
        return self.codes[self.base.value]

    def mask(self) -> Tensor:
        """The ``(h, w)`` mask of the latent cells chosen by ``rows`` and ``cols``."""
        h, wd = self.codes.shape[-2:]
        rows, cols = self.rows.value, self.cols.value
        if rows[0] == rows[1] or cols[0] == cols[1]:  # an empty range: edit nothing
            return torch.zeros(h, wd)
        return region_mask((h, wd), rows, cols)

    def render(self) -> np.ndarray:
        """Decode the current state with every decoder, show it, store and return the first."""
        args = (self.base_code(), self.directions, self.coefficients, self.mask())
        for name, decoder in self.decoders.items():
            self.rendered[name] = decode_latent(decoder, *args)
            self.views[name].value = png_bytes(self.rendered[name], self.scale)
        self.image = next(iter(self.rendered.values()))
        if self.images is not None:
            start = outline(self.images[self.base.value], self.mask(), self.scale)
            self.original.value = png_bytes(start)
        return self.image

    def snapshot(self) -> np.ndarray:
        """The panels as drawn now, side by side (the static fallback of the cell's output)."""
        panels = [png_image(view.value) for view in self.views.values()]
        if self.images is not None:
            panels.insert(0, png_image(self.original.value))
        return stack_images(panels, axis=1, gap=4)

    def reset_sliders(self) -> None:
        """All direction sliders back to 0 (renders once per slider that moves)."""
        for s in self.sliders:
            s.value = 0.0

    def _changed(self, change: dict) -> None:
        self.render()


def latent_explorer(
    model: Any,
    codes: Tensor,
    k: int = 4,
    images: np.ndarray | None = None,
    over: str = "cell",
    directions: Directions | None = None,
    **kwargs: Any,
) -> LatentExplorer:
    """An explorer over ``directions``, by default the top ``k`` principal ones of ``codes``.

    ``images``: the uint8 images the codes came from, shown with the edited region outlined.
    The :class:`Directions` used are kept as ``explorer.basis``. Other arguments go to
    :class:`LatentExplorer` (e.g. ``region=((2, 6), (2, 6))``, ``labels=[...]``).
    """
    if directions is None:
        directions = pca_directions(codes, k, over)
    explorer = LatentExplorer(model, codes, directions.vectors, images=images, **kwargs)
    explorer.basis = directions
    return explorer
