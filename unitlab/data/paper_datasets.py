"""The paper's image datasets, read from the layouts their official downloads unpack to.

Nothing is downloaded here: these sets are large (maps 250 MB, CelebA 1.4 GB) and their hosts
come and go, so a user fetches them once and points a loader at the folder. Each loader lists
the files, checks the layout, and returns a :class:`~unitlab.data.image_folders.DiskData` whose
domains decode images lazily. A missing folder or file is a ``FileNotFoundError`` that names it
and shows the expected layout; a folder without images a ``ValueError`` naming it.

* :func:`load_maps`: pix2pix ``maps`` (satellite | map pairs), split as in the UNIT paper;
* :func:`load_folder_pairs`: the CycleGAN / UNIT ``trainA trainB testA testB`` layout (GTA ->
  Cityscapes, summer -> winter, ...), unpaired;
* :func:`load_celeba`: CelebA's aligned faces split into two domains by attributes.

:mod:`unitlab.data.samples` writes tiny datasets in these same layouts, to try them offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unitlab.data.image_folders import (
    IMAGE_EXTENSIONS,
    DiskData,
    ImageDomain,
    ImageItem,
    image_size,
    list_images,
)
from unitlab.data.svhn import SVHN_SOURCES

__all__ = [
    "DOWNLOADS",
    "Download",
    "check_downloads",
    "MAPS_LAYOUT",
    "FOLDER_PAIRS_LAYOUT",
    "CELEBA_LAYOUT",
    "CELEBA_ATTRIBUTES",
    "CELEBA_BOX",
    "load_maps",
    "load_folder_pairs",
    "load_celeba",
    "read_celeba_attributes",
    "read_celeba_partition",
]

MAPS_LAYOUT = """\
<root>/
  train/   1.jpg ... 1096.jpg   satellite | map side by side, 1200x600 (each half 600x600)
  val/     1.jpg ... 1098.jpg   the same, held out
(pix2pix's maps.tar.gz: http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz)"""

FOLDER_PAIRS_LAYOUT = """\
<root>/
  trainA/   training images of domain A (.jpg .jpeg .png .bmp, any size)
  trainB/   training images of domain B
  testA/    held-out images of domain A
  testB/    held-out images of domain B
(the CycleGAN / UNIT folder-pair layout)"""

CELEBA_LAYOUT = """\
<root>/
  img_align_celeba/        000001.jpg ... 202599.jpg   aligned faces, 178x218
  list_attr_celeba.txt     line 1: image count; line 2: 40 attribute names;
                           then "000001.jpg -1  1 ..." (1 or -1 per attribute)
  list_eval_partition.txt  "000001.jpg 0" (0 train, 1 validation, 2 test)
(CelebA's "Align&Cropped Images" and "Anno"/"Eval" files)"""

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
"""CelebA's 40 attributes, in the order of ``list_attr_celeba.txt``'s second line."""

CELEBA_BOX = (0, 20, 178, 198)
"""The central 178x178 square of a 178x218 aligned face (left, upper, right, lower): the faces
are cropped square before resizing, as the authors do, so that resizing keeps them undistorted
and the crop keeps the face rather than the neck."""

TRAIN, VALIDATION, TEST = 0, 1, 2  # list_eval_partition.txt's codes


@dataclass(frozen=True)
class Download:
    """Where one of the paper's datasets comes from, and how to check what arrived.

    ``files`` are ``(file name, MD5)`` of the official archives where an MD5 is published (the
    same values torchvision and other loaders check); an empty MD5 means none is published:
    check the counts the layout gives instead.
    """

    dataset: str  # the ``data.source`` (or ``unitlab adapt --source``) that reads it
    name: str
    url: str
    files: tuple[tuple[str, str], ...]
    unpack: str


DOWNLOADS: tuple[Download, ...] = (
    Download(
        "maps",
        "pix2pix maps (satellite <-> Google maps)",
        "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz",
        (("maps.tar.gz", ""),),
        "tar xzf maps.tar.gz  ->  maps/train (1,096 files), maps/val (1,098 files)",
    ),
    Download(
        "folders",
        "street scenes: GTA5 -> Cityscapes (the authors' gta2city), or any trainA/trainB set",
        "https://download.visinf.tu-darmstadt.de/data/from_games/ and "
        "https://www.cityscapes-dataset.com (registration)",
        (),
        "put the frames of each domain in trainA/ trainB/ (and held-out ones in testA/ testB/)",
    ),
    Download(
        "celeba",
        "CelebA, aligned and cropped faces with 40 attributes",
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive / Baidu links)",
        (
            ("img_align_celeba.zip", "00d2c5bc6d35e252742224ab0c1e8fcb"),
            ("list_attr_celeba.txt", "75e246fa4810816ffd6ee81facbd244c"),
            ("list_eval_partition.txt", "d32c9cbf5e040fd4025c592c306e6668"),
        ),
        "unzip img_align_celeba.zip beside the two text files",
    ),
    Download(
        "svhn",
        "SVHN cropped digits (unitlab adapt --source svhn; downloaded and checked on first use)",
        "http://ufldl.stanford.edu/housenumbers/",
        tuple((Path(source.relpath).name, min(source.md5)) for source in SVHN_SOURCES.values()),
        "$UNITLAB_DATA/svhn/*.mat",
    ),
)


def check_downloads(folder: str | Path, dataset: str) -> dict[str, str]:
    """Check the downloaded archives of ``dataset`` in ``folder`` against their published MD5s:
    ``{file: "ok" | "missing" | "MD5 mismatch: ..." | "no published MD5"}``."""
    from unitlab.data.download import md5_file

    known = {d.dataset: d for d in DOWNLOADS}
    if dataset not in known:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(known)}")
    verdicts = {}
    for name, md5 in known[dataset].files:
        path = Path(folder) / name
        if not path.is_file():
            verdicts[name] = "missing"
        elif not md5:
            verdicts[name] = "no published MD5"
        else:
            actual = md5_file(path)
            verdicts[name] = "ok" if actual == md5 else f"MD5 mismatch: {actual}, expected {md5}"
    return verdicts


def _require(path: Path, what: str, layout: str) -> Path:
    """``path`` if it exists, else a ``FileNotFoundError`` naming it and the layout."""
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist; expected the layout\n{layout}")
    return path


def _folder(root: Path, name: str, layout: str) -> Path:
    folder = _require(root / name, "folder", layout)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; expected the layout\n{layout}")
    return folder


def _root(root: str | Path, layout: str) -> Path:
    base = _require(Path(root).expanduser(), "dataset folder", layout)
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a folder; expected the layout\n{layout}")
    return base.resolve()


# ----------------------------------------------------------------------------- pix2pix maps


def _halves(paths: Sequence[Path]) -> tuple[list[ImageItem], list[ImageItem]]:
    """(left halves, right halves) of side-by-side pairs, each file's shape checked from its
    header: a wrong file is reported when the dataset is opened, not hours into training."""
    left, right = [], []
    for path in paths:
        width, height = image_size(path)
        if width != 2 * height:
            raise ValueError(
                f"{path} is {width}x{height} pixels; a maps file must be twice as wide as high "
                "(satellite | map side by side, 1200x600 in pix2pix's maps)"
            )
        left.append(ImageItem(path, (0, 0, height, height)))
        right.append(ImageItem(path, (height, 0, width, height)))
    return left, right


def load_maps(root: str | Path, size: int, load_size: int = 0) -> DiskData:
    """pix2pix ``maps`` under ``root`` (layout: :data:`MAPS_LAYOUT`), split as in the UNIT paper.

    Domain a (``train_a``) is the satellite half of every ``train/`` file, domain b
    (``train_b``) the map half of every ``val/`` file: the two training domains come from
    different files, so no training pair is ever seen. The held-out pairs (``test_a``,
    ``test_b``) are the satellites and maps of ``val/``, aligned (``paired=True``): the paper
    scores satellite -> map translations of them by pixel accuracy. ``test_b`` holds the same
    maps as ``train_b`` (the paper's protocol); only their satellites are never trained on.

    Every file's header is read here (width must be twice the height: a ``ValueError`` naming the
    file and its size otherwise); pixels are decoded when an item is loaded.
    """
    base = _root(root, MAPS_LAYOUT)
    train = list_images(_folder(base, "train", MAPS_LAYOUT))
    val = list_images(_folder(base, "val", MAPS_LAYOUT))
    train_sat, _ = _halves(train)
    val_sat, val_map = _halves(val)

    def domain(items: list[ImageItem], is_train: bool, name: str) -> ImageDomain:
        return ImageDomain(items, size, load_size, train=is_train, name=name)

    description = (
        f"pix2pix maps at {base}: a = the {len(train_sat)} satellites of train/, b = the "
        f"{len(val_map)} maps of val/ (unpaired, as in the UNIT paper); held out: the "
        f"{len(val_sat)} satellite | map pairs of val/, aligned (score a -> b by pixel accuracy)"
    )
    return DiskData(
        train_a=domain(train_sat, True, f"maps satellites of {base / 'train'}"),
        train_b=domain(val_map, True, f"maps maps of {base / 'val'}"),
        test_a=domain(val_sat, False, f"maps held-out satellites of {base / 'val'}"),
        test_b=domain(val_map, False, f"maps held-out maps of {base / 'val'}"),
        paired=True,
        description=description,
    )


# ----------------------------------------------------------------------------- folder pairs


def load_folder_pairs(root: str | Path, size: int, load_size: int = 0) -> DiskData:
    """Unpaired ``trainA trainB testA testB`` folders under ``root`` (:data:`FOLDER_PAIRS_LAYOUT`).

    Images of any common format (.jpg .jpeg .png .bmp, any case) and any size: non-square ones
    are resized on their shorter side, then cropped (randomly for training, centrally for the
    test folders). ``paired=False``: testA and testB need not show the same scenes.
    """
    base = _root(root, FOLDER_PAIRS_LAYOUT)
    domains = {}
    for part in ("trainA", "trainB", "testA", "testB"):
        paths = list_images(_folder(base, part, FOLDER_PAIRS_LAYOUT))
        items = [ImageItem(p) for p in paths]
        name = f"{part} of {base}"
        domains[part] = ImageDomain(
            items, size, load_size, train=part.startswith("train"), name=name
        )
    counts = ", ".join(f"{part} {len(d)}" for part, d in domains.items())
    return DiskData(
        train_a=domains["trainA"],
        train_b=domains["trainB"],
        test_a=domains["testA"],
        test_b=domains["testB"],
        paired=False,
        description=f"folder pairs at {base}: {counts} images (unpaired)",
    )


# ----------------------------------------------------------------------------- CelebA


def _malformed(path: Path, lineno: int, expected: str, line: str) -> ValueError:
    return ValueError(f"{path}, line {lineno}: expected {expected}, got {line.strip()[:80]!r}")


def read_celeba_attributes(path: Path) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]]]:
    """``list_attr_celeba.txt`` as (attribute names, {file name: values of 1 or -1}).

    Values are separated by one or more spaces (the official file pads positive values to
    align the columns). A malformed line is a ``ValueError`` naming the file and line number.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        first = lines[0] if lines else ""
        raise _malformed(path, 1, "the number of images", first)
    count = int(lines[0])
    names = tuple(lines[1].split())
    if not names:
        raise _malformed(path, 2, "the attribute names", lines[1])
    expected = f"an image name and {len(names)} values of 1 or -1"
    table: dict[str, tuple[int, ...]] = {}
    for lineno, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1 or any(v not in ("1", "-1") for v in fields[1:]):
            raise _malformed(path, lineno, expected, line)
        table[fields[0]] = tuple(int(v) for v in fields[1:])
    if len(table) != count:
        raise ValueError(f"{path}: line 1 says {count} images, but {len(table)} are listed")
    return names, table


def read_celeba_partition(path: Path) -> dict[str, int]:
    """``list_eval_partition.txt`` as {file name: 0 train, 1 validation, 2 test}."""
    partition: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise _malformed(path, lineno, "an image name and 0, 1 or 2", line)
            partition[fields[0]] = int(fields[1])
    return partition


def load_celeba(
    root: str | Path, attribute: str, other: str = "", size: int = 128, load_size: int = 0
) -> DiskData:
    """CelebA's aligned faces under ``root`` (:data:`CELEBA_LAYOUT`) as two attribute domains.

    Without ``other``: a = faces with ``attribute`` (+1), b = faces without (-1), e.g.
    ``"Smiling"`` or ``"Eyeglasses"``. With ``other``: a = ``attribute`` and not ``other``,
    b = ``other`` and not ``attribute``, e.g. ``"Blond_Hair", "Brown_Hair"`` (faces with both or
    neither are left out). Training domains from CelebA's train partition (0), test domains
    from its test partition (2); the validation partition is unused. ``paired=False``.

    Each face is first cropped to its central 178x178 square (:data:`CELEBA_BOX`), then resized
    and cropped to ``size`` (default 128, the paper's face resolution). An unknown attribute is a
    ``ValueError`` listing the known ones; a malformed line one naming file and line number.
    """
    base = _root(root, CELEBA_LAYOUT)
    images = _folder(base, "img_align_celeba", CELEBA_LAYOUT)
    attr_file = _require(base / "list_attr_celeba.txt", "file", CELEBA_LAYOUT)
    part_file = _require(base / "list_eval_partition.txt", "file", CELEBA_LAYOUT)
    if not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in images.iterdir()):
        raise ValueError(f"{images} holds no images (files ending in .jpg)")
    names, table = read_celeba_attributes(attr_file)
    for name in (attribute, other) if other else (attribute,):
        if name not in names:
            raise ValueError(f"unknown CelebA attribute {name!r}; known: {', '.join(names)}")
    if other == attribute:
        raise ValueError(f"attribute and other are both {attribute!r}")
    partition = read_celeba_partition(part_file)
    col = names.index(attribute)
    col_other = names.index(other) if other else None

    def side(values: tuple[int, ...]) -> str | None:
        if col_other is None:
            return "a" if values[col] == 1 else "b"
        if values[col] == 1 and values[col_other] == -1:
            return "a"
        if values[col_other] == 1 and values[col] == -1:
            return "b"
        return None

    groups: dict[tuple[int, str], list[ImageItem]] = {
        (p, s): [] for p in (TRAIN, TEST) for s in "ab"
    }
    for file, values in table.items():
        if file not in partition:
            raise ValueError(f"{file} is listed in {attr_file} but not in {part_file}")
        s = side(values)
        if s is not None and partition[file] in (TRAIN, TEST):
            groups[(partition[file], s)].append(ImageItem(images / file, CELEBA_BOX))

    label_a = f"{attribute} and not {other}" if other else attribute
    label_b = f"{other} and not {attribute}" if other else f"not {attribute}"
    labels = {"a": label_a, "b": label_b}
    split_names = {TRAIN: "train", TEST: "test"}
    domains = {}
    for (p, s), items in groups.items():
        name = f"CelebA {split_names[p]} faces with {labels[s]}"
        if not items:
            raise ValueError(
                f"no {name} in {attr_file} and {part_file}: this pair of domains cannot be built"
            )
        domains[(p, s)] = ImageDomain(items, size, load_size, train=p == TRAIN, name=name)
    counts = ", ".join(f"{split_names[p]} {s} {len(d)}" for (p, s), d in domains.items())
    return DiskData(
        train_a=domains[(TRAIN, "a")],
        train_b=domains[(TRAIN, "b")],
        test_a=domains[(TEST, "a")],
        test_b=domains[(TEST, "b")],
        paired=False,
        description=(
            f"CelebA at {base}: a = faces with {label_a}, b = faces with {label_b} ({counts}); "
            "train from partition 0, test from partition 2; centre 178x178 crop first"
        ),
    )
