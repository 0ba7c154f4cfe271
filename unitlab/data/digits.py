"""Real handwritten digits: MNIST (IDX, gzip) and USPS (LIBSVM text, bzip2).

The paper's domain-adaptation tasks (MNIST <-> USPS) need the standard splits, byte for byte, so
every file is checked against known MD5s before it is trusted, and every way a file can be broken
raises a ``ValueError`` naming the file (and for text, the line) instead of a shape error later.

Both datasets are held at native resolution as uint8 (0 = background, 255 = stroke, the MNIST
convention); ``DigitData.as_tensors`` makes the model's view of them: floats in [-1, 1], resized.
``DigitData`` also holds colour digits (SVHN, ``unitlab.data.svhn``; printed digits,
``unitlab.data.printed_digits``) as uint8 (N, H, W, 3), the package's channels-last storage.

Accepted checksums (a file passes if its own MD5 *or* the MD5 of its decompressed payload is
listed; see ``MNIST_SOURCES`` / ``USPS_SOURCES``):

- MNIST: the official ``.gz`` downloads, and the uncompressed IDX payloads. Payload MD5s matter
  because re-compressed copies (e.g. ``../shared/data/mnist``) carry other gzip headers, hence
  other file MD5s, around the identical IDX bytes.
- USPS: the official LIBSVM ``.bz2`` files (the MD5s torchvision checks), and the copies in
  ``../shared/data/usps``: the same 7,291 / 2,007 split written from another distribution, whose
  values agree with the official ones to 6 decimals (so identical after conversion to uint8), but
  whose bytes differ. USPS has no payload MD5 here: the two distributions' texts differ too.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from unitlab.data.download import (
    ChecksumError,
    Verifier,
    atomic_path,
    fetch,
    md5_bytes,
    md5_file,
)
from unitlab.data.paths import cache_dir, data_root
from unitlab.images import LUMA

Split = Literal["train", "test"]
_T = TypeVar("_T")
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Registries: where each file lives under the data root, where to get it, how to recognise it.


@dataclass(frozen=True)
class Source:
    """One file of a dataset; ``md5`` / ``payload_md5`` are the accepted file / content MD5s."""

    relpath: str
    urls: tuple[str, ...]
    md5: frozenset[str]
    payload_md5: frozenset[str] = frozenset()

    def path(self, root: Path) -> Path:
        return Path(root) / self.relpath


MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's mirror; the original is flaky
    "http://yann.lecun.com/exdb/mnist/",
)


def _mnist(name: str, gz_md5: str, payload_md5: str) -> Source:
    urls = tuple(mirror + name for mirror in MNIST_MIRRORS)
    return Source(f"mnist/{name}", urls, frozenset({gz_md5}), frozenset({payload_md5}))


# (images, labels) per split. gz MD5s: the official downloads (also torchvision's); payload MD5s:
# of the uncompressed IDX files, as published alongside them by several projects and checked
# here against ../shared/data/mnist for the test split.
MNIST_SOURCES: dict[str, tuple[Source, Source]] = {
    "train": (
        _mnist(
            "train-images-idx3-ubyte.gz",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "6bbc9ace898e44ae57da46a324031adb",
        ),
        _mnist(
            "train-labels-idx1-ubyte.gz",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "a25bea736e30d166cdddb491f175f624",
        ),
    ),
    "test": (
        _mnist(
            "t10k-images-idx3-ubyte.gz",
            "9fb629c4189551a2d022fa330f9573f3",
            "2646ac647ad5339dbf082846283269ea",
        ),
        _mnist(
            "t10k-labels-idx1-ubyte.gz",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "27ae3e4e09519cfbb04c329615203637",
        ),
    ),
}

USPS_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"

# file MD5s: {official LIBSVM download (torchvision's), ../shared/data copy}; see module docstring.
USPS_SOURCES: dict[str, Source] = {
    "train": Source(
        "usps/usps.bz2",
        (USPS_URL + "usps.bz2",),
        frozenset({"ec16c51db3855ca6c91edd34d0e9b197", "3500cd7803dd093f4d80a9d93488643d"}),
    ),
    "test": Source(
        "usps/usps.t.bz2",
        (USPS_URL + "usps.t.bz2",),
        frozenset({"8ea070ee2aca1ac39742fdd1ef5ed118", "c87ca67d78156c347030285fdb75540e"}),
    ),
}


# --------------------------------------------------------------------------------------------
# The container and the model's view of it.


@dataclass(frozen=True, repr=False)
class DigitData:
    """Digits at native resolution: ``images`` uint8 grey (N, H, W) or RGB (N, H, W, 3),
    ``labels`` int64 digits 0..9."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        rgb = self.images.ndim == 4 and self.images.shape[-1] == 3
        if self.images.dtype != torch.uint8 or not (self.images.ndim == 3 or rgb):
            raise ValueError(
                f"images must be uint8 (N, H, W) or (N, H, W, 3), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 ({len(self.images)},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        """1 for grey digits (MNIST, USPS), 3 for colour ones (SVHN, printed digits)."""
        return 1 if self.images.ndim == 3 else 3

    def __repr__(self) -> str:
        n, h, w = self.images.shape[:3]
        colour = ", rgb" if self.channels == 3 else ""
        return f"DigitData(n={n}, size={h}x{w}{colour})"

    def class_counts(self) -> list[int]:
        """Samples per digit 0..9."""
        return torch.bincount(self.labels, minlength=10).tolist()

    def as_tensors(
        self, size: int | None = 32, channels: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: x float32 (N, channels, size, size) in [-1, 1], y int64 digits."""
        return to_model_range(self.images, size, channels), self.labels

    def dataset(self, size: int | None = 32, channels: int = 1) -> TensorDataset:
        """A ``Dataset`` of ``(image, label)`` pairs in the model's range (see ``as_tensors``)."""
        return TensorDataset(*self.as_tensors(size, channels))


def to_model_range(images: torch.Tensor, size: int | None = 32, channels: int = 1) -> torch.Tensor:
    """uint8 grey (N, H, W) or RGB (N, H, W, 3) -> float32 (N, channels, size, size) in [-1, 1],
    the generator's tanh range.

    Resizing is bilinear with antialiasing (torchvision's ``Resize`` default), so shrinking does
    not alias and enlarging (MNIST 28 -> 32, USPS 16 -> 32) stays smooth. ``size=None`` keeps the
    native size. ``channels=3`` repeats a grey channel for RGB models (SVHN <-> MNIST) as an
    ``expand``ed view: no extra memory, but write to a ``.clone()`` if you must write in place.
    ``channels=1`` turns RGB into luma (ITU-R BT.601, as ``unitlab.images.load_image`` does).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if images.ndim == 3:
        x = images.unsqueeze(1).float()
    else:
        x = images.movedim(-1, 1).contiguous().float()  # copy as uint8: 4x fewer bytes
        if channels == 1:  # before resizing: a third of the work
            x = torch.einsum("nchw,c->nhw", x, x.new_tensor(LUMA)).unsqueeze(1)
    x = x.div_(127.5).sub_(1.0)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        x = x.clamp_(-1.0, 1.0)  # antialiasing filters can overshoot by a rounding error
    return x.expand(-1, channels, -1, -1)


# --------------------------------------------------------------------------------------------
# Reading and verifying files.

_DECOMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    ".gz": (gzip.decompress, "gzip"),
    ".bz2": (bz2.decompress, "bz2"),
}


def _decode(source: Source, path: Path, raw: bytes, verify: bool) -> bytes:
    """Decompress ``raw`` (the bytes of ``source``, named ``path`` in errors) and verify it.

    With ``verify``, the bytes are refused unless the file MD5 or the payload MD5 is accepted.
    Decompression comes first so that a damaged file is reported as corrupt, the clearer message.
    """
    decompress, kind = _DECOMPRESSORS[Path(source.relpath).suffix]
    try:
        payload = decompress(raw)
    # truncated: EOFError (gzip) / ValueError (bz2); bad header: OSError; bad stream: zlib.error
    except (EOFError, OSError, ValueError, zlib.error) as err:
        raise ValueError(
            f"{path}: corrupt {kind} file ({err}); delete it and download it again"
        ) from err
    if verify:
        _check_md5(source, path, raw, payload)
    return payload


def _check_md5(source: Source, path: Path, raw: bytes, payload: bytes) -> None:
    raw_md5 = md5_bytes(raw)
    if raw_md5 in source.md5:
        return
    payload_md5 = md5_bytes(payload)
    if payload_md5 in source.payload_md5:
        return
    actual = f"file MD5 {raw_md5}"
    if source.payload_md5:
        actual += f", payload MD5 {payload_md5}"
    raise ChecksumError(path, source.md5 | source.payload_md5, actual)


def _ensure(source: Source, root: Path | None, download: bool) -> Path:
    """The file's path under ``root``, downloading it first if it is missing and allowed.

    Downloads are always verified against the registry; ``verify=False`` in the loaders only
    concerns files already on disk (your own files in the official layout). A file known by its
    own MD5 is hashed in chunks; only one known by its payload's MD5 must be decoded (in memory).
    """
    path = source.path(data_root() if root is None else Path(root))

    def verify(candidate: Path) -> None:  # a temp file that will become ``path``
        _decode(source, path, candidate.read_bytes(), verify=True)

    checks: Verifier | frozenset[str] = verify if source.payload_md5 else source.md5
    return fetch(source.urls, path, checks, offline=None if download else True)


def _pick(options: dict[str, _T], key: str, what: str) -> _T:
    if key not in options:
        raise ValueError(f"{what} must be one of {sorted(options)}, got {key!r}")
    return options[key]


# --------------------------------------------------------------------------------------------
# MNIST: IDX files (big-endian header: magic, one uint32 per dimension; then uint8 data).

IDX_IMAGES, IDX_LABELS = 2051, 2049  # 0x0803: uint8, 3 dims; 0x0801: uint8, 1 dim


def parse_idx(payload: bytes, magic: int, path: Path | str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed uint8 IDX payload whose header must start with ``magic``."""
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(payload) < header:
        raise ValueError(f"{path}: {len(payload)} bytes, too short for an IDX header")
    found = int.from_bytes(payload[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found}, expected {magic}")
    dims = [int.from_bytes(payload[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1)]
    if len(payload) - header != int(np.prod(dims)):
        raise ValueError(
            f"{path}: size mismatch, header says {dims} = {int(np.prod(dims))} bytes of data, "
            f"file has {len(payload) - header}"
        )
    return np.frombuffer(payload, np.uint8, offset=header).reshape(dims).copy()


def load_mnist(
    split: Split, root: Path | None = None, download: bool = True, *, verify: bool = True
) -> DigitData:
    """MNIST ``train`` (60,000) or ``test`` (10,000) from ``<root>/mnist/*-ubyte.gz``.

    ``root`` defaults to ``data_root()``. A missing file is downloaded unless ``download=False``
    or ``UNITLAB_OFFLINE=1`` (then ``FileNotFoundError`` says where to get it). ``verify=False``
    skips the checksum check of files on disk, for your own files in the same layout.
    """
    sources = _pick(MNIST_SOURCES, split, "MNIST split")
    paths = [_ensure(source, root, download) for source in sources]
    images, labels = (
        parse_idx(_decode(source, path, path.read_bytes(), verify), magic, path)
        for source, path, magic in zip(sources, paths, (IDX_IMAGES, IDX_LABELS), strict=True)
    )
    if len(images) != len(labels):
        raise ValueError(
            f"{paths[0]} holds {len(images)} images but {paths[1]} {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{paths[1]}: label {labels.max()} is not a digit 0..9")
    return DigitData(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


# --------------------------------------------------------------------------------------------
# USPS: LIBSVM text, one sample a line: "<digit + 1> <index>:<value> ..." with 1-based indices
# into the row-major 16x16 image and values in [-1, 1] (-1 = background). Omitted features are 0,
# as in any LIBSVM file.

USPS_SIZE = 16
_CACHE_VERSION = 1  # bump when parsing changes, so stale caches are ignored


def parse_usps(text: str, path: Path | str = "<text>") -> tuple[np.ndarray, np.ndarray]:
    """LIBSVM USPS text -> (images uint8 (N, 16, 16), labels int64 digits 0..9).

    Values map to ``round((v + 1) / 2 * 255)``: background -1 -> 0 and strokes +1 -> 255, the
    MNIST polarity. (torchvision truncates instead of rounding; the difference is at most 1/255.)
    Any malformed line raises ``ValueError`` naming the file and the 1-based line number.
    """
    n_features = USPS_SIZE * USPS_SIZE
    rows: list[np.ndarray] = []
    labels: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.replace(":", " ").split()
        if not tokens:
            continue  # blank lines (e.g. a trailing newline) carry no sample
        where = f"{path}, line {lineno}"
        if len(tokens) % 2 == 0 or line.count(":") != len(tokens) // 2:
            raise ValueError(f"{where}: expected '<label> <index>:<value> ...'")
        if not tokens[0].isdigit() or not 1 <= int(tokens[0]) <= 10:
            raise ValueError(f"{where}: label {tokens[0]!r} is not in 1..10 (digit + 1)")
        try:
            pairs = np.array(tokens[1:], dtype=np.float64).reshape(-1, 2)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        index, value = pairs[:, 0], pairs[:, 1]
        if (
            np.any(index != np.round(index))
            or np.any(index < 1)
            or np.any(index > n_features)
            or np.any(np.diff(index) <= 0)
        ):
            raise ValueError(f"{where}: indices must be increasing integers in 1..{n_features}")
        if np.any(np.abs(value) > 1 + 1e-6):
            raise ValueError(f"{where}: values must lie in [-1, 1]")
        row = np.zeros(n_features)
        row[index.astype(np.int64) - 1] = value
        rows.append(row)
        labels.append(int(tokens[0]) - 1)
    values = np.array(rows).reshape(-1, USPS_SIZE, USPS_SIZE)
    images = np.rint((values + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    return images, np.array(labels, dtype=np.int64)


def _cache_file(source: Source, file_md5: str) -> Path:
    name = Path(source.relpath).name
    return cache_dir() / f"{name}-{file_md5}-v{_CACHE_VERSION}.npz"


def _load_cache(path: Path) -> DigitData | None:
    try:
        with np.load(path, allow_pickle=False) as cached:
            return DigitData(torch.from_numpy(cached["images"]), torch.from_numpy(cached["labels"]))
    except FileNotFoundError:
        return None
    except Exception as err:  # a damaged cache must never break loading: parse again
        log.warning("ignoring unreadable cache %s: %s", path, err)
        return None


def _save_cache(path: Path, data: DigitData) -> None:
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, images=data.images.numpy(), labels=data.labels.numpy())
    except OSError as err:  # read-only data root (shared data): caching is only an optimisation
        log.info("not caching %s: %s", path, err)


def load_usps(
    split: Split,
    root: Path | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    cache: bool = True,
) -> DigitData:
    """USPS ``train`` (7,291) or ``test`` (2,007) from ``<root>/usps/usps[.t].bz2``; 16x16.

    Arguments as for ``load_mnist``. Decoding the train file takes ~2.5 s on a slow CPU (bunzip2
    alone ~1 s), so with ``cache`` the arrays are kept in ``cache_dir()`` (never in the data root,
    which may be shared and read-only), keyed by the file's MD5 so an edited file is parsed
    afresh; an unwritable cache folder just means no caching. MNIST needs no cache (~0.1 s).
    """
    source = _pick(USPS_SOURCES, split, "USPS split")
    path = _ensure(source, root, download)
    file_md5 = md5_file(path)
    cache_path = _cache_file(source, file_md5)
    if cache and (not verify or file_md5 in source.md5):
        cached = _load_cache(cache_path)
        if cached is not None:
            return cached
    text = _decode(source, path, path.read_bytes(), verify).decode("ascii", errors="replace")
    images, labels = parse_usps(text, path)
    data = DigitData(torch.from_numpy(images), torch.from_numpy(labels))
    if cache:
        _save_cache(cache_path, data)
    return data


LOADERS: dict[str, Callable[..., DigitData]] = {"mnist": load_mnist, "usps": load_usps}
