"""Domain-adaptation splits: real data in ../shared/data (MNIST test, USPS), small files elsewhere.

What matters most here is what the accuracy numbers rest on: evaluation images are never in a
training part (checked by row and, independently, by image content), target training images
carry no labels, and the same seed gives the same split.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from unitlab.data.adaptation import (
    AdaptationSplit,
    Images,
    LabeledImages,
    adaptation_split,
    mnist_train_present,
    rows_digest,
    stratified_holdout,
)
from unitlab.data.digits import IDX_IMAGES, IDX_LABELS, load_mnist

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
PRINTED_N = 500  # the default 20,000 takes ~10 s; the code path is the same

# direction -> (source size, target train size, target eval size, channels) with CI's data
SIZES = {
    ("mnist", "usps"): (10_000, 7291, 2007, 1),
    ("usps", "mnist"): (7291, 8000, 2000, 1),
    ("printed", "mnist"): (PRINTED_N, 8000, 2000, 3),
}


@pytest.fixture(scope="module")
def splits(offline_data: Path) -> dict[tuple[str, str], AdaptationSplit]:
    return {
        (s, t): adaptation_split(s, t, offline_data, printed_n=PRINTED_N)  # type: ignore[arg-type]
        for s, t in SIZES
    }


@pytest.fixture(scope="module")
def mnist_test(offline_data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST test as the model sees it, loaded independently of the module under test."""
    return load_mnist("test", offline_data, download=False).as_tensors(size=32, channels=1)


def row_hashes(images: torch.Tensor) -> set[bytes]:
    return {hashlib.blake2b(x.numpy().tobytes(), digest_size=16).digest() for x in images}


# ------------------------------------------------------------------------------------------
# Real data: the three directions CI can run.


@pytest.mark.parametrize("direction", SIZES, ids="->".join)
def test_sizes_shapes_ranges(
    splits: dict[tuple[str, str], AdaptationSplit], direction: tuple[str, str]
) -> None:
    split = splits[direction]
    n_source, n_train, n_eval, channels = SIZES[direction]
    assert (split.source, split.target) == direction and split.channels == channels
    for part, n in (
        (split.source_train, n_source),
        (split.target_train, n_train),
        (split.target_eval, n_eval),
    ):
        assert part.images.shape == (n, channels, 32, 32) and part.images.dtype == torch.float32
        assert part.images.min() == -1 and part.images.max() <= 1
        assert len(part.dataset()) == n
    for part in (split.source_train, split.target_eval):
        assert part.labels.dtype == torch.int64 and part.labels.shape == (len(part),)
        assert set(part.labels.unique().tolist()) == set(range(10))
    if channels == 3:  # a grey target repeated to RGB; a colour source really is colour
        assert torch.equal(split.target_eval.images[:, 0], split.target_eval.images[:, 2])
        assert not torch.equal(split.source_train.images[:, 0], split.source_train.images[:, 2])


@pytest.mark.parametrize("direction", SIZES, ids="->".join)
def test_target_train_has_no_labels(
    splits: dict[tuple[str, str], AdaptationSplit], direction: tuple[str, str]
) -> None:
    part = splits[direction].target_train
    assert type(part) is Images and not hasattr(part, "labels")
    assert {f.name for f in dataclasses.fields(part)} == {"images", "origin", "indices"}
    assert len(part.dataset()[0]) == 1  # (image,), nothing else


@pytest.mark.parametrize("direction", SIZES, ids="->".join)
def test_eval_never_trained_on(
    splits: dict[tuple[str, str], AdaptationSplit], direction: tuple[str, str]
) -> None:
    split = splits[direction]
    evaluation = split.target_eval
    for part in (split.source_train, split.target_train):
        if part.origin == evaluation.origin:
            assert not set(part.indices.tolist()) & set(evaluation.indices.tolist())
    # Belt and braces, independent of the bookkeeping: no evaluation image, by content, in training.
    seen = row_hashes(split.target_train.images) | row_hashes(split.source_train.images)
    assert not row_hashes(evaluation.images) & seen


@pytest.mark.parametrize("direction", [("usps", "mnist"), ("printed", "mnist")], ids="->".join)
def test_mnist_target_from_test_split(
    splits: dict[tuple[str, str], AdaptationSplit],
    mnist_test: tuple[torch.Tensor, torch.Tensor],
    direction: tuple[str, str],
) -> None:
    split = splits[direction]
    train, evaluation = split.target_train, split.target_eval
    assert train.origin == evaluation.origin == "MNIST test"
    # Together exactly the 10,000 test rows, each once.
    rows = torch.cat([train.indices, evaluation.indices]).sort().values
    assert torch.equal(rows, torch.arange(10_000))
    # The rows are what they claim: the images (and eval labels) of those MNIST test rows.
    x, y = mnist_test
    assert torch.equal(evaluation.images[:, :1], x[evaluation.indices])
    assert torch.equal(evaluation.labels, y[evaluation.indices])
    assert torch.equal(train.images[:, :1], x[train.indices])
    # Stratified: each digit held out in proportion, within one image.
    counts = torch.bincount(evaluation.labels, minlength=10).numpy()
    assert np.all(np.abs(counts - np.array(MNIST_TEST_COUNTS) * 0.2) <= 1)
    assert "8,000 images of the MNIST test split" in split.protocol
    assert rows_digest(evaluation.indices) in split.protocol


def test_protocol_says_what_was_used(splits: dict[tuple[str, str], AdaptationSplit]) -> None:
    m2u = splits["mnist", "usps"].protocol
    assert "MNIST *test* split, all 10,000 images" in m2u and "MNIST train split is not" in m2u
    assert "USPS train, all 7,291" in m2u and "USPS test, all 2,007" in m2u
    p2m = splits["printed", "mnist"].protocol
    assert f"printed_digits(n={PRINTED_N}, seed=0)" in p2m and "repeated to RGB" in p2m


def test_same_seed_same_split(offline_data: Path, splits: dict[tuple[str, str], AdaptationSplit]):
    first = splits["usps", "mnist"]
    again = adaptation_split("usps", "mnist", offline_data)
    for a, b in zip(dataclasses.astuple(first), dataclasses.astuple(again), strict=True):
        if isinstance(a, Images):
            assert torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images)
    assert again.protocol == first.protocol
    other = adaptation_split("usps", "mnist", offline_data, seed=1)
    assert len(other.target_eval) == 2000
    assert not torch.equal(other.target_eval.indices, first.target_eval.indices)
    assert rows_digest(other.target_eval.indices) != rows_digest(first.target_eval.indices)


def test_stratified_holdout() -> None:
    labels = torch.arange(103) % 10
    train, evaluation = stratified_holdout(labels, 21, seed=3)
    assert len(evaluation) == 21 and len(train) == 82
    assert torch.equal(torch.cat([train, evaluation]).sort().values, torch.arange(103))
    assert torch.bincount(labels[evaluation], minlength=10).tolist() in ([2] * 9 + [3], [3, 2] * 5)
    again = stratified_holdout(labels, 21, seed=3)
    assert torch.equal(again[1], evaluation)
    assert not torch.equal(stratified_holdout(labels, 21, seed=4)[1], evaluation)
    for n_eval in (0, 103):
        with pytest.raises(ValueError, match="n_eval"):
            stratified_holdout(labels, n_eval)


# ------------------------------------------------------------------------------------------
# Small files: the full-MNIST protocol and SVHN, which CI does not have.


def write_mnist(root: Path, split: str, n: int, seed: int) -> None:
    """Tiny MNIST files in the official layout (``verify=False`` is needed to read them)."""
    rng = np.random.default_rng(seed)
    prefix = {"train": "train", "test": "t10k"}[split]
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, array, magic in (
        (f"{prefix}-images-idx3-ubyte.gz", images, IDX_IMAGES),
        (f"{prefix}-labels-idx1-ubyte.gz", labels, IDX_LABELS),
    ):
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (folder / name).write_bytes(gzip.compress(header + array.tobytes()))


def test_full_mnist_protocol(tmp_path: Path, offline_data: Path) -> None:
    write_mnist(tmp_path, "test", 30, seed=0)
    (tmp_path / "usps").symlink_to(offline_data / "usps")  # for MNIST -> USPS below
    assert not mnist_train_present(tmp_path)
    with pytest.raises(FileNotFoundError, match="MNIST train split.*train-images"):
        adaptation_split("printed", "mnist", tmp_path, printed_n=10, full_mnist=True)
    write_mnist(tmp_path, "train", 50, seed=1)
    assert mnist_train_present(tmp_path)
    split = adaptation_split("printed", "mnist", tmp_path, printed_n=10, verify=False)
    assert (split.target_train.origin, len(split.target_train)) == ("MNIST train", 50)
    assert (split.target_eval.origin, len(split.target_eval)) == ("MNIST test", 30)
    assert "MNIST train, all 50 images, labels dropped" in split.protocol
    # full_mnist=False reproduces CI's protocol even where MNIST train exists.
    ci = adaptation_split(
        "printed", "mnist", tmp_path, printed_n=10, full_mnist=False, mnist_eval=6, verify=False
    )
    assert ci.target_train.origin == ci.target_eval.origin == "MNIST test"
    assert (len(ci.target_train), len(ci.target_eval)) == (24, 6)
    # MNIST as a source: the train split when present.
    source = adaptation_split(
        "mnist", "usps", tmp_path, full_mnist=True, verify=False, download=False
    )
    assert source.source_train.origin == "MNIST train" and len(source.source_train) == 50


def test_mnist_to_usps_needs_usps(tmp_path: Path) -> None:
    write_mnist(tmp_path, "test", 30, seed=0)
    with pytest.raises(FileNotFoundError, match="MNIST -> USPS needs the USPS train.*usps.bz2"):
        adaptation_split("mnist", "usps", tmp_path, verify=False)


def test_svhn_source(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")  # a test dependency, but SVHN's is optional
    write_mnist(tmp_path, "test", 30, seed=0)
    with pytest.raises(FileNotFoundError, match=r"SVHN train split.*svhn/train_32x32\.mat"):
        adaptation_split("svhn", "mnist", tmp_path, mnist_eval=10, verify=False)
    rng = np.random.default_rng(0)
    (tmp_path / "svhn").mkdir()
    scipy_io.savemat(
        tmp_path / "svhn" / "train_32x32.mat",
        {
            "X": rng.integers(0, 256, (32, 32, 3, 12), dtype=np.uint8),
            "y": (np.arange(12) % 10 + 1).reshape(-1, 1),
        },
    )
    split = adaptation_split("svhn", "mnist", tmp_path, mnist_eval=10, verify=False)
    assert split.channels == 3 and len(split.source_train) == 12
    assert split.source_train.labels.tolist() == [*range(1, 10), 0, 1, 2]  # label 10 is digit 0
    assert (len(split.target_train), len(split.target_eval)) == (20, 10)
    assert "SVHN train" in split.protocol and "SVHN extra" in split.protocol


# ------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    "source, target, match",
    [
        ("svhm", "mnist", "source must be one of"),
        ("usps", "MNIST", "target must be one of"),
        ("mnist", "printed", "target must be one of"),
        ("usps", "usps", "both 'usps'"),
    ],
)
def test_bad_names(tmp_path: Path, source: str, target: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adaptation_split(source, target, tmp_path)  # type: ignore[arg-type]


def _part(rows: list[int], labeled: bool = True, channels: int = 1) -> Images:
    images = torch.zeros(len(rows), channels, 32, 32)
    if labeled:
        return LabeledImages(images, "X test", torch.tensor(rows), torch.zeros(len(rows)).long())
    return Images(images, "X test", torch.tensor(rows))


def test_split_refuses_leaks() -> None:
    def split(target_train: Images, source_train: Images | None = None) -> AdaptationSplit:
        source_train = source_train or LabeledImages(
            torch.zeros(2, 1, 32, 32), "Y train", torch.arange(2), torch.zeros(2).long()
        )
        return AdaptationSplit("y", "x", source_train, target_train, _part([3, 4]), "hand-made")

    assert split(_part([0, 1, 2], labeled=False)).channels == 1
    with pytest.raises(ValueError, match="1 evaluation images of X test.*row 4"):
        split(_part([0, 4], labeled=False))
    with pytest.raises(ValueError, match="also in source_train"):
        split(_part([0], labeled=False), source_train=_part([3]))
    with pytest.raises(TypeError, match="no labels"):
        split(_part([0, 1]))
    with pytest.raises(ValueError, match="channel"):
        split(_part([0], labeled=False, channels=3))
    with pytest.raises(ValueError, match="repeat"):
        _part([1, 1])


def test_normalised_split_warps_grey_digits_only(
    offline_data: Path, splits: dict[tuple[str, str], AdaptationSplit]
) -> None:
    """``normalise=True`` changes the pixels of MNIST and USPS images (every part, the same
    rule), never which rows are in which part; colour sources keep their framing."""
    from unitlab.data.adaptation import NORMALISED
    from unitlab.data.digit_geometry import normalise_size

    for source, target in (("mnist", "usps"), ("printed", "mnist")):
        plain = splits[(source, target)]
        normalised = adaptation_split(
            source, target, offline_data, printed_n=PRINTED_N, normalise=True
        )
        assert NORMALISED in normalised.protocol and NORMALISED not in plain.protocol
        assert normalised.normalised and not plain.normalised
        for name in ("source_train", "target_train", "target_eval"):
            before, after = getattr(plain, name), getattr(normalised, name)
            assert torch.equal(before.indices, after.indices)
            assert after.images.shape == before.images.shape
            if name == "source_train" and source == "printed":
                assert torch.equal(after.images, before.images)
                continue
            grey = before.images[:100, :1]
            expected = normalise_size(grey).expand(-1, before.channels, -1, -1)
            assert torch.allclose(after.images[:100], expected, atol=1e-6), name


def test_stretched_luma_spans_the_range_whatever_the_colours() -> None:
    """Luma with ITU-R 601 weights, each image stretched to [-1, 1]: a pale digit, a dark one
    and a coloured one all come out spanning the full range, with strokes and background in
    the same order as their brightness; a flat image does not divide by zero."""
    from unitlab.data.adaptation import stretched_luma

    x = torch.full((4, 3, 8, 8), 0.5)
    x[0, :, 2:6, 3:5] = 0.7  # pale grey stroke on pale grey: little contrast
    x[1] = -0.9
    x[1, :, 2:6, 3:5] = -0.6  # dark on darker
    x[2, 0], x[2, 1], x[2, 2] = 1.0, -1.0, -1.0  # red background ...
    x[2, 1, 2:6, 3:5] = 1.0  # ... with a yellow stroke (brighter: green adds 0.587)
    grey = stretched_luma(x)
    assert grey.shape == (4, 1, 8, 8)
    for i in range(3):
        assert grey[i].min() == -1 and grey[i].max() == 1
        assert torch.all(grey[i, :, 2:6, 3:5] == 1) and grey[i, :, 0, 0] == -1
    assert torch.all(grey[3] == -1)  # flat: no digit, no NaN
    with pytest.raises(ValueError, match=r"RGB images \(N, 3, H, W\), got \(2, 1, 8, 8\)"):
        stretched_luma(torch.zeros(2, 1, 8, 8))


def test_source_grey_makes_colour_sources_one_channel_only(
    offline_data: Path, splits: dict[tuple[str, str], AdaptationSplit]
) -> None:
    """``source_grey=True``: the printed source becomes stretched luma of the same rows, every
    part one channel (the target as loaded, not repeated to RGB), the protocol says so; a grey
    source is left exactly as it is."""
    from unitlab.data.adaptation import SOURCE_GREY, stretched_luma

    plain = splits[("printed", "mnist")]
    grey = adaptation_split("printed", "mnist", offline_data, printed_n=PRINTED_N, source_grey=True)
    assert grey.channels == 1 and grey.source_grey and not plain.source_grey
    assert SOURCE_GREY in grey.protocol and SOURCE_GREY not in plain.protocol
    assert torch.equal(grey.source_train.labels, plain.source_train.labels)
    expected = stretched_luma(plain.source_train.images)
    assert torch.allclose(grey.source_train.images, expected, atol=1e-6)
    for name in ("target_train", "target_eval"):
        before, after = getattr(plain, name), getattr(grey, name)
        assert torch.equal(after.indices, before.indices)
        assert torch.equal(after.images, before.images[:, :1])

    untouched = adaptation_split("usps", "mnist", offline_data, source_grey=True)
    assert not untouched.source_grey and SOURCE_GREY not in untouched.protocol
    assert torch.equal(untouched.source_train.images, splits[("usps", "mnist")].source_train.images)


# ------------------------------------------------------------------------------------------
# Inverted target copies (the authors' SVHN -> MNIST recipe)


@pytest.mark.parametrize("direction", [("usps", "mnist"), ("printed", "mnist")], ids="->".join)
def test_target_inverted_doubles_target_training_only(
    offline_data: Path,
    splits: dict[tuple[str, str], AdaptationSplit],
    direction: tuple[str, str],
) -> None:
    """``target_inverted=True``: the target training images, then each inverted (255 - x), rows
    recorded as ``~r``; the source and the evaluation images exactly as without it."""
    from unitlab.images import tensor_to_uint8, uint8_to_tensor

    source, target = direction
    plain = splits[direction]
    doubled = adaptation_split(
        source,  # type: ignore[arg-type]
        target,  # type: ignore[arg-type]
        offline_data,
        printed_n=PRINTED_N,
        target_inverted=True,
    )
    assert doubled.target_inverted and not plain.target_inverted
    train, n = doubled.target_train, len(plain.target_train)
    assert (
        type(train) is Images and len(train) == 2 * n and train.origin == plain.target_train.origin
    )
    first, second = train.images[:n], train.images[n:]
    assert torch.equal(first, plain.target_train.images)
    assert torch.equal(second, -first)
    # -x on [-1, 1] is 255 - x on 0..255: (255 - x) / 127.5 - 1 = -(x / 127.5 - 1).
    grid = uint8_to_tensor(np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1))
    inverse = uint8_to_tensor(255 - tensor_to_uint8(grid))
    torch.testing.assert_close(-grid, inverse, rtol=0, atol=1e-6)  # float32 rounding only
    if plain.channels == 3:  # still a grey target repeated to RGB
        assert torch.equal(train.images[:, 0], train.images[:, 2])
    rows = plain.target_train.indices
    assert torch.equal(train.indices, torch.cat([rows, -rows - 1]))
    assert np.array_equal(train.rows(), np.tile(rows.numpy(), 2))
    for name in ("source_train", "target_eval"):
        before, after = getattr(plain, name), getattr(doubled, name)
        assert torch.equal(after.images, before.images) and torch.equal(after.labels, before.labels)
        assert torch.equal(after.indices, before.indices)
    assert "inverted copies" in doubled.protocol and "inverted" not in plain.protocol
    # By content: neither an evaluation image nor its inverse is trained on.
    evaluation = doubled.target_eval.images
    assert not (row_hashes(evaluation) | row_hashes(-evaluation)) & row_hashes(train.images)


def test_split_refuses_inverted_copies_of_evaluation_images() -> None:
    """A copy recorded as ``~r`` is traced back to row ``r``: inverting an evaluation image does
    not make it a training image."""
    source = LabeledImages(
        torch.zeros(2, 1, 32, 32), "Y train", torch.arange(2), torch.zeros(2).long()
    )

    def split(rows: list[int]) -> AdaptationSplit:
        target_train = _part(rows, labeled=False)
        return AdaptationSplit("y", "x", source, target_train, _part([3, 4]), "hand-made")

    assert np.array_equal(split([0, 1, ~0, ~1]).target_train.rows(), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="1 evaluation images of X test.*row 4"):
        split([0, 1, ~0, ~4])
