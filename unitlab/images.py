"""Image conversions at the edges of the package: files and uint8 arrays in, model tensors out.

Two conventions, one seam between them:

* **storage**: uint8 numpy, channels last, (N, H, W, C) on 0..255 (datasets, metrics, files);
* **model**: float tensors, channels first, (N, C, H, W) on [-1, 1] (the generators end in tanh).

Everything converts through :func:`uint8_to_tensor` / :func:`tensor_to_uint8`, so the mapping
(``x / 127.5 - 1``, and back with rounding and clamping) is written once and round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = [
    "uint8_to_tensor",
    "tensor_to_uint8",
    "ImageArrayDataset",
    "grid",
    "save_grid",
    "save_image",
    "load_image",
    "LUMA",
]

LUMA = (0.299, 0.587, 0.114)
"""Grey from RGB (ITU-R BT.601 luma): the weights sum to 1, so any range maps onto itself."""


def uint8_to_tensor(x: np.ndarray) -> Tensor:
    """(N, H, W, C) or (H, W, C) uint8 -> (N, C, H, W) or (C, H, W) float32 on [-1, 1]."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim not in (3, 4):
        got = (getattr(x, "dtype", type(x).__name__), getattr(x, "shape", None))
        raise ValueError(f"expected a uint8 array (N, H, W, C) or (H, W, C), got {got}")
    t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3).contiguous()


def tensor_to_uint8(t: Tensor) -> np.ndarray:
    """(N, C, H, W) or (C, H, W) on [-1, 1] -> (N, H, W, C) or (H, W, C) uint8, clamped, rounded."""
    if not isinstance(t, Tensor) or t.ndim not in (3, 4):
        got = (type(t).__name__, tuple(getattr(t, "shape", ())))
        raise ValueError(f"expected a tensor (N, C, H, W) or (C, H, W), got {got}")
    x = ((t.detach().float().cpu() + 1.0) * 127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).movedim(-3, -1).numpy()


class ImageArrayDataset(torch.utils.data.Dataset):
    """uint8 images (N, H, W, C) served as float tensors (C, H, W) on [-1, 1].

    Keeps the uint8 array (4x smaller than floats) and converts one item at a time.
    """

    def __init__(self, images: np.ndarray) -> None:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            got = (getattr(images, "dtype", None), getattr(images, "shape", None))
            raise ValueError(f"images must be a uint8 array (N, H, W, C), got {got}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return uint8_to_tensor(self.images[i])


def _as_uint8_batch(row: Tensor | np.ndarray) -> np.ndarray:
    """A row of the grid as uint8 (N, H, W, 3): tensors on [-1, 1] or uint8 arrays, grey or RGB."""
    if isinstance(row, Tensor):
        x = tensor_to_uint8(row if row.ndim == 4 else row.unsqueeze(0))
    elif isinstance(row, np.ndarray) and row.dtype == np.uint8:
        x = row if row.ndim == 4 else row[None]
        if x.ndim != 4:
            raise ValueError(f"a uint8 row must be (N, H, W, C) or (H, W, C), got {row.shape}")
    else:
        raise ValueError(
            f"grid rows must be tensors on [-1, 1] or uint8 arrays, got "
            f"{type(row).__name__} {getattr(row, 'dtype', '')}"
        )
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def grid(rows: Sequence[Tensor | np.ndarray], pad: int = 2) -> np.ndarray:
    """Tile ``rows`` (each a batch, shown left to right) into one uint8 (H, W, 3) image.

    Rows may differ in size and channels (grey digits next to colour ones): each cell is as
    large as the largest image; padding is white, so dark images stay readable.
    """
    if not rows:
        raise ValueError("grid needs at least one row")
    batches = [_as_uint8_batch(r) for r in rows]
    ch = max(b.shape[1] for b in batches) + pad
    cw = max(b.shape[2] for b in batches) + pad
    cols = max(len(b) for b in batches)
    out = np.full((len(batches) * ch + pad, cols * cw + pad, 3), 255, dtype=np.uint8)
    for r, batch in enumerate(batches):
        for c, img in enumerate(batch):
            y, x = pad + r * ch, pad + c * cw
            out[y : y + img.shape[0], x : x + img.shape[1]] = img
    return out


def save_grid(rows: Sequence[Tensor | np.ndarray], path: str | Path, pad: int = 2) -> np.ndarray:
    """Write :func:`grid` of ``rows`` as a PNG (e.g. input | recon | translation | cycle, one row
    each); parent folders are created. Returns the image written."""
    image = grid(rows, pad)
    _write_png(image, path)
    return image


def save_image(image: Tensor | np.ndarray, path: str | Path) -> None:
    """Write one image as PNG: a tensor (C, H, W) on [-1, 1] or a uint8 array (H, W, C)."""
    if isinstance(image, Tensor):
        if image.ndim != 3:
            raise ValueError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
        image = tensor_to_uint8(image)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("expected a tensor (C, H, W) or a uint8 array (H, W, C)")
    _write_png(image[..., 0] if image.shape[-1] == 1 else image, path)


def _write_png(image: np.ndarray, path: str | Path) -> None:
    import matplotlib.image  # imported here: only writers need matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"cmap": "gray", "vmin": 0, "vmax": 255} if image.ndim == 2 else {}
    matplotlib.image.imsave(path, image, format="png", **kwargs)


def default_max_pixels(size: int) -> int:
    """The largest image :func:`load_image` decodes for a model of ``size`` px: 128 times the
    model's side on each side (a 4096 x 4096 photo for a 32 px model), far beyond any useful
    input, far below what exhausts memory (a 20000 x 20000 PNG needs ~7 GB decoded)."""
    return (128 * size) ** 2


def image_pixels(path: str | Path) -> int:
    """Width x height from the file's header, without decoding the pixels."""
    from PIL import Image  # a matplotlib dependency

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as exc:  # Pillow raises many types for bad files
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return width * height


def load_image(
    path: str | Path, size: int, channels: int = 3, max_pixels: int | None = None
) -> Tensor:
    """Read a PNG or JPEG as a model input (channels, size, size) on [-1, 1].

    The shorter side is resized to ``size`` (antialiased bilinear, i.e. area-like when
    shrinking) and the centre cropped, so the aspect ratio is kept. Grey <-> RGB is converted to
    ``channels`` (luma, ITU-R BT.601); alpha is dropped. An unreadable file raises ValueError
    naming it; a missing one FileNotFoundError; one of more than ``max_pixels`` (default
    :func:`default_max_pixels`) a ValueError read from its header, before any decoding.
    """
    import matplotlib.image  # JPEG goes through Pillow, a matplotlib dependency

    path = Path(path)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    limit = default_max_pixels(size) if max_pixels is None else max_pixels
    pixels = image_pixels(path)
    if pixels > limit:
        raise ValueError(
            f"image {path} has {pixels:,} pixels, more than the limit of {limit:,} "
            f"(raise it with --max-pixels)"
        )
    try:
        x = np.asarray(matplotlib.image.imread(path))
    except Exception as exc:  # Pillow and matplotlib raise many types for bad files
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255
    elif x.dtype == np.uint16:
        x = x.astype(np.float32) / 65535
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 2, 3, 4) or min(x.shape[:2]) < 1:
        raise ValueError(f"cannot read image {path}: unexpected array shape {x.shape}")
    x = x[..., :3] if x.shape[-1] in (3, 4) else x[..., :1]  # drop alpha
    if channels == 1 and x.shape[-1] == 3:
        x = x @ np.array(LUMA, np.float32)[:, None]
    elif channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    t = rearrange(torch.from_numpy(np.ascontiguousarray(x)), "h w c -> 1 c h w")
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    t = F.interpolate(t, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    t = t[0, :, top : top + size, left : left + size]
    return (t * 2 - 1).clamp_(-1, 1)
