"""Digit loaders: the real files in ../shared/data, and every way a file can be broken.

Nothing here reaches the network: ``UNITLAB_OFFLINE=1`` is set for every test, and the download
tests serve small files written in ``tmp_path`` through ``file://`` URLs.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from unitlab.data import digits
from unitlab.data.digits import (
    IDX_IMAGES,
    IDX_LABELS,
    DigitData,
    Source,
    load_mnist,
    load_usps,
    parse_usps,
    to_model_range,
)
from unitlab.data.download import ChecksumError, DownloadError, fetch
from unitlab.data.paths import cache_dir, data_root

# Verified independently of the loaders: MNIST test is the well-known histogram; the USPS counts
# come from the data README (train) and from `bzcat usps.t.bz2 | cut -d' ' -f1 | sort | uniq -c`.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
USPS_TRAIN_COUNTS = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
USPS_TEST_COUNTS = [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, and no writes outside tmp_path (the default data root and cache move there)."""
    monkeypatch.setenv("UNITLAB_OFFLINE", "1")
    monkeypatch.setenv("UNITLAB_DATA", str(tmp_path / "data_root"))
    monkeypatch.setenv("UNITLAB_CACHE", str(tmp_path / "cache"))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx(array: np.ndarray, magic: int) -> bytes:
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n: int = 3, images: bytes | None = None, labels: bytes | None = None):
    """Write tiny MNIST test files in the official layout; returns (images, labels) arrays."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = np.arange(n, dtype=np.uint8) % 10
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(idx(x, IDX_IMAGES) if images is None else images)
    )
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx(y, IDX_LABELS) if labels is None else labels)
    )
    return x, y


def usps_line(label: int, values: list[float]) -> str:
    return f"{label} " + " ".join(f"{i}:{v:.6f}" for i, v in enumerate(values, start=1))


def write_usps(root: Path, lines: list[str], name: str = "usps.t.bz2") -> Path:
    path = root / "usps" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    return path


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, DigitData]:
    # cache=False: module fixtures run outside the per-test isolation, so write nothing.
    return {
        "mnist_test": load_mnist("test", shared_data, download=False),
        "usps_train": load_usps("train", shared_data, download=False, cache=False),
        "usps_test": load_usps("test", shared_data, download=False, cache=False),
    }


@pytest.mark.parametrize(
    "name, counts, size",
    [
        ("mnist_test", MNIST_TEST_COUNTS, 28),
        ("usps_train", USPS_TRAIN_COUNTS, 16),
        ("usps_test", USPS_TEST_COUNTS, 16),
    ],
)
def test_real_data(real: dict[str, DigitData], name: str, counts: list[int], size: int) -> None:
    data = real[name]
    assert len(data) == sum(counts)
    assert data.class_counts() == counts
    assert data.images.shape == (sum(counts), size, size)
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert data.images.min() == 0 and data.images.max() == 255
    # Same polarity for both domains: background black (0), so most pixels are 0.
    assert (data.images == 0).float().mean() > 0.4


@pytest.mark.parametrize("name", ["mnist_test", "usps_test"])
def test_real_as_tensors(real: dict[str, DigitData], name: str) -> None:
    data = real[name]
    x, y = data.as_tensors(size=32, channels=1)
    assert x.shape == (len(data), 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert torch.equal(y, data.labels)
    x3, _ = data.as_tensors(size=32, channels=3)
    assert x3.shape == (len(data), 3, 32, 32) and torch.equal(x3[:, 2], x[:, 0])
    image, label = data.dataset()[0]
    assert image.shape == (1, 32, 32) and label == data.labels[0]


def test_unknown_split_is_named(shared_data: Path) -> None:
    with pytest.raises(ValueError, match="'valid'"):
        load_mnist("valid", shared_data)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Paths


def test_data_root_and_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert data_root() == tmp_path / "data_root" and cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("UNITLAB_DATA")
    monkeypatch.delenv("UNITLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "unitlab"
    assert cache_dir() == tmp_path / "xdg" / "unitlab" / "cache"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "unitlab"
    # The cache never follows UNITLAB_DATA, which may be a shared read-only folder.
    monkeypatch.setenv("UNITLAB_DATA", str(tmp_path / "shared"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "unitlab" / "cache"


# ------------------------------------------------------------------------------------------
# fetch


@pytest.fixture
def served(tmp_path: Path) -> tuple[str, bytes]:
    """A small file reachable by a file:// URL, and its bytes."""
    content = b"unitlab test payload\n" * 100
    path = tmp_path / "server" / "file.bin"
    path.parent.mkdir()
    path.write_bytes(content)
    return path.as_uri(), content


def test_fetch_file_url(served: tuple[str, bytes], tmp_path: Path) -> None:
    url, content = served
    dest = tmp_path / "out" / "file.bin"
    missing = (tmp_path / "server" / "nope.bin").as_uri()  # first mirror fails, second works
    assert fetch([missing, url], dest, {md5(content)}, offline=False) == dest
    assert dest.read_bytes() == content and no_temp_files(dest.parent)
    # An existing file is returned as is, even offline.
    assert fetch([url], dest, {md5(content)}) == dest


def test_fetch_checksum_mismatch(served: tuple[str, bytes], tmp_path: Path) -> None:
    url, content = served
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(ChecksumError) as info:
        fetch([url], dest, {"0" * 32}, offline=False)
    message = str(info.value)
    assert str(dest) in message and "0" * 32 in message and md5(content) in message
    assert url in message
    assert not dest.exists() and no_temp_files(dest.parent)


def test_fetch_verifier_rejects(served: tuple[str, bytes], tmp_path: Path) -> None:
    def reject(path: Path) -> None:
        raise ValueError(f"{path}: not what we wanted")

    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match="not what we wanted"):
        fetch([served[0]], dest, reject, offline=False)
    assert not dest.exists() and no_temp_files(dest.parent)


def test_fetch_all_mirrors_fail(tmp_path: Path) -> None:
    urls = [(tmp_path / f"nope{i}").as_uri() for i in range(2)]
    with pytest.raises(DownloadError) as info:
        fetch(urls, tmp_path / "out" / "x", {"0" * 32}, offline=False)
    assert all(url in str(info.value) for url in urls)


def test_fetch_offline(served: tuple[str, bytes], tmp_path: Path) -> None:
    url, content = served
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(FileNotFoundError, match="UNITLAB_OFFLINE") as info:
        fetch([url], dest, {md5(content)})  # the environment says offline
    assert str(dest) in str(info.value) and url in str(info.value)
    with pytest.raises(FileNotFoundError, match="download=False"):
        fetch([url], dest, {md5(content)}, offline=True)
    assert not dest.exists()


# ------------------------------------------------------------------------------------------
# MNIST files


def test_mnist_small_roundtrip(tmp_path: Path) -> None:
    x, y = write_mnist(tmp_path)
    data = load_mnist("test", tmp_path, download=False, verify=False)
    assert np.array_equal(data.images.numpy(), x) and np.array_equal(data.labels.numpy(), y)


def test_mnist_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    with pytest.raises(FileNotFoundError) as info:
        load_mnist("train", tmp_path, download=False)
    assert str(path) in str(info.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images" in str(info.value)
    with pytest.raises(FileNotFoundError, match="UNITLAB_OFFLINE"):
        load_mnist("train", tmp_path)  # download=True, but the environment forbids it


def test_mnist_checksum_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz") as info:
        load_mnist("test", tmp_path, download=False)
    assert "2646ac647ad5339dbf082846283269ea" in str(info.value)


def test_mnist_truncated_gzip(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt gzip") as info:
        load_mnist("test", tmp_path, download=False)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (idx(np.zeros((3, 28, 28)), IDX_LABELS), None, "t10k-images.*magic number 2049"),
        (None, idx(np.zeros((3, 28, 28)), IDX_IMAGES), "t10k-labels.*magic number 2051"),
        (idx(np.zeros((3, 28, 28)), IDX_IMAGES)[:-5], None, "t10k-images.*size mismatch"),
        (b"\0\0\x08", None, "t10k-images.*too short"),
        (None, idx(np.zeros(4), IDX_LABELS), "3 images but .*t10k-labels.* 4 labels"),
        (None, idx(np.full(3, 10), IDX_LABELS), "t10k-labels.*label 10"),
    ],
)
def test_mnist_bad_files(tmp_path: Path, images: bytes, labels: bytes, match: str) -> None:
    write_mnist(tmp_path, images=images, labels=labels)
    with pytest.raises(ValueError, match=match):
        load_mnist("test", tmp_path, download=False, verify=False)


def serve_mnist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, md5s: set[str], payload_md5s: set[str]
) -> np.ndarray:
    """Point the MNIST test registry at file:// copies in tmp_path/server; allow downloads."""
    server = tmp_path / "server"
    x, _ = write_mnist(server)
    sources = tuple(
        Source(
            s.relpath, ((server / s.relpath).as_uri(),), frozenset(md5s), frozenset(payload_md5s)
        )
        for s in digits.MNIST_SOURCES["test"]
    )
    monkeypatch.setitem(digits.MNIST_SOURCES, "test", sources)
    monkeypatch.delenv("UNITLAB_OFFLINE")
    return x


def test_mnist_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Accept the files by their *payload* MD5s only, as for re-compressed copies.
    x, y = write_mnist(tmp_path / "expected")
    payloads = {md5(idx(x, IDX_IMAGES)), md5(idx(y, IDX_LABELS))}
    serve_mnist(monkeypatch, tmp_path, {"0" * 32}, payloads)
    data = load_mnist("test", tmp_path / "root")
    assert np.array_equal(data.images.numpy(), x)
    assert (tmp_path / "root" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_mnist_download_mismatch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    serve_mnist(monkeypatch, tmp_path, {"0" * 32}, {"1" * 32})
    with pytest.raises(ChecksumError, match="payload MD5"):
        load_mnist("test", tmp_path / "root")
    folder = tmp_path / "root" / "mnist"
    assert not (folder / "t10k-images-idx3-ubyte.gz").exists() and no_temp_files(folder)


# ------------------------------------------------------------------------------------------
# USPS files


def test_usps_values_and_sparse_lines(tmp_path: Path) -> None:
    dense = [-1.0] * 255 + [1.0]
    write_usps(tmp_path, [usps_line(10, dense), "1 1:1 256:-1"])  # omitted features are 0
    data = load_usps("test", tmp_path, download=False, verify=False, cache=False)
    assert data.labels.tolist() == [9, 0]
    assert data.images[0, 0, 0] == 0 and data.images[0, 15, 15] == 255  # row-major, -1 -> 0
    assert data.images[1, 0, 0] == 255 and data.images[1, 15, 15] == 0
    assert data.images[1, 8, 8] == 128  # 0 -> mid grey


@pytest.mark.parametrize(
    "bad, match",
    [
        ("3 1:0.5 2", "line 2: expected"),
        ("3 1:0.5 2:x", "line 2"),
        ("11 1:0.5", "line 2: label '11'"),
        ("0 1:0.5", "line 2: label '0'"),
        ("3 1:1.5", "line 2: values"),
        ("3 257:0.5", "line 2: indices"),
        ("3 2:0.5 1:0.5", "line 2: indices"),
    ],
)
def test_usps_malformed_line(tmp_path: Path, bad: str, match: str) -> None:
    path = write_usps(tmp_path, [usps_line(1, [0.0] * 256), bad])
    with pytest.raises(ValueError, match=match) as info:
        load_usps("test", tmp_path, download=False, verify=False, cache=False)
    assert str(path) in str(info.value)


def test_usps_truncated_bz2(tmp_path: Path) -> None:
    path = write_usps(tmp_path, [usps_line(1, [0.5] * 256)] * 20, name="usps.bz2")
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="corrupt bz2") as info:
        load_usps("train", tmp_path, download=False)
    assert str(path) in str(info.value)


def test_usps_checksum_mismatch(tmp_path: Path) -> None:
    write_usps(tmp_path, [usps_line(1, [0.0] * 256)])
    with pytest.raises(ChecksumError, match="8ea070ee2aca1ac39742fdd1ef5ed118"):
        load_usps("test", tmp_path, download=False)


def test_usps_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_usps(tmp_path, [usps_line(3, [0.25] * 256)])
    first = load_usps("test", tmp_path, download=False, verify=False)
    (cached,) = cache_dir().glob("usps.t.bz2-*.npz")
    # The cache answers instead of the parser now...
    monkeypatch.setattr(digits, "parse_usps", lambda *a: pytest.fail("parsed despite cache"))
    second = load_usps("test", tmp_path, download=False, verify=False)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    # ...and a damaged cache is ignored, not fatal.
    monkeypatch.setattr(digits, "parse_usps", parse_usps)
    cached.write_bytes(b"garbage")
    assert torch.equal(
        load_usps("test", tmp_path, download=False, verify=False).images, first.images
    )


def test_usps_cache_unwritable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("UNITLAB_CACHE", str(blocker / "cache"))  # cannot be created
    write_usps(tmp_path, [usps_line(3, [0.25] * 256)])
    assert len(load_usps("test", tmp_path, download=False, verify=False)) == 1


# ------------------------------------------------------------------------------------------
# DigitData and the model's range


def test_to_model_range() -> None:
    images = torch.tensor([[[0, 255], [255, 0]]], dtype=torch.uint8)
    x = to_model_range(images, size=None)
    assert torch.equal(x, torch.tensor([[[[-1.0, 1.0], [1.0, -1.0]]]]))
    assert to_model_range(images.expand(2, 2, 2).contiguous(), size=8, channels=3).shape == (
        2,
        3,
        8,
        8,
    )
    with pytest.raises(ValueError, match="channels"):
        to_model_range(images, channels=2)


def test_digit_data_validates() -> None:
    with pytest.raises(ValueError, match="uint8"):
        DigitData(torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        DigitData(torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    data = DigitData(torch.zeros(2, 4, 4, dtype=torch.uint8), torch.tensor([1, 1]))
    assert repr(data) == "DigitData(n=2, size=4x4)" and data.class_counts()[1] == 2
