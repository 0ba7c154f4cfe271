"""Image files on disk as training domains: listing, decoding, the authors' crops, seeded batches.

The paper's image datasets (pix2pix maps, folder pairs such as GTA -> Cityscapes, CelebA) are
folders of JPEGs far too large to decode up front, so a domain here is a list of
:class:`ImageItem` (a file, and which part of it) decoded one item at a time, in the
``DataLoader``'s workers. The layouts themselves live in :mod:`unitlab.data.paper_datasets`.

Three promises:

* **errors name the file**: a missing file is a ``FileNotFoundError``, a corrupt, truncated or
  oversized one a ``ValueError``, each naming the path and what is wrong with it;
* **the authors' transforms**: training resizes the shorter side to ``load_size``, crops
  ``size`` x ``size`` at random and flips at random (their ``Resize`` -> ``RandomCrop`` ->
  ``RandomHorizontalFlip``); evaluation resizes the same way and crops the centre;
* **randomness from explicit seeds only**: an item is loaded as ``domain[(index, seed)]``, and
  :class:`StepBatches` derives every index and seed from ``(seed, step)``, so a batch is the same
  whichever worker loads it, on however many ranks, and after a resume at any step.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from unitlab.images import uint8_to_tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageItem",
    "load_rgb",
    "image_size",
    "list_images",
    "resize_shorter",
    "train_transform",
    "eval_transform",
    "ImageDomain",
    "DiskData",
    "StepBatches",
    "make_loader",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
"""File endings taken as images (compared case-insensitively)."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ImageItem:
    """One image of a domain: a file, and the region of it that is the image.

    ``box`` is a crop in the file's pixels, in Pillow's order ``(left, upper, right, lower)``
    (right and lower exclusive); ``None`` takes the whole file. A box rather than a
    "left/right half" flag because two layouts need different regions: a pix2pix maps file holds
    satellite | map side by side (one file, two items), and CelebA's aligned faces are cropped
    to their central square, as the authors do, before any resizing.
    """

    path: Path
    box: Box | None = None


# ----------------------------------------------------------------------------- reading files


def _unreadable(path: Path, why: object) -> ValueError:
    return ValueError(f"{path} is not a readable image ({why})")


def _open(path: Path) -> Image.Image:
    """``Image.open`` with every failure turned into an error that names the file.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and refuses above twice that; both are
    refused here (the warning made an error), since a training set has no use for a 90-megapixel
    file and a decompression bomb would exhaust a worker's memory before anything is reported.
    """
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(_bomb(path, exc)) from exc
    except (PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # Pillow raises many types for bad files
        raise _unreadable(path, exc) from exc


def _bomb(path: Path, exc: BaseException) -> str:
    return (
        f"{path} is refused as a possible decompression bomb ({exc}); if the file is trusted, "
        "raise PIL.Image.MAX_IMAGE_PIXELS"
    )


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` read from the file's header, without decoding the pixels."""
    path = Path(path)
    with _open(path) as image:
        return image.size


def load_rgb(item: ImageItem) -> np.ndarray:
    """Decode ``item`` as uint8 (H, W, 3) RGB: the file's ``box`` region, or all of it.

    Grey, palette, CMYK and alpha images are converted to RGB (alpha dropped). Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file for a corrupt or
    truncated one, one that is not an image, a possible decompression bomb, or a box that does
    not fit inside the image.
    """
    path = Path(item.path)
    with _open(path) as image:
        width, height = image.size
        box = item.box
        if box is not None:
            left, upper, right, lower = box
            if not (0 <= left < right <= width and 0 <= upper < lower <= height):
                raise ValueError(
                    f"{path} is {width}x{height} pixels: the region {box} (left, upper, right, "
                    "lower) does not fit inside it"
                )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
                rgb = image.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(_bomb(path, exc)) from exc
        except Exception as exc:  # "image file is truncated", broken data streams, ...
            raise _unreadable(path, exc) from exc
    if box is not None:
        rgb = rgb.crop(box)
    return np.array(rgb, dtype=np.uint8)  # a writable copy, as torch.from_numpy wants


def _natural_key(paths: Sequence[Path]) -> list[Path]:
    if paths and all(p.stem.isdigit() for p in paths):
        return sorted(paths, key=lambda p: (int(p.stem), p.name))
    return sorted(paths, key=lambda p: p.name)


def list_images(folder: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files directly in ``folder``, in a natural order.

    Ordered by the integer stem when every stem is an integer (pix2pix names its files 1.jpg ..
    1096.jpg, which a plain sort would put as 1, 10, 100, ...), otherwise by name. Endings are
    compared case-insensitively; hidden files (a leading ".", e.g. macOS's "._1.jpg" resource
    forks, which end in .jpg but are not images) are skipped. Nothing is opened.

    Raises ``FileNotFoundError`` if ``folder`` does not exist, ``ValueError`` naming it if it
    holds no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    endings = tuple(e.lower() for e in extensions)
    paths = [
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.suffix.lower() in endings and p.is_file()
    ]
    if not paths:
        raise ValueError(f"{folder} holds no images (files ending in {', '.join(endings)})")
    return _natural_key(paths)


# ----------------------------------------------------------------------------- transforms


def resize_shorter(image: np.ndarray, side: int) -> np.ndarray:
    """Resize uint8 (H, W, 3) so that its shorter side is ``side``, keeping the aspect ratio.

    As torchvision's ``Resize(side)`` on a Pillow image (the authors' loader): the longer side
    becomes ``int(side * long / short)`` and the filter is Pillow's bilinear, which widens its
    support when shrinking (antialiased, area-like), so large photos do not alias.
    """
    h, w = image.shape[:2]
    if w <= h:
        new_w, new_h = side, int(side * h / w)
    else:
        new_w, new_h = int(side * w / h), side
    if (new_w, new_h) == (w, h):
        return image
    resized = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR)
    return np.array(resized, dtype=np.uint8)


def _check_sizes(size: int, load_size: int | None) -> int:
    load = load_size or size
    if size < 1 or load < size:
        raise ValueError(f"need 1 <= size <= load_size, got size={size}, load_size={load_size}")
    return load


def train_transform(
    image: np.ndarray, size: int, load_size: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Training view: shorter side to ``load_size`` (0/None: ``size``), a random ``size`` x
    ``size`` crop, a random horizontal flip; the crop's top, its left and the flip are drawn from
    ``rng`` in that order. uint8 (H, W, 3) in, uint8 (size, size, 3) out."""
    x = resize_shorter(image, _check_sizes(size, load_size))
    h, w = x.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    x = x[top : top + size, left : left + size]
    if rng.random() < 0.5:
        x = x[:, ::-1]
    return np.ascontiguousarray(x)


def eval_transform(image: np.ndarray, size: int, load_size: int | None = None) -> np.ndarray:
    """Evaluation view: shorter side to ``load_size`` (0/None: ``size``), the centre ``size`` x
    ``size`` crop, no flip: deterministic, so scores and sample grids are comparable."""
    x = resize_shorter(image, _check_sizes(size, load_size))
    h, w = x.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(x[top : top + size, left : left + size])


# ----------------------------------------------------------------------------- domains


class ImageDomain(torch.utils.data.Dataset):
    """A domain of images on disk, served to the model as float32 (3, size, size) on [-1, 1].

    ``domain[index]`` or ``domain[(index, seed)]``: in training mode (``train=True``) the random
    crop and flip are drawn from ``np.random.default_rng(seed)``, so an item depends on
    ``(index, seed)`` alone and not on which ``DataLoader`` worker loads it, or in which order; a
    bare index uses ``seed = index``. In evaluation mode the seed is ignored (centre crop).
    :meth:`uint8` gives the evaluation view as uint8 (size, size, 3), for scores and grids.

    Files are decoded lazily, one item per call: constructing a domain opens nothing.
    """

    def __init__(
        self,
        items: Sequence[ImageItem],
        size: int,
        load_size: int = 0,
        train: bool = True,
        name: str = "",
    ) -> None:
        self.items = tuple(items)
        self.name = name
        if not self.items:
            raise ValueError(f"the image domain {name or '(unnamed)'!r} has no images")
        self.size = size
        self.load_size = _check_sizes(size, load_size)
        self.train = train

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        mode = "train" if self.train else "eval"
        return (
            f"ImageDomain({self.name!r}, n={len(self)}, size={self.size}, "
            f"load_size={self.load_size}, {mode})"
        )

    def _item(self, index: int) -> ImageItem:
        if not 0 <= index < len(self.items):
            raise IndexError(f"index {index} out of range for {len(self.items)} images")
        return self.items[index]

    def __getitem__(self, key: int | tuple[int, int]) -> Tensor:
        index, seed = key if isinstance(key, tuple) else (key, key)
        index = int(index)
        image = load_rgb(self._item(index))
        if self.train:
            view = train_transform(image, self.size, self.load_size, np.random.default_rng(seed))
        else:
            view = eval_transform(image, self.size, self.load_size)
        return uint8_to_tensor(view)

    def uint8(self, index: int) -> np.ndarray:
        """Item ``index`` as uint8 (size, size, 3) with the evaluation transform (centre crop)."""
        return eval_transform(load_rgb(self._item(int(index))), self.size, self.load_size)


@dataclass(frozen=True)
class DiskData:
    """A translation task read from disk: two training domains and two held-out ones.

    ``paired``: ``test_a[i]`` and ``test_b[i]`` show the same scene (pix2pix maps), so a
    translation of ``test_a[i]`` can be scored against ``test_b[i]`` by pixel accuracy; otherwise
    the test domains are only for looking at translations. ``description`` says which files are
    which, in words.
    """

    train_a: ImageDomain
    train_b: ImageDomain
    test_a: ImageDomain
    test_b: ImageDomain
    paired: bool
    description: str


# ----------------------------------------------------------------------------- batches


def _step_seed(seed: int, step: int) -> int:
    """A 63-bit seed from ``(seed, step)``: hashed, so nearby steps and seeds give unrelated
    streams (``seed + step`` would make seed 1's step 0 seed 0's step 1)."""
    digest = hashlib.blake2b(struct.pack("<qq", seed, step), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StepBatches(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, aug_seed)`` keys for an :class:`ImageDomain`, one per step, forever.

    Step ``k``'s *global* batch is a pure function of ``(seed, k)``: its indices are
    ``torch.randint(n_items, (batch_size,))`` and its augmentation seeds ``torch.randint(2**62,
    (batch_size,))``, both drawn from a generator seeded with a hash of ``(seed, k)``; rank ``r``
    of ``world_size`` takes positions ``[r*b/w, (r+1)*b/w)`` of it. Why stateless:

    * resuming at step ``s`` needs only ``start_step=s`` (no sampler state in checkpoints), and
      the resumed run loads exactly what the uninterrupted one would have;
    * ``w`` ranks together load exactly what one rank loads, so the data does not depend on the
      number of GPUs;
    * images are drawn with replacement, as the authors' iteration-based training does (batch
      size 1, no epochs), so there is no epoch boundary to track either.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if n_items < 1 or batch_size < 1 or start_step < 0:
            raise ValueError(
                f"need n_items >= 1, batch_size >= 1, start_step >= 0, got {n_items}, "
                f"{batch_size}, {start_step}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, {world_size=}")
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by world_size={world_size}: every "
                "rank must load the same number of images"
            )
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This rank's keys of step ``step``."""
        g = torch.Generator().manual_seed(_step_seed(self.seed, step))
        indices = torch.randint(self.n_items, (self.batch_size,), generator=g)
        seeds = torch.randint(2**62, (self.batch_size,), generator=g)
        per_rank = self.batch_size // self.world_size
        lo, hi = self.rank * per_rank, (self.rank + 1) * per_rank
        return list(zip(indices[lo:hi].tolist(), seeds[lo:hi].tolist(), strict=True))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


def make_loader(
    domain: ImageDomain,
    batch_size: int,
    seed: int,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """An endless ``DataLoader`` of (batch_size / world_size, 3, size, size) batches from
    :class:`StepBatches`: the same tensors with any number of ``workers``.

    The loader gets its own generator, because a ``DataLoader`` draws a base seed for its workers
    from the global torch RNG at every ``iter()`` otherwise, which would shift a trainer's own
    random stream depending on how often it restarts its loaders.
    """
    sampler = StepBatches(len(domain), batch_size, seed, start_step, rank, world_size)
    return torch.utils.data.DataLoader(
        domain,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,  # page-locked batches copy to a GPU asynchronously
        generator=torch.Generator().manual_seed(_step_seed(seed, -1)),
    )
