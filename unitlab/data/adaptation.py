"""Which images train and which evaluate, for the paper's digit domain-adaptation tasks.

Domain adaptation is only meaningful if the target images used to score a classifier were never
seen in training, and if the target's labels were used for nothing but scoring. Both promises are
easy to break by accident (one shared ``DataLoader``, one ``DigitData`` passed around whole), so
this module makes them structural rather than a matter of care:

* ``AdaptationSplit.target_train`` is an ``Images``: images and the row numbers they came from,
  no labels, and no reference to the dataset the labels live in. Target labels exist only in
  ``target_eval``.
* Every part records its ``origin`` (the file split, e.g. "MNIST test") and ``indices`` (its rows
  there). ``AdaptationSplit`` refuses to exist if an evaluation row also appears in a training
  part of the same origin, so an overlapping split cannot be built, however it was put together.
  An image *derived* from row ``r`` (the inverted copies of ``target_inverted``) is recorded as
  ``~r`` (= -r - 1): indices stay unique, and the check maps ``~r`` back to ``r``, so a copy of
  an evaluation image is a leak like the image itself.

The protocol per direction (written out in ``docs/domain_adaptation.md``):

* MNIST as target: train on the MNIST train split (unlabelled), evaluate on MNIST test, when the
  train split is under the data root. Otherwise (CI has only MNIST test) MNIST test is split,
  seeded and class-stratified, into 8,000 unlabelled training and 2,000 evaluation images.
* USPS as target: train on USPS train (7,291, unlabelled), evaluate on USPS test (2,007).
* Sources, labelled: MNIST train (MNIST test when train is missing), USPS train, SVHN train,
  or procedurally printed digits (``unitlab.data.printed_digits``, an offline SVHN stand-in).

Images are float32 (N, C, 32, 32) in [-1, 1], the model's view (``DigitData.as_tensors``), with
C = 3 when the source is colour (SVHN, printed digits; the grey target is then repeated to RGB,
as in the paper's SVHN -> MNIST) and C = 1 for MNIST <-> USPS, or when a colour source is made
grey (``source_grey``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from unitlab.data.digit_geometry import normalise_size
from unitlab.data.digits import LOADERS, MNIST_SOURCES, DigitData
from unitlab.data.paths import data_root
from unitlab.data.printed_digits import GENERATOR_VERSION, printed_digits
from unitlab.data.svhn import load_svhn

Domain = Literal["mnist", "usps", "printed", "svhn"]

SIZE = 32  # the digit tasks' resolution (the authors' code and CoGAN's)
SOURCES = ("mnist", "usps", "printed", "svhn")
# Targets need a labelled test set to be scored on; printed digits are a stand-in source only,
# and the paper adapts *to* MNIST from SVHN, never the other way.
TARGETS = ("mnist", "usps")
COLOUR = frozenset({"printed", "svhn"})
NAMES = {"mnist": "MNIST", "usps": "USPS", "printed": "printed digits", "svhn": "SVHN"}

MNIST_EVAL = 2_000  # MNIST test images held out for evaluation when MNIST train is missing
# The protocol line of a size-normalised split.
NORMALISED = (
    "size-normalised: every MNIST and USPS image (training and evaluation alike) centred on its "
    "ink's bounding box, the box's longer side scaled to 20/28 of the frame"
)
# The protocol line of a split whose colour source was made grey.
SOURCE_GREY = (
    "source grey: each colour source image turned to luma and stretched to span [-1, 1] "
    "(its darkest pixel -1, its brightest +1); the target stays as it is, one channel"
)
PRINTED_TRAIN = 20_000  # printed source digits: ~7 s to generate, 250 MB as float RGB


# --------------------------------------------------------------------------------------------
# The parts of a split.


@dataclass(frozen=True, repr=False)
class Images:
    """Unlabelled images: float32 (N, C, 32, 32) in [-1, 1], rows ``indices`` of ``origin``.

    Deliberately holds no labels (a target's training set); ``origin`` and ``indices`` let
    ``AdaptationSplit`` prove that no evaluation image is among them. A negative index ``~r``
    (= -r - 1) marks an image derived from row ``r`` (an inverted copy): see :meth:`rows`.
    """

    images: torch.Tensor
    origin: str
    indices: torch.Tensor

    def __post_init__(self) -> None:
        x, idx = self.images, self.indices
        if x.dtype != torch.float32 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images must be float32 (N, 1 or 3, H, W), got {x.dtype} {x.shape}")
        if idx.dtype != torch.int64 or idx.shape != x.shape[:1]:
            raise ValueError(f"indices must be int64 ({len(x)},), got {idx.dtype} {idx.shape}")
        if len(torch.unique(idx)) != len(idx):
            raise ValueError(f"indices into {self.origin} repeat")

    def __len__(self) -> int:
        return len(self.images)

    def rows(self) -> np.ndarray:
        """The row of ``origin`` each image was made from: ``indices`` with ``~r`` read as ``r``."""
        idx = self.indices.numpy()
        return np.where(idx < 0, ~idx, idx)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"{kind}(n={len(self)}, channels={self.channels}, origin={self.origin!r})"

    def dataset(self) -> TensorDataset:
        """A ``Dataset`` of 1-tuples ``(image,)``, for a ``DataLoader``."""
        return TensorDataset(self.images)


@dataclass(frozen=True, repr=False)
class LabeledImages(Images):
    """Images with their digits (int64 0..9): a source's training set, or a target's
    evaluation set (whose labels may only be used to measure accuracy)."""

    labels: torch.Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        y = self.labels
        if y.dtype != torch.int64 or y.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 ({len(self)},), got {y.dtype} {y.shape}")

    def dataset(self) -> TensorDataset:
        """A ``Dataset`` of ``(image, label)`` pairs."""
        return TensorDataset(self.images, self.labels)


@dataclass(frozen=True)
class AdaptationSplit:
    """A domain-adaptation task: what trains (``source_train`` with labels, ``target_train``
    without) and what is scored (``target_eval``), plus a readable ``protocol``.

    Construction checks the promises the numbers rest on: the target's training part carries no
    labels, every part has the same channel count, and no evaluation image (same origin, same
    row) is in a training part. A ``ValueError`` / ``TypeError`` otherwise, also for hand-built
    splits.
    """

    source: str
    target: str
    source_train: LabeledImages
    target_train: Images
    target_eval: LabeledImages
    protocol: str
    # Whether every MNIST / USPS image was size-normalised (``adaptation_split(normalise=...)``).
    normalised: bool = False
    # Whether target_train ends with inverted copies of its images (``target_inverted=...``).
    target_inverted: bool = False
    # Whether a colour source was made grey (``source_grey=...``; False for a grey source).
    source_grey: bool = False

    def __post_init__(self) -> None:
        if type(self.target_train) is not Images:  # a LabeledImages would leak target labels
            raise TypeError(
                f"target_train must be Images (no labels), got {type(self.target_train).__name__}"
            )
        parts = {
            "source_train": self.source_train,
            "target_train": self.target_train,
            "target_eval": self.target_eval,
        }
        channels = {name: part.channels for name, part in parts.items()}
        if len(set(channels.values())) != 1:
            raise ValueError(f"parts differ in channel count: {channels}")
        evaluation = self.target_eval
        for name in ("source_train", "target_train"):
            part = parts[name]
            if part.origin != evaluation.origin:
                continue
            shared = np.intersect1d(part.rows(), evaluation.rows())
            if shared.size:
                raise ValueError(
                    f"{shared.size} evaluation images of {evaluation.origin} are also in {name} "
                    f"(first: row {shared[0]}); evaluation images must never be trained on"
                )

    @property
    def channels(self) -> int:
        return self.source_train.channels


# --------------------------------------------------------------------------------------------
# Building splits.


def stratified_holdout(
    labels: torch.Tensor, n_eval: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows 0..N-1 split into disjoint sorted ``(train, eval)`` index tensors, ``n_eval`` in eval.

    Stratified, so that each digit is held out in proportion (within one image) and the
    evaluation accuracy weighs the classes as the whole split does: rows are shuffled with
    ``seed``, grouped by class (stable sort), and every (N / n_eval)-th row is held out.
    Deterministic in ``(labels, n_eval, seed)``.
    """
    y = labels.numpy()
    n = len(y)
    if not 0 < n_eval < n:
        raise ValueError(
            f"n_eval must be in 1..{n - 1} to leave images on both sides, got {n_eval}"
        )
    order = np.random.default_rng(seed).permutation(n)
    order = order[np.argsort(y[order], kind="stable")]  # grouped by class, random within
    k = np.arange(n)
    held = (k + 1) * n_eval // n > k * n_eval // n  # exactly n_eval rows, evenly spaced
    train, evaluation = np.sort(order[~held]), np.sort(order[held])
    return torch.from_numpy(train), torch.from_numpy(evaluation)


def mnist_train_present(root: Path | None = None) -> bool:
    """Whether both MNIST train files are under ``root`` (default ``data_root()``).

    Only files on disk count, never a possible download: which protocol a run follows must not
    depend on whether the network happened to be up.
    """
    base = data_root() if root is None else Path(root)
    return all(source.path(base).is_file() for source in MNIST_SOURCES["train"])


def rows_digest(rows: torch.Tensor) -> str:
    """A short fingerprint of a set of row numbers, printed in the protocol so that two runs
    can tell at a glance whether they were scored on the same held-out images."""
    sorted_rows = np.sort(rows.numpy()).astype("<i8")
    return hashlib.sha256(sorted_rows.tobytes()).hexdigest()[:12]


@dataclass(frozen=True)
class _Context:
    """What every part of one split is built with."""

    direction: str
    root: Path | None
    seed: int
    channels: int
    full_mnist: bool
    download: bool
    verify: bool
    normalise: bool
    source_grey: bool

    def load(self, domain: str, split: str) -> DigitData:
        loader = {**LOADERS, "svhn": load_svhn}[domain]
        try:
            return loader(split, self.root, self.download, verify=self.verify)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{self.direction} needs the {NAMES[domain]} {split} split: {err}"
            ) from err

    def labeled(self, data: DigitData, origin: str, rows: torch.Tensor) -> LabeledImages:
        # Rows first, as uint8: 4x fewer bytes copied, and a grey image repeated to 3 channels
        # stays an expanded view (indexing after the expand would copy all three channels).
        grey = data.images.ndim == 3  # MNIST, USPS; printed digits and SVHN are RGB
        part = DigitData(data.images[rows], data.labels[rows])
        x, y = part.as_tensors(SIZE, 1 if grey else 3)
        if grey and self.normalise:
            x = normalise_size(x)
        if not grey and self.source_grey:
            x = stretched_luma(x)
        return LabeledImages(x.expand(-1, self.channels, -1, -1), origin, rows, y)

    def unlabeled(self, data: DigitData, origin: str, rows: torch.Tensor) -> Images:
        part = self.labeled(data, origin, rows)
        return Images(part.images, origin, rows)  # the labels go no further than here


def with_inverted_copies(part: Images) -> Images:
    """``part`` followed by its inverted copies (255 - x on uint8, i.e. -x on [-1, 1]).

    The authors' SVHN -> MNIST recipe: MNIST is white on black, SVHN digits are either, so the
    target is doubled with black-on-white copies. Copy ``i`` is image ``i`` inverted, recorded
    with index ``~r`` (= -r - 1) for row ``r``: unique, and traced back to ``r`` by the leak check.
    Colour parts that are repeated grey (3 equal channels, an expanded view) stay expanded views,
    so the doubled set costs one grey copy, not three.
    """
    x = part.images
    base = x[:, :1] if x.stride(1) == 0 or x.shape[1] == 1 else x  # grey: invert one channel
    doubled = torch.cat([base, -base]).expand(-1, x.shape[1], -1, -1)
    return Images(doubled, part.origin, torch.cat([part.indices, ~part.indices]))


def stretched_luma(x: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) in [-1, 1] -> grey (N, 1, H, W): luma (ITU-R 601 weights), each image
    stretched so that its darkest pixel is -1 and its brightest +1.

    Why: a colour digit on a cluttered background costs a small VAE more to reconstruct than its
    background colour is worth, so its code spends itself on colour and never encodes the digit
    (docs/results.md, trials 45-47). Luma keeps the strokes; the per-image stretch gives pale
    and dark, light-on-dark and dark-on-light digits alike the full range, as MNIST's have.
    A flat image (max = min) becomes all -1 instead of dividing by zero.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"stretched_luma takes RGB images (N, 3, H, W), got {tuple(x.shape)}")
    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = (x * weights).sum(1, keepdim=True)
    low = luma.amin((2, 3), keepdim=True)
    span = (luma.amax((2, 3), keepdim=True) - low).clamp_min(1e-6)
    return ((luma - low) / span * 2 - 1).clamp(-1, 1)


def _all(data: DigitData) -> torch.Tensor:
    return torch.arange(len(data))


def _source(domain: str, ctx: _Context, printed_n: int) -> tuple[LabeledImages, str]:
    """The labelled source training set, and a line saying what it is."""
    if domain == "printed":
        data = printed_digits(printed_n, ctx.seed)
        origin = f"printed digits (seed {ctx.seed})"
        note = (
            f"{printed_n:,} printed digits, printed_digits(n={printed_n}, seed={ctx.seed}), "
            f"generator v{GENERATOR_VERSION}, labels used"
        )
    elif domain == "mnist" and not ctx.full_mnist:
        data, origin = ctx.load("mnist", "test"), "MNIST test"
        note = (
            f"MNIST *test* split, all {len(data):,} images with labels (the MNIST train split "
            "is not available, so the test split stands in for it)"
        )
    else:
        split = "train"
        data, origin = ctx.load(domain, split), f"{NAMES[domain]} {split}"
        note = f"{origin}, all {len(data):,} images with labels"
        if domain == "svhn":
            note += " (the authors' run trained on SVHN extra, 531,131 images)"
    return ctx.labeled(data, origin, _all(data)), note


def _target(domain: str, ctx: _Context, mnist_eval: int) -> tuple[Images, LabeledImages, list[str]]:
    """The unlabelled target training set, the evaluation set, and a line on each."""
    if domain == "mnist" and not ctx.full_mnist:
        data, origin = ctx.load("mnist", "test"), "MNIST test"
        train_rows, eval_rows = stratified_holdout(data.labels, mnist_eval, ctx.seed)
        train = ctx.unlabeled(data, origin, train_rows)
        evaluation = ctx.labeled(data, origin, eval_rows)
        how = f"of the MNIST test split, class-stratified, seed {ctx.seed}"
        notes = [
            f"{len(train):,} images {how}, labels dropped (the MNIST train split is not available)",
            f"the other {len(evaluation):,} images {how} (rows digest "
            f"{rows_digest(eval_rows)}), disjoint from the training images",
        ]
        return train, evaluation, notes
    train_data = ctx.load(domain, "train")
    eval_data = ctx.load(domain, "test")
    name = NAMES[domain]
    train = ctx.unlabeled(train_data, f"{name} train", _all(train_data))
    evaluation = ctx.labeled(eval_data, f"{name} test", _all(eval_data))
    notes = [
        f"{name} train, all {len(train):,} images, labels dropped",
        f"{name} test, all {len(evaluation):,} images",
    ]
    return train, evaluation, notes


def adaptation_split(
    source: Domain,
    target: Literal["mnist", "usps"],
    root: Path | None = None,
    seed: int = 0,
    *,
    printed_n: int = PRINTED_TRAIN,
    mnist_eval: int = MNIST_EVAL,
    full_mnist: bool | None = None,
    download: bool = True,
    verify: bool = True,
    normalise: bool = False,
    target_inverted: bool = False,
    source_grey: bool = False,
) -> AdaptationSplit:
    """The data of the ``source`` -> ``target`` adaptation task (see the module docstring).

    ``source``: "mnist", "usps", "printed" or "svhn"; ``target``: "mnist" or "usps".
    ``root``: the data folder (default ``data_root()``). ``seed`` picks the MNIST test holdout
    and the printed digits; keep it fixed when comparing methods, so they are scored on the same
    images. ``printed_n``: how many printed source digits. ``mnist_eval``: MNIST test images held
    out when the train split is missing. ``full_mnist``: None uses MNIST train if its files are
    under ``root``; True requires it (downloading it if allowed); False always splits MNIST test,
    to reproduce CI's protocol anywhere. ``download`` / ``verify``: as for the loaders.
    ``normalise``: size-normalise every grey digit (MNIST, USPS; training and evaluation images
    alike) with ``digit_geometry.normalise_size``, which takes away the two datasets' different
    framing conventions; colour sources keep their framing. ``target_inverted``: append an
    inverted copy of every target *training* image (:func:`with_inverted_copies`; the authors'
    SVHN -> MNIST recipe); the evaluation images are never inverted or doubled.
    ``source_grey``: turn a colour source (printed digits, SVHN) into one channel of stretched
    luma (:func:`stretched_luma`), so that every part is grey; a grey source is left as it is.

    Raises ``ValueError`` for unknown names or ``source == target``, ``FileNotFoundError``
    naming the missing file (and where to get it) when a dataset is not there.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if source == target:
        raise ValueError(f"source and target are both {source!r}: nothing to adapt")
    if "mnist" in (source, target) and full_mnist is None:
        full_mnist = mnist_train_present(root)
    direction = f"{NAMES[source]} -> {NAMES[target]}"
    greyed = source_grey and source in COLOUR
    ctx = _Context(
        direction,
        root,
        seed,
        channels=3 if source in COLOUR and not greyed else 1,
        full_mnist=bool(full_mnist),
        download=download,
        verify=verify,
        normalise=normalise,
        source_grey=greyed,
    )
    source_train, source_note = _source(source, ctx, printed_n)
    target_train, target_eval, (train_note, eval_note) = _target(target, ctx, mnist_eval)
    if target_inverted:
        n = len(target_train)
        target_train = with_inverted_copies(target_train)
        train_note += (
            f", followed by their {n:,} inverted copies (255 - x; copy of row r recorded as ~r)"
        )
    # Every target is grey: with a colour source it is repeated to RGB, as in the paper.
    rgb = " (the grey target repeated to RGB)" if ctx.channels == 3 else ""
    protocol = "\n".join(
        [
            f"{direction}, seed {seed}, data root {data_root() if root is None else root}: "
            f"float32 {ctx.channels}x{SIZE}x{SIZE} in [-1, 1]{rgb}",
            *([NORMALISED] if normalise else []),
            *([SOURCE_GREY] if greyed else []),
            f"source train (labelled): {source_note}",
            f"target train (unlabelled): {train_note}",
            f"target eval (labels only to measure accuracy, never trained on): {eval_note}",
        ]
    )
    return AdaptationSplit(
        source,
        target,
        source_train,
        target_train,
        target_eval,
        protocol,
        normalised=normalise,
        target_inverted=target_inverted,
        source_grey=greyed,
    )
