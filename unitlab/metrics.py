"""The paper's pixel accuracy for satellite -> map translation, and baselines to read it against.

Convention: every function here takes and returns **uint8 numpy images** (N, H, W, C) on 0..255,
the form in which maps are stored and compared. Model outputs are converted once, with
:func:`unitlab.images.tensor_to_uint8`, so no function has to guess a value range.

A score means little alone, so the baselines bracket it:

* ``identity_baseline``: the satellite image itself (how close the two styles already are);
* ``constant_baseline``: every pixel the most common training-map colour (the class prior);
* ``nearest_colour_baseline``: each pixel alone, to the map colour whose mean satellite colour
  is nearest (fit with pairs): the simplest colour mapping;
* ``pixel_classifier_baseline``: logistic regression on RGB trained *with* pairs (a 1x1 conv);
* ``colour_lookup_baseline``: for each (quantised) satellite colour, the map colour most often
  paired with it in training: the ceiling of every method that looks at one pixel at a time.

A translation model that beats the last one uses context, which is the point of the exercise.
The baselines fit with pairs are *stronger* than anything unsupervised could fit per pixel.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "pixel_accuracy",
    "dominant_colours",
    "identity_baseline",
    "constant_baseline",
    "pixel_accuracy_by_class",
    "nearest_colour_baseline",
    "pixel_classifier_baseline",
    "colour_lookup_baseline",
]


def _check_images(name: str, x: np.ndarray) -> None:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a uint8 numpy array, got {type(x).__name__}")
    if x.dtype != np.uint8:
        raise ValueError(
            f"{name} must be uint8 on 0..255, got dtype {x.dtype} "
            f"(convert tensors with unitlab.images.tensor_to_uint8)"
        )
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must be (H, W, C) or (N, H, W, C), got shape {x.shape}")


def pixel_accuracy(pred: np.ndarray, truth: np.ndarray, threshold: int = 16) -> float:
    """Fraction of pixels whose colour is within ``threshold`` of the truth on every channel.

    The UNIT and pix2pix papers score map predictions this way without defining the colour
    difference; we use the max over channels of ``|pred - truth|`` (Chebyshev / L-inf), so
    "within 16" means within 16 on each of R, G and B. Averaged over all pixels of all images.
    """
    return float(_correct(pred, truth, threshold).mean())


def _correct(pred: np.ndarray, truth: np.ndarray, threshold: int) -> np.ndarray:
    _check_images("pred", pred)
    _check_images("truth", truth)
    if pred.shape != truth.shape:
        raise ValueError(f"pred shape {pred.shape} != truth shape {truth.shape}")
    if not 0 <= threshold <= 255:
        raise ValueError(f"threshold must be in 0..255, got {threshold}")
    return np.abs(pred.astype(np.int16) - truth.astype(np.int16)).max(axis=-1) <= threshold


def pixel_accuracy_by_class(
    pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, n_classes: int, threshold: int = 16
) -> np.ndarray:
    """:func:`pixel_accuracy` per class of the true layout (NaN for a class with no pixels).

    ``labels`` are the (N, H, W) class indices of the truth (map-world layouts): where a
    translation fails matters as much as how often, since most pixels are plain land.
    """
    correct = _correct(pred, truth, threshold)
    if labels.shape != correct.shape:
        raise ValueError(f"labels shape {labels.shape} != image shape {correct.shape}")
    totals = np.bincount(labels.ravel(), minlength=n_classes)[:n_classes]
    hits = np.bincount(labels.ravel(), weights=correct.ravel(), minlength=n_classes)[:n_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)


def dominant_colours(maps: np.ndarray, k: int = 8, min_distance: int = 16) -> np.ndarray:
    """The ``k`` most frequent colours (k, C) uint8 of ``maps``, at least ``min_distance`` apart.

    Procedural maps have exactly a few colours; real (JPEG) maps have near-duplicates around each,
    which ``min_distance`` skips. The result is the class palette the baselines predict in.
    Counted on at most ~1M pixels (a regular subsample) to stay fast.
    """
    _check_images("maps", maps)
    pixels = maps.reshape(-1, maps.shape[-1])
    pixels = pixels[:: max(1, len(pixels) // 1_000_000)]
    dims = (256,) * pixels.shape[1]
    codes, counts = np.unique(np.ravel_multi_index(tuple(pixels.T), dims), return_counts=True)
    colours = np.stack(np.unravel_index(codes, dims), axis=1)
    chosen: list[np.ndarray] = []
    for i in np.argsort(-counts, kind="stable"):
        c = colours[i].astype(np.int16)
        if all(np.abs(c - p).max() >= min_distance for p in chosen):
            chosen.append(c)
            if len(chosen) == k:
                break
    return np.array(chosen, dtype=np.uint8)


def _labels(maps: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour (L-inf, as the metric) per pixel: (N*H*W,)."""
    pixels = maps.reshape(-1, 1, maps.shape[-1]).astype(np.int16)
    return np.abs(pixels - palette[None].astype(np.int16)).max(-1).argmin(-1)


def _check_pairs(train_sat: np.ndarray, train_map: np.ndarray) -> None:
    _check_images("train_sat", train_sat)
    _check_images("train_map", train_map)
    if train_sat.shape[:-1] != train_map.shape[:-1]:
        raise ValueError(
            f"paired training data must match pixel for pixel: train_sat {train_sat.shape} "
            f"vs train_map {train_map.shape}"
        )


def identity_baseline(sat: np.ndarray) -> np.ndarray:
    """The satellite image as its own map: the score of doing nothing."""
    _check_images("sat", sat)
    return sat.copy()


def constant_baseline(train_maps: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Every pixel the most common colour of the *training* maps, shaped like ``like``."""
    _check_images("like", like)
    colour = dominant_colours(train_maps, k=1)[0]
    return np.broadcast_to(colour, like.shape[:-1] + colour.shape).copy()


def nearest_colour_baseline(
    sat: np.ndarray, train_sat: np.ndarray, train_map: np.ndarray, n_colours: int = 8
) -> np.ndarray:
    """Each pixel alone: the map colour whose mean satellite colour (over paired training
    pixels) is nearest to it in RGB. A colour lookup, the simplest per-pixel translator."""
    _check_images("sat", sat)
    _check_pairs(train_sat, train_map)
    palette = dominant_colours(train_map, n_colours)
    labels = _labels(train_map, palette)
    x = train_sat.reshape(-1, train_sat.shape[-1]).astype(np.float64)
    counts = np.bincount(labels, minlength=len(palette))
    keep = counts > 0
    means = np.stack([np.bincount(labels, x[:, c], len(palette)) for c in range(x.shape[1])], 1)
    means, palette = means[keep] / counts[keep, None], palette[keep]
    pixels = sat.reshape(-1, sat.shape[-1]).astype(np.float32)
    d = ((pixels[:, None, :] - means[None].astype(np.float32)) ** 2).sum(-1)
    return palette[d.argmin(-1)].reshape(sat.shape[:-1] + palette.shape[-1:])


def colour_lookup_baseline(
    sat: np.ndarray, train_sat: np.ndarray, train_map: np.ndarray, n_colours: int = 8, bits: int = 4
) -> np.ndarray:
    """The best any per-pixel method can do, estimated: a lookup table from satellite colour
    (quantised to ``bits`` per channel) to the map colour most often paired with it in training.

    Non-parametric, so no per-pixel classifier of any shape beats it by more than quantisation
    and sampling error; colours never seen in training get the most common map colour.
    """
    _check_images("sat", sat)
    _check_pairs(train_sat, train_map)
    palette = dominant_colours(train_map, n_colours)
    labels = _labels(train_map, palette)
    k = len(palette)

    def bins(x: np.ndarray) -> np.ndarray:
        q = (x.reshape(-1, x.shape[-1]) >> (8 - bits)).astype(np.int64)
        return np.ravel_multi_index(tuple(q.T), (1 << bits,) * x.shape[-1])

    n_bins = 1 << (bits * train_sat.shape[-1])
    counts = np.bincount(bins(train_sat) * k + labels, minlength=n_bins * k).reshape(n_bins, k)
    table = np.where(counts.any(1), counts.argmax(1), np.bincount(labels, minlength=k).argmax())
    return palette[table[bins(sat)]].reshape(sat.shape[:-1] + palette.shape[-1:])


def pixel_classifier_baseline(
    sat: np.ndarray,
    train_sat: np.ndarray,
    train_map: np.ndarray,
    n_colours: int = 8,
    steps: int = 300,
    seed: int = 0,
    max_pixels: int = 20_000,
) -> np.ndarray:
    """A linear per-pixel classifier trained *with* pairs: multinomial logistic regression from
    RGB to map colour, i.e. a 1x1 conv, the context-free model the guide asks to report.

    Full-batch Adam for ``steps`` steps on a random ``max_pixels`` of the training pixels (ample
    for 4 x colours parameters). Plain numpy, deterministic for a ``seed``: the first step of a
    torch optimiser alone spends seconds importing.
    """
    _check_images("sat", sat)
    _check_pairs(train_sat, train_map)
    palette = dominant_colours(train_map, n_colours)
    labels = _labels(train_map, palette)
    x = train_sat.reshape(-1, train_sat.shape[-1])
    rng = np.random.default_rng(seed)
    if len(x) > max_pixels:
        pick = rng.choice(len(x), max_pixels, replace=False)
        x, labels = x[pick], labels[pick]
    x = _with_bias(x)
    onehot = np.eye(len(palette), dtype=np.float32)[labels]
    w = rng.normal(0, 0.5, (x.shape[1], len(palette))).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for step in range(1, steps + 1):
        z = x @ w
        prob = np.exp(z - z.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        grad = x.T @ (prob - onehot) / len(x)  # of the mean cross-entropy
        m += 0.1 * (grad - m)
        v += 0.001 * (grad * grad - v)
        w -= 0.05 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    pred = (_with_bias(sat.reshape(-1, sat.shape[-1])) @ w).argmax(-1)
    return palette[pred].reshape(sat.shape[:-1] + palette.shape[-1:])


def _with_bias(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (N, C) -> float32 (N, C + 1) on [-1, 1] with a constant 1 for the bias."""
    x = pixels.astype(np.float32) / 127.5 - 1
    return np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)
