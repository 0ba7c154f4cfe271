"""SVHN (Street View House Numbers, cropped digits): the source domain of SVHN -> MNIST.

The official files are MATLAB ``.mat`` files (``X``: uint8 (32, 32, 3, N), row x column x RGB x
image; ``y``: (N, 1) labels 1..10, where 10 stands for the digit 0). Reading them needs scipy,
an optional dependency (``pip install 'unitlab[svhn]'``) imported only when SVHN is loaded, so
the rest of the package does not pay for it.

Downloads, checksums and error messages work as for MNIST and USPS (``unitlab.data.digits``):
every file is checked against the official MD5 (unless ``verify=False``, for your own files in
the same layout), and every way a file can be broken raises an error naming the file.
No decoded-array cache: ``loadmat`` reads a train-sized file in ~2 s (plus ~0.7 s of MD5), and
a cache would double the disk space. ``extra`` briefly needs twice its 1.6 GB in memory.

The authors' SVHN -> MNIST run (``exps/unit/svhn2mnist.yaml``, NIPS code) trains on the ``extra``
split (531,131 images, 1.6 GB as uint8) and tests on MNIST.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from unitlab.data.digits import DigitData, Source, _ensure, _pick
from unitlab.data.download import check_md5

SvhnSplit = Literal["train", "test", "extra"]

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_SIZE = 32


def _svhn(name: str, md5: str) -> Source:
    return Source(f"svhn/{name}", (SVHN_URL + name,), frozenset({md5}))


# The official MD5s (also torchvision's).
SVHN_SOURCES: dict[str, Source] = {
    "train": _svhn("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),  # 73,257 digits
    "test": _svhn("test_32x32.mat", "eb5a983be6a315427106f1b7ff5ec6fd"),  # 26,032
    "extra": _svhn("extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7"),  # 531,131
}


def _loadmat() -> Any:
    """``scipy.io.loadmat``, or an ImportError that says how to get it."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError(
            "reading SVHN's .mat files needs scipy: pip install 'unitlab[svhn]'"
        ) from err
    return loadmat


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN ``.mat`` file -> (images uint8 (N, 32, 32, 3), labels int64 digits 0..9).

    Labels 10 become 0. A file that is not a readable MATLAB v5 file, lacks ``X`` or ``y``, or
    holds arrays of other shapes, types or label values raises ``ValueError`` naming it.
    """
    loadmat = _loadmat()
    path = Path(path)
    with open(path, "rb") as f:  # outside the try: a permission error is not a corrupt file
        try:
            mat = loadmat(f, variable_names=("X", "y"))
        except MemoryError:
            raise
        # scipy signals broken files with many types (MatReadError, OSError, ValueError,
        # TypeError, IndexError, zlib.error, NotImplementedError for v7.3 HDF5 files, ...).
        except Exception as err:
            raise ValueError(
                f"{path}: corrupt or unsupported .mat file ({type(err).__name__}: {err}); "
                "delete it and download it again"
            ) from err
    missing = [key for key in ("X", "y") if key not in mat]
    if missing:
        raise ValueError(f"{path}: no variable {' or '.join(missing)} (SVHN files hold X and y)")
    x, y = mat["X"], mat["y"]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (SVHN_SIZE, SVHN_SIZE, 3):
        raise ValueError(f"{path}: X must be uint8 (32, 32, 3, N), got {x.dtype} {x.shape}")
    n = x.shape[3]
    if y.shape not in ((n, 1), (n,)):
        raise ValueError(f"{path}: y must have shape ({n}, 1) to match X, got {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise ValueError(f"{path}: y must hold numbers, got {y.dtype}")
    labels = y.reshape(-1)
    bad = (labels < 1) | (labels > 10) | (labels != np.round(labels))
    if bad.any():
        raise ValueError(f"{path}: label {labels[bad][0]} is not in 1..10 (10 means digit 0)")
    labels = labels.astype(np.int64) % 10
    # (H, W, C, N) -> (N, H, W, C), the package's channels-last storage; one copy.
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels


def load_svhn(
    split: SvhnSplit, root: Path | None = None, download: bool = True, *, verify: bool = True
) -> DigitData:
    """SVHN ``train`` (73,257), ``test`` (26,032) or ``extra`` (531,131) from
    ``<root>/svhn/<split>_32x32.mat``: colour digits, uint8 (N, 32, 32, 3).

    Arguments as for ``unitlab.data.digits.load_mnist``: ``root`` defaults to ``data_root()``;
    a missing file is downloaded unless ``download=False`` or ``UNITLAB_OFFLINE=1`` (then
    ``FileNotFoundError`` says where to get it); ``verify=False`` skips the checksum of files on
    disk. scipy is checked first, so nobody downloads a file they cannot read.
    """
    source = _pick(SVHN_SOURCES, split, "SVHN split")
    _loadmat()
    path = _ensure(source, root, download)
    # Read before hashing, as the other loaders decompress first: a damaged file is reported
    # as corrupt, the clearer message, rather than as a checksum mismatch.
    images, labels = read_svhn_mat(path)
    if verify:
        check_md5(path, source.md5)
    return DigitData(torch.from_numpy(images), torch.from_numpy(labels))
