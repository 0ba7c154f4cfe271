"""Tiny datasets written in the real layouts of the paper's image datasets.

Public so that a user can try :mod:`unitlab.data.paper_datasets` and the whole pipeline without
downloading gigabytes, and so that tests and the tutorial notebook exercise the very code paths
a real download takes (same folders, file names, formats and annotation files). Every writer is
deterministic in its ``seed``, takes a fraction of a second, and returns the root it wrote.

The maps sample is a *learnable* toy: each file's right half is a flat map (land, white and grey
roads, a blue water patch) and its left half a "satellite" of the same layout in darker,
textured colours with noise, so a short run can be scored by pixel accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from unitlab.data.paper_datasets import CELEBA_ATTRIBUTES

__all__ = ["write_maps_sample", "write_folder_pairs_sample", "write_celeba_sample"]

JPEG_QUALITY = 95  # near-lossless: the map colours stay within a few levels of the palette

LAND, WHITE_ROAD, GREY_ROAD, WATER = range(4)
# Flat web-map colours, every pair > 16 apart on some channel (the pixel-accuracy threshold).
MAP_COLOURS = np.array([(236, 232, 224), (255, 255, 255), (190, 190, 190), (170, 211, 223)], float)
# The satellite look of each class: darker, and textured below.
SAT_COLOURS = np.array([(74, 88, 56), (150, 148, 140), (112, 110, 104), (36, 58, 78)], float)


def _layout(rng: np.random.Generator, side: int) -> np.ndarray:
    """Class labels (side, side): land, a water patch, then roads across it (bridges on top)."""
    labels = np.full((side, side), LAND, np.uint8)
    w, h = (int(v) for v in rng.integers(side // 4, side // 2 + 1, size=2))
    x, y = int(rng.integers(0, side - w + 1)), int(rng.integers(0, side - h + 1))
    labels[y : y + h, x : x + w] = WATER
    for axis in (0, 1):
        for _ in range(int(rng.integers(1, 3))):
            width = int(rng.integers(max(2, side // 20), max(3, side // 10) + 1))
            at = int(rng.integers(0, side - width + 1))
            road = WHITE_ROAD if rng.random() < 0.5 else GREY_ROAD
            if axis == 0:
                labels[at : at + width, :] = road
            else:
                labels[:, at : at + width] = road
    return labels


def _texture(rng: np.random.Generator, side: int, cells: int = 8) -> np.ndarray:
    """Smooth noise (side, side) of unit-ish amplitude: a coarse random grid, upsampled."""
    coarse = rng.normal(size=(cells, cells)).astype(np.float32)
    image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


def _satellite(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    side = labels.shape[0]
    base = SAT_COLOURS[labels]
    shade = 14.0 * _texture(rng, side)[..., None]
    grain = rng.normal(scale=8.0, size=base.shape)
    return np.clip(base + shade + grain, 0, 255).round().astype(np.uint8)


def _save(image: np.ndarray | Image.Image, path: Path) -> None:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=JPEG_QUALITY)
    else:
        image.save(path)


def write_maps_sample(
    root: str | Path, n_train: int = 4, n_val: int = 4, half: int = 64, seed: int = 0
) -> Path:
    """Write a tiny pix2pix ``maps`` set: ``root/train/1.jpg ...`` and ``root/val/1.jpg ...``.

    Each file is (2 * half) x half: a textured satellite on the left and its flat map on the
    right, drawn from the same random layout (land, white and grey roads, a water patch). Load it
    with :func:`unitlab.data.paper_datasets.load_maps`. Returns ``root``.
    """
    if n_train < 1 or n_val < 1 or half < 16:
        raise ValueError(f"need n_train, n_val >= 1 and half >= 16, got {n_train}, {n_val}, {half}")
    root = Path(root)
    for stream, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, stream, i])
            labels = _layout(rng, half)
            flat = MAP_COLOURS[labels].astype(np.uint8)
            _save(np.concatenate([_satellite(rng, labels), flat], axis=1), folder / f"{i + 1}.jpg")
    return root


def _scene(rng: np.random.Generator, width: int, height: int, palette: np.ndarray) -> Image.Image:
    """A gradient background with a few rectangles and ellipses in a domain's palette."""
    top, bottom = palette[rng.integers(len(palette), size=2)]
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    background = (1 - t) * top + t * bottom
    image = Image.fromarray(np.broadcast_to(background, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, size=2))
        colour = tuple(int(c) for c in palette[rng.integers(len(palette))])
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((x0, y0, x1 + 1, y1 + 1), fill=colour)
    return image


def write_folder_pairs_sample(root: str | Path, n: int = 3, seed: int = 0) -> Path:
    """Write a tiny unpaired set: ``root/trainA testA`` (n landscape 80x48 JPEGs each) and
    ``root/trainB testB`` (n portrait 56x72 PNGs each), two visibly different palettes.

    Non-square and of a different size per domain, as real folder pairs are (GTA frames are
    933x512, Cityscapes 1024x512). Load it with
    :func:`unitlab.data.paper_datasets.load_folder_pairs`. Returns ``root``.
    """
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    root = Path(root)
    warm = np.array([(200, 120, 60), (240, 200, 90), (120, 60, 40), (250, 240, 220)])
    cold = np.array([(40, 80, 160), (90, 170, 200), (20, 30, 60), (210, 230, 250)])
    domains = {"A": (80, 48, warm, ".jpg"), "B": (56, 72, cold, ".png")}
    for stream, part in enumerate(("trainA", "trainB", "testA", "testB")):
        width, height, palette, ending = domains[part[-1]]
        folder = root / part
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rng = np.random.default_rng([seed, stream, i])
            _save(_scene(rng, width, height, palette), folder / f"{part[-1]}_{i:03d}{ending}")
    return root


HAIR = {"Blond_Hair": (222, 190, 112), "Brown_Hair": (112, 72, 42), "Black_Hair": (30, 26, 24)}


def _face(rng: np.random.Generator, attrs: dict[str, int]) -> Image.Image:
    """A cartoon 178x218 aligned face whose look follows its attributes (hair colour, smile,
    eyeglasses, hat), so the attribute domains differ visibly."""
    background = tuple(int(v) for v in rng.integers(60, 230, size=3))
    image = Image.new("RGB", (178, 218), background)
    draw = ImageDraw.Draw(image)
    hair = next(HAIR[h] for h in HAIR if attrs[h] == 1)
    skin = tuple(int(v) for v in np.array((224, 182, 150)) * rng.uniform(0.6, 1.05))
    draw.ellipse((34, 40, 144, 150), fill=hair)  # hair behind the face
    draw.ellipse((44, 60, 134, 180), fill=skin)
    for x in (70, 108):
        draw.ellipse((x - 6, 100, x + 6, 110), fill=(40, 30, 30))
        if attrs["Eyeglasses"] == 1:
            draw.rectangle((x - 13, 94, x + 13, 116), outline=(10, 10, 10), width=3)
    if attrs["Smiling"] == 1:
        draw.arc((66, 128, 112, 162), 20, 160, fill=(150, 40, 50), width=4)
    else:
        draw.line((72, 148, 106, 148), fill=(150, 40, 50), width=4)
    if attrs["Wearing_Hat"] == 1:
        draw.rectangle((30, 34, 148, 66), fill=(50, 50, 120))
    noise = rng.normal(scale=4.0, size=(218, 178, 3))
    return Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).round().astype(np.uint8))


def write_celeba_sample(root: str | Path, n: int = 12, seed: int = 0) -> Path:
    """Write a tiny CelebA: ``root/img_align_celeba/000001.jpg ...`` (178x218 cartoon faces),
    ``root/list_attr_celeba.txt`` (CelebA's 40 attribute names) and
    ``root/list_eval_partition.txt``.

    The partition is contiguous like the real one (train first, then validation, then test),
    every split non-empty. Within each split the faces alternate Smiling / not, and cycle through
    blond, brown and black hair, so ``Smiling`` vs not and ``Blond_Hair`` vs ``Brown_Hair`` have
    both domains in train and in test; the other attributes are random (Eyeglasses and
    Wearing_Hat are drawn). Load it with :func:`unitlab.data.paper_datasets.load_celeba`.
    Returns ``root``.
    """
    if n < 6:
        raise ValueError(f"need n >= 6 so that every split has both domains, got {n}")
    root = Path(root)
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    n_val, n_test = max(1, n // 6), max(2, n // 6)
    n_train = n - n_val - n_test
    splits = [0] * n_train + [1] * n_val + [2] * n_test
    attr_lines = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
    part_lines = []
    position = {0: 0, 1: 0, 2: 0}
    for i, split in enumerate(splits):
        rng = np.random.default_rng([seed, i])
        j = position[split]  # index within the split: patterns hold in every split
        position[split] += 1
        values = rng.choice([-1, 1], len(CELEBA_ATTRIBUTES))
        attrs = {a: int(v) for a, v in zip(CELEBA_ATTRIBUTES, values, strict=True)}
        attrs["Smiling"] = 1 if j % 2 == 0 else -1
        hair = ("Blond_Hair", "Brown_Hair", "Black_Hair")[j % 3]
        for name in (*HAIR, "Gray_Hair", "Bald"):
            attrs[name] = 1 if name == hair else -1
        name = f"{i + 1:06d}.jpg"
        _save(_face(rng, attrs), folder / name)
        # The official file pads positive values to two characters: "-1  1 -1".
        attr_lines.append(f"{name} " + " ".join(f"{attrs[a]:2d}" for a in CELEBA_ATTRIBUTES))
        part_lines.append(f"{name} {split}")
    (root / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n", encoding="utf-8")
    (root / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n", encoding="utf-8")
    return root
