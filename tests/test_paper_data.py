"""Loaders of the paper's image datasets, on tiny datasets written in the real layouts.

Every loader reads a fixture from :mod:`unitlab.data.samples` (the same writers a user can try
offline), plus the real GTA -> Cityscapes frames in ../shared/data when present. What matters:
the right files land in the right domains (maps pairs stay aligned), the authors' crops, that an
item depends on ``(index, seed)`` only, and that every failure names the file or folder at fault.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unitlab.data.image_folders import (
    DiskData,
    ImageDomain,
    ImageItem,
    StepBatches,
    eval_transform,
    image_size,
    list_images,
    load_rgb,
    make_loader,
    resize_shorter,
)
from unitlab.data.paper_datasets import (
    CELEBA_ATTRIBUTES,
    CELEBA_BOX,
    load_celeba,
    load_folder_pairs,
    load_maps,
    read_celeba_attributes,
    read_celeba_partition,
)
from unitlab.data.samples import (
    MAP_COLOURS,
    write_celeba_sample,
    write_folder_pairs_sample,
    write_maps_sample,
)
from unitlab.images import uint8_to_tensor

SIZE = 24


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    write_maps_sample(root / "maps", n_train=11, n_val=4, half=32)
    write_folder_pairs_sample(root / "pairs", n=3)
    write_celeba_sample(root / "celeba", n=12)
    return root


@pytest.fixture()
def copy(samples: Path, tmp_path: Path):
    """A private, writable copy of one sample dataset (for tests that break files)."""

    def make(name: str) -> Path:
        return Path(shutil.copytree(samples / name, tmp_path / name))

    return make


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def check_domain(domain: ImageDomain, size: int = SIZE) -> None:
    x = domain[0]
    assert x.shape == (3, size, size) and x.dtype == torch.float32
    assert -1 <= x.min() and x.max() <= 1 and x.std() > 0
    u = domain.uint8(len(domain) - 1)
    assert u.shape == (size, size, 3) and u.dtype == np.uint8


# ------------------------------------------------------------------------------------------
# pix2pix maps


def test_maps_domains_and_pairs(samples: Path) -> None:
    data = load_maps(samples / "maps", SIZE)
    assert isinstance(data, DiskData) and data.paired
    assert (len(data.train_a), len(data.train_b), len(data.test_a), len(data.test_b)) == (
        11,
        4,
        4,
        4,
    )
    for domain in (data.train_a, data.train_b, data.test_a, data.test_b):
        check_domain(domain)
    assert data.train_a.train and data.train_b.train
    assert not data.test_a.train and not data.test_b.train
    # Natural order (1, 2, ..., 10, 11), satellites (left) of train/, maps (right) of val/.
    assert [item.path.name for item in data.train_a.items] == [f"{i}.jpg" for i in range(1, 12)]
    assert {item.path.parent.name for item in data.train_a.items} == {"train"}
    assert {item.path.parent.name for item in data.train_b.items} == {"val"}
    assert all(item.box == (0, 0, 32, 32) for item in data.train_a.items)
    assert all(item.box == (32, 0, 64, 32) for item in data.train_b.items)
    # Held-out pairs: the two halves of the same val/ file.
    for a, b in zip(data.test_a.items, data.test_b.items, strict=True):
        assert a.path == b.path and a.box == (0, 0, 32, 32) and b.box == (32, 0, 64, 32)
    whole = np.asarray(Image.open(data.test_a.items[2].path).convert("RGB"))
    np.testing.assert_array_equal(data.test_a.uint8(2), eval_transform(whole[:, :32], SIZE))
    np.testing.assert_array_equal(data.test_b.uint8(2), eval_transform(whole[:, 32:], SIZE))
    assert "train/" in data.description and "val/" in data.description


def test_maps_sample_is_a_flat_map_of_its_satellite(samples: Path) -> None:
    """The map half is (after JPEG) within 16 of the palette almost everywhere; the satellite
    half is another look of the same layout, far from it."""
    image = np.asarray(Image.open(samples / "maps" / "val" / "1.jpg"), dtype=np.int16)
    sat, flat = image[:, :32], image[:, 32:]
    distance = np.abs(flat[:, :, None] - MAP_COLOURS[None, None].astype(np.int16)).max(-1)
    assert (distance.min(-1) <= 16).mean() > 0.95
    assert np.abs(sat - flat).max(-1).mean() > 60
    assert len(np.unique(distance.argmin(-1))) >= 3  # land, a road, water


def test_maps_wrong_aspect_ratio(copy) -> None:
    root = copy("maps")
    bad = root / "train" / "3.jpg"
    Image.new("RGB", (100, 60)).save(bad)
    with pytest.raises(ValueError, match=rf"{bad}.*100x60.*twice as wide"):
        load_maps(root, SIZE)


def test_maps_missing_folder(copy, tmp_path: Path) -> None:
    root = copy("maps")
    shutil.rmtree(root / "val")
    with pytest.raises(FileNotFoundError, match=rf"(?s){root / 'val'}.*train/.*val/"):
        load_maps(root, SIZE)
    with pytest.raises(FileNotFoundError, match=rf"(?s){tmp_path / 'nowhere'}.*train/"):
        load_maps(tmp_path / "nowhere", SIZE)


def test_maps_truncated_file_is_named_when_listed(copy) -> None:
    root = copy("maps")
    bad = root / "val" / "2.jpg"
    bad.write_bytes((root / "val" / "1.jpg").read_bytes()[:100])
    before = tree(root.parent)
    with pytest.raises(ValueError, match=rf"{bad} is not a readable image"):
        load_maps(root, SIZE)
    assert tree(root.parent) == before


# ------------------------------------------------------------------------------------------
# Folder pairs


def test_folder_pairs(samples: Path) -> None:
    data = load_folder_pairs(samples / "pairs", SIZE, load_size=30)
    assert not data.paired
    for domain in (data.train_a, data.train_b, data.test_a, data.test_b):
        assert len(domain) == 3
        check_domain(domain)
    assert {image_size(i.path) for i in data.train_a.items} == {(80, 48)}
    assert {image_size(i.path) for i in data.test_b.items} == {(56, 72)}
    assert data.train_a.items[0].path.suffix == ".jpg"
    assert data.train_b.items[0].path.suffix == ".png"


def test_extensions_case_and_hidden_files(copy) -> None:
    root = copy("pairs")
    folder = root / "trainA"
    (folder / "A_000.jpg").rename(folder / "A_000.JPEG")
    Image.new("RGB", (40, 30), (1, 2, 3)).save(folder / "extra.bmp")
    (folder / "._A_001.jpg").write_bytes(b"\0\5\26\7")  # a macOS resource fork
    (folder / "notes.txt").write_text("not an image")
    names = [p.name for p in list_images(folder)]
    assert names == ["A_000.JPEG", "A_001.jpg", "A_002.jpg", "extra.bmp"]
    assert len(load_folder_pairs(root, SIZE).train_a) == 4


def test_centre_crop_and_random_crop(samples: Path) -> None:
    """Evaluation: resize the shorter side, crop the centre. Training: a window of the same
    resized image, possibly mirrored, chosen by the seed alone."""
    data = load_folder_pairs(samples / "pairs", 16, load_size=20)
    item = data.train_a.items[1]
    resized = resize_shorter(load_rgb(item), 20)
    assert resized.shape == (20, 33, 3)  # 80x48 -> int(20 * 80 / 48) = 33 wide
    centre = resized[2:18, 8:24]
    np.testing.assert_array_equal(data.train_a.uint8(1), centre)
    np.testing.assert_array_equal(
        data.test_a.uint8(1), eval_transform(load_rgb(data.test_a.items[1]), 16, 20)
    )
    torch.testing.assert_close(data.test_a[(1, 7)], uint8_to_tensor(data.test_a.uint8(1)))

    windows = {
        (flip, top, left): uint8_to_tensor(np.ascontiguousarray(w[:, ::-1] if flip else w))
        for top in range(5)
        for left in range(18)
        for flip in (False, True)
        for w in [resized[top : top + 16, left : left + 16]]
    }
    seen = set()
    for seed in range(12):
        x = data.train_a[(1, seed)]
        torch.testing.assert_close(x, data.train_a[(1, seed)])  # same (index, seed): same view
        found = [key for key, w in windows.items() if torch.equal(w, x)]
        assert found, f"seed {seed}: not a crop of the resized image"
        seen.add(found[0])
    assert len(seen) > 4 and {flip for flip, _, _ in seen} == {False, True}
    torch.testing.assert_close(data.train_a[1], data.train_a[(1, 1)])  # bare index: seed = index


def test_gta2city_real_frames(shared_data: Path) -> None:
    root = shared_data / "gta2city"
    if not root.is_dir():
        pytest.skip(f"real GTA -> Cityscapes frames not available: {root} does not exist")
    data = load_folder_pairs(root, 32, load_size=40)
    assert [len(d) for d in (data.train_a, data.train_b, data.test_a, data.test_b)] == [5] * 4
    assert image_size(data.train_a.items[0].path) == (933, 512)
    assert image_size(data.train_b.items[0].path) == (1024, 512)
    for domain in (data.train_a, data.test_b):
        check_domain(domain, 32)
        assert resize_shorter(load_rgb(domain.items[0]), 40).shape[:2] in ((40, 72), (40, 80))


# ------------------------------------------------------------------------------------------
# CelebA


def test_celeba_smiling(samples: Path) -> None:
    root = samples / "celeba"
    data = load_celeba(root, "Smiling", size=SIZE)
    assert not data.paired
    names, table = read_celeba_attributes(root / "list_attr_celeba.txt")
    partition = read_celeba_partition(root / "list_eval_partition.txt")
    assert names == CELEBA_ATTRIBUTES and len(table) == 12
    smiling = names.index("Smiling")
    expect = {
        (split, value): sorted(
            f for f, v in table.items() if partition[f] == split and v[smiling] == value
        )
        for split in (0, 2)
        for value in (1, -1)
    }
    got = {
        (0, 1): data.train_a,
        (0, -1): data.train_b,
        (2, 1): data.test_a,
        (2, -1): data.test_b,
    }
    for key, domain in got.items():
        assert [i.path.name for i in domain.items] == expect[key] != []
        assert all(i.box == CELEBA_BOX for i in domain.items)
        check_domain(domain)
    assert load_rgb(data.train_a.items[0]).shape == (178, 178, 3)


def test_celeba_two_attributes(samples: Path) -> None:
    root = samples / "celeba"
    data = load_celeba(root, "Blond_Hair", "Brown_Hair", size=SIZE)
    names, table = read_celeba_attributes(root / "list_attr_celeba.txt")
    blond, brown = names.index("Blond_Hair"), names.index("Brown_Hair")
    for domain, want in ((data.train_a, (1, -1)), (data.test_a, (1, -1)), (data.train_b, (-1, 1))):
        assert len(domain) > 0
        assert all(
            (table[i.path.name][blond], table[i.path.name][brown]) == want for i in domain.items
        )
    assert len(data.test_b) > 0


def test_celeba_refusals(copy) -> None:
    root = copy("celeba")
    with pytest.raises(ValueError, match="unknown CelebA attribute 'Smile'.*Smiling.*Young"):
        load_celeba(root, "Smile")
    with pytest.raises(ValueError, match="unknown CelebA attribute 'brown_hair'"):
        load_celeba(root, "Blond_Hair", "brown_hair")
    attr = root / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    lines[4] = lines[4].replace(" 1", " 2", 1)
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{attr}, line 5: expected an image name and 40"):
        load_celeba(root, "Smiling")
    lines[4] = lines[4].rsplit(" ", 1)[0]
    attr.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{attr}, line 5"):
        load_celeba(root, "Smiling")
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"(?s)list_eval_partition.txt.*img_align_celeba/"):
        load_celeba(root, "Smiling")


def test_celeba_sample_needs_both_domains(tmp_path: Path) -> None:
    """Every n accepted by the writer gives both Smiling domains and both hair domains in
    train and in test."""
    for n in (6, 7, 13):
        root = write_celeba_sample(tmp_path / str(n), n=n)
        for args in (("Smiling",), ("Blond_Hair", "Brown_Hair")):
            data = load_celeba(root, *args, size=8)
            assert min(len(data.train_a), len(data.train_b), len(data.test_a), len(data.test_b))
        partition = read_celeba_partition(root / "list_eval_partition.txt")
        assert set(partition.values()) == {0, 1, 2}
    with pytest.raises(ValueError, match="n >= 6"):
        write_celeba_sample(tmp_path / "few", n=5)


# ------------------------------------------------------------------------------------------
# Reading files


def test_truncated_jpeg_fails_when_read_naming_it(copy) -> None:
    root = copy("pairs")
    bad = root / "trainB" / "B_001.png"
    good = root / "trainA" / "A_000.jpg"
    bad_jpeg = bad.with_suffix(".jpg")
    bad_jpeg.write_bytes(good.read_bytes()[:100])
    bad.unlink()
    data = load_folder_pairs(root, SIZE)  # listing opens nothing
    index = [i.path for i in data.train_b.items].index(bad_jpeg)
    before = tree(root.parent)
    with pytest.raises(ValueError, match=rf"{bad_jpeg} is not a readable image"):
        data.train_b[index]
    with pytest.raises(ValueError, match=rf"{bad_jpeg} is not a readable image"):
        data.train_b.uint8(index)
    assert tree(root.parent) == before
    # A JPEG cut after its header: Image.open succeeds, decoding fails.
    half = good.read_bytes()
    bad_jpeg.write_bytes(half[: len(half) // 2])
    with pytest.raises(ValueError, match=rf"{bad_jpeg} is not a readable image \(.*truncated"):
        load_rgb(ImageItem(bad_jpeg))


def test_read_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = tmp_path / "text.png"
    text.write_text("hello")
    with pytest.raises(ValueError, match=rf"{text} is not a readable image \(cannot identify"):
        load_rgb(ImageItem(text))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "gone.jpg")):
        load_rgb(ImageItem(tmp_path / "gone.jpg"))
    small = tmp_path / "small.png"
    Image.new("L", (20, 10), 7).save(small)
    rgb = load_rgb(ImageItem(small, (2, 1, 12, 6)))
    assert rgb.shape == (5, 10, 3) and (rgb == 7).all()
    with pytest.raises(ValueError, match=rf"{small} is 20x10.*\(0, 0, 21, 10\)"):
        load_rgb(ImageItem(small, (0, 0, 21, 10)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # warns above 150, refuses above 300
    for side in (13, 20):
        with pytest.raises(ValueError, match=rf"{small} is refused as a possible decompression"):
            Image.new("RGB", (side, side)).save(small)
            load_rgb(ImageItem(small))


def test_empty_and_bad_arguments(copy, tmp_path: Path) -> None:
    root = copy("pairs")
    for p in (root / "testB").iterdir():
        p.unlink()
    (root / "testB" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=rf"{root / 'testB'} holds no images"):
        load_folder_pairs(root, SIZE)
    with pytest.raises(ValueError, match="'empty' has no images"):
        ImageDomain([], SIZE, name="empty")
    with pytest.raises(ValueError, match="size <= load_size"):
        ImageDomain([ImageItem(tmp_path)], SIZE, load_size=SIZE - 1)
    shutil.rmtree(root / "trainA")
    with pytest.raises(FileNotFoundError, match=rf"(?s){root / 'trainA'} does not exist.*testB/"):
        load_folder_pairs(root, SIZE)


# ------------------------------------------------------------------------------------------
# Seeded batches


def test_step_batches_ranks_and_resume() -> None:
    one = StepBatches(50, 8, seed=3)
    batches = [b for b, _ in zip(one, range(6), strict=False)]
    assert all(len(b) == 8 for b in batches) and batches[0] != batches[1]
    assert all(0 <= i < 50 for b in batches for i, _ in b)
    ranks = [StepBatches(50, 8, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for step, batch in enumerate(batches):
        assert ranks[0].batch(step) + ranks[1].batch(step) == batch
    resumed = next(iter(StepBatches(50, 8, seed=3, start_step=4)))
    assert resumed == batches[4]
    assert StepBatches(50, 8, seed=4).batch(0) != batches[0]
    with pytest.raises(ValueError, match="not divisible by world_size=3"):
        StepBatches(50, 8, seed=3, world_size=3)


def test_loader_same_with_workers(samples: Path) -> None:
    """Workers change who loads an item, never what it is; loading leaves global RNG alone."""
    domain = load_folder_pairs(samples / "pairs", 16, load_size=20).train_a
    state = torch.get_rng_state()
    plain = [b for b, _ in zip(make_loader(domain, 4, seed=1), range(3), strict=False)]
    assert torch.equal(torch.get_rng_state(), state)
    workers = make_loader(domain, 4, seed=1, workers=2)
    parallel = [b for b, _ in zip(workers, range(3), strict=False)]
    assert all(torch.equal(a, b) for a, b in zip(plain, parallel, strict=True))
    assert plain[0].shape == (4, 3, 16, 16)
    halves = [make_loader(domain, 4, seed=1, start_step=2, rank=r, world_size=2) for r in (0, 1)]
    torch.testing.assert_close(torch.cat([next(iter(h)) for h in halves]), plain[2])


# ------------------------------------------------------------------------------------------
# The sample writers


def test_samples_are_deterministic(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    for write in (write_maps_sample, write_folder_pairs_sample, write_celeba_sample):
        a, b, c = (
            write(tmp_path / f"{write.__name__}{k}", seed=s) for k, s in enumerate((0, 0, 1))
        )
        assert a == tmp_path / f"{write.__name__}0"
        assert files(a) == files(b) != files(c)


def test_check_downloads_against_the_published_md5s(tmp_path: Path) -> None:
    from unitlab.data.paper_datasets import DOWNLOADS, check_downloads

    (tmp_path / "list_attr_celeba.txt").write_text("not the real file")
    verdicts = check_downloads(tmp_path, "celeba")
    assert verdicts["img_align_celeba.zip"] == "missing"
    assert verdicts["list_attr_celeba.txt"].startswith("MD5 mismatch: ")
    assert "75e246fa4810816ffd6ee81facbd244c" in verdicts["list_attr_celeba.txt"]
    (tmp_path / "maps.tar.gz").write_bytes(b"\x1f\x8b")
    assert check_downloads(tmp_path, "maps") == {"maps.tar.gz": "no published MD5"}
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        check_downloads(tmp_path, "imagenet")
    assert {d.dataset for d in DOWNLOADS} == {"maps", "folders", "celeba", "svhn"}
