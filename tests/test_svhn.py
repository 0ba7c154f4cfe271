"""SVHN loader on small .mat files in the official layout, and colour ``DigitData``.

SVHN itself is not in ../shared/data: every test writes its own files into ``tmp_path`` with
``scipy.io.savemat`` (those tests skip where scipy, an optional dependency, is missing).
Nothing reaches the network: downloads are served from ``tmp_path`` through ``file://`` URLs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from unitlab.data import svhn
from unitlab.data.digits import DigitData, Source, to_model_range
from unitlab.data.download import ChecksumError
from unitlab.data.svhn import load_svhn
from unitlab.images import LUMA

needs_scipy = pytest.mark.skipif(
    importlib.util.find_spec("scipy") is None, reason="scipy (unitlab[svhn]) is not installed"
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, and no writes outside tmp_path (the default data root and cache move there)."""
    monkeypatch.setenv("UNITLAB_OFFLINE", "1")
    monkeypatch.setenv("UNITLAB_DATA", str(tmp_path / "data_root"))
    monkeypatch.setenv("UNITLAB_CACHE", str(tmp_path / "cache"))


def svhn_arrays(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Official layout: X uint8 (32, 32, 3, N), y uint8 (N, 1) with labels 1..10 (10 = digit 0)."""
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)
    return x, y


def write_svhn(
    root: Path, split: str = "test", *, compress: bool = False, **arrays: np.ndarray
) -> Path:
    """Write ``<root>/svhn/<split>_32x32.mat`` holding ``arrays`` (default: ``svhn_arrays()``),
    optionally zlib-compressed as MATLAB's v7 files are."""
    import scipy.io

    x, y = svhn_arrays()
    path = root / "svhn" / f"{split}_32x32.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, arrays or {"X": x, "y": y}, do_compression=compress)
    return path


# ------------------------------------------------------------------------------------------
# Reading files


@needs_scipy
@pytest.mark.parametrize("compress", [False, True])
def test_svhn_layout_and_labels(tmp_path: Path, compress: bool) -> None:
    x, y = svhn_arrays()
    write_svhn(tmp_path, compress=compress)
    data = load_svhn("test", tmp_path, download=False, verify=False)
    assert data.images.shape == (12, 32, 32, 3) and data.images.dtype == torch.uint8
    assert data.channels == 3 and repr(data) == "DigitData(n=12, size=32x32, rgb)"
    # Image i is X[:, :, :, i]: rows, columns, RGB.
    assert np.array_equal(data.images[5].numpy(), x[:, :, :, 5])
    assert data.images.is_contiguous()
    # 10 means the digit 0; 1..9 stay.
    assert data.labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert data.labels.dtype == torch.int64


@needs_scipy
def test_svhn_as_tensors(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    data = load_svhn("test", tmp_path, download=False, verify=False)
    x3, y = data.as_tensors(size=32, channels=3)
    assert x3.shape == (12, 3, 32, 32) and x3.dtype == torch.float32
    assert x3.min() >= -1 and x3.max() <= 1
    expected = data.images.permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(x3, expected)
    assert x3.is_contiguous()  # not a channels-last view: models may .view() it
    assert torch.equal(y, data.labels)
    x1, _ = data.as_tensors(size=16, channels=1)
    assert x1.shape == (12, 1, 16, 16) and x1.min() >= -1 and x1.max() <= 1
    image, label = data.dataset(size=32, channels=3)[3]
    assert image.shape == (3, 32, 32) and label == 4


@needs_scipy
def test_svhn_float_labels_accepted(tmp_path: Path) -> None:
    x, y = svhn_arrays(3)
    write_svhn(tmp_path, X=x, y=y.astype(np.float64))  # MATLAB's default type
    data = load_svhn("test", tmp_path, download=False, verify=False)
    assert data.labels.tolist() == [1, 2, 3]


@needs_scipy
def test_svhn_checksum_mismatch(tmp_path: Path) -> None:
    path = write_svhn(tmp_path)
    with pytest.raises(ChecksumError) as info:
        load_svhn("test", tmp_path, download=False)  # verify=True by default
    message = str(info.value)
    assert str(path) in message and "eb5a983be6a315427106f1b7ff5ec6fd" in message
    assert hashlib.md5(path.read_bytes()).hexdigest() in message


@needs_scipy
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("keep", [0, 60, 127, 500, -10])
def test_svhn_truncated_file(tmp_path: Path, keep: int, compress: bool) -> None:
    path = write_svhn(tmp_path, compress=compress)
    path.write_bytes(path.read_bytes()[:keep])
    # verify=True: a damaged file is reported as corrupt, the clearer message, not as a
    # checksum mismatch.
    with pytest.raises(ValueError, match="corrupt or unsupported .mat file") as info:
        load_svhn("test", tmp_path, download=False)
    assert str(path) in str(info.value) and not isinstance(info.value, ChecksumError)


@needs_scipy
def test_svhn_damaged_compressed_data(tmp_path: Path) -> None:
    path = write_svhn(tmp_path, compress=True)
    raw = bytearray(path.read_bytes())
    raw[300:320] = b"\xff" * 20  # inside X's zlib stream: its check fails
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt.*error") as info:
        load_svhn("test", tmp_path, download=False)
    assert str(path) in str(info.value)


@needs_scipy
def test_svhn_not_a_mat_file(tmp_path: Path) -> None:
    path = tmp_path / "svhn" / "train_32x32.mat"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<html>404 Not Found</html>" * 20)  # what a bad mirror serves
    with pytest.raises(ValueError, match="corrupt or unsupported .mat file") as info:
        load_svhn("train", tmp_path, download=False, verify=False)
    assert str(path) in str(info.value)


@needs_scipy
@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"X": svhn_arrays()[0]}, "no variable y"),
        ({"y": svhn_arrays()[1]}, "no variable X"),
        ({"images": svhn_arrays()[0]}, "no variable X or y"),
        ({"X": np.zeros((28, 28, 3, 12), np.uint8), "y": svhn_arrays()[1]}, r"X must be"),
        ({"X": np.zeros((12, 32, 32, 3), np.uint8), "y": svhn_arrays()[1]}, r"X must be"),
        ({"X": np.zeros((32, 32, 3, 12)), "y": svhn_arrays()[1]}, r"X must be uint8.*float64"),
        ({"X": svhn_arrays()[0], "y": np.ones((11, 1), np.uint8)}, r"y must have shape \(12, 1\)"),
        ({"X": svhn_arrays()[0], "y": np.ones((12, 2), np.uint8)}, r"y must have shape"),
        ({"X": svhn_arrays()[0], "y": np.zeros((12, 1), np.uint8)}, "label 0 is not in 1..10"),
        ({"X": svhn_arrays()[0], "y": np.full((12, 1), 11.0)}, "label 11.0 is not in 1..10"),
        ({"X": svhn_arrays()[0], "y": np.full((12, 1), 2.5)}, "label 2.5 is not in 1..10"),
    ],
)
def test_svhn_bad_contents(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = write_svhn(tmp_path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_svhn("test", tmp_path, download=False, verify=False)
    assert str(path) in str(info.value)


@needs_scipy
def test_svhn_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "svhn" / "extra_32x32.mat"
    with pytest.raises(FileNotFoundError) as info:
        load_svhn("extra", tmp_path, download=False)
    assert str(path) in str(info.value)
    assert "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat" in str(info.value)
    with pytest.raises(FileNotFoundError, match="UNITLAB_OFFLINE"):
        load_svhn("extra", tmp_path)  # download=True, but the environment forbids it


def test_svhn_bad_split() -> None:
    with pytest.raises(ValueError, match="'valid'"):
        load_svhn("valid")  # type: ignore[arg-type]


def test_svhn_without_scipy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # makes `import scipy.io` fail
    with pytest.raises(ImportError, match=r"pip install 'unitlab\[svhn\]'"):
        load_svhn("test", tmp_path, download=False)  # before any file is looked for


# ------------------------------------------------------------------------------------------
# Downloads (file:// URLs in tmp_path)


def serve_svhn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, md5: str | None = None) -> Path:
    """Point the SVHN test registry at a file:// copy in tmp_path/server; allow downloads.

    ``md5``: the accepted MD5, by default the served file's own.
    """
    served = write_svhn(tmp_path / "server")
    accepted = md5 or hashlib.md5(served.read_bytes()).hexdigest()
    source = Source("svhn/test_32x32.mat", (served.as_uri(),), frozenset({accepted}))
    monkeypatch.setitem(svhn.SVHN_SOURCES, "test", source)
    monkeypatch.delenv("UNITLAB_OFFLINE")
    return served


@needs_scipy
def test_svhn_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served = serve_svhn(monkeypatch, tmp_path)
    data = load_svhn("test", tmp_path / "root")
    assert len(data) == 12
    assert (tmp_path / "root" / "svhn" / "test_32x32.mat").read_bytes() == served.read_bytes()


@needs_scipy
def test_svhn_download_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    serve_svhn(monkeypatch, tmp_path, md5="0" * 32)
    with pytest.raises(ChecksumError, match="0" * 32):
        load_svhn("test", tmp_path / "root")
    folder = tmp_path / "root" / "svhn"
    assert not (folder / "test_32x32.mat").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------
# Colour DigitData and the model's range


def test_digit_data_rgb() -> None:
    rgb = DigitData(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), torch.tensor([1, 2]))
    assert rgb.channels == 3 and repr(rgb) == "DigitData(n=2, size=4x4, rgb)"
    grey = DigitData(torch.zeros(2, 4, 4, dtype=torch.uint8), torch.tensor([1, 2]))
    assert grey.channels == 1 and repr(grey) == "DigitData(n=2, size=4x4)"
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        DigitData(torch.zeros(2, 4, 4, 2, dtype=torch.uint8), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="uint8"):
        DigitData(torch.zeros(2, 3, 4, 4, 3, dtype=torch.uint8), torch.tensor([1, 2]))


def test_to_model_range_rgb() -> None:
    # One image: red, green, blue, white pixels in a row.
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    images = torch.tensor([[colours]], dtype=torch.uint8)  # (1, 1, 4, 3)
    x3 = to_model_range(images, size=None, channels=3)
    assert x3.shape == (1, 3, 1, 4)
    assert torch.equal(x3[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # red stays red
    x1 = to_model_range(images, size=None, channels=1)
    expected = torch.tensor([*LUMA, 1.0]) * 2 - 1  # luma on [0, 1], mapped to [-1, 1]
    torch.testing.assert_close(x1[0, 0, 0], expected)
    resized = to_model_range(images.expand(2, 4, 4, 3), size=8, channels=1)
    assert resized.shape == (2, 1, 8, 8) and resized.min() >= -1 and resized.max() <= 1
