"""Typed configuration with named presets.

Every run saves its full config next to its checkpoints, so a checkpoint can always be rebuilt
into the exact model that wrote it, and a checkpoint from another config is refused with a clear
message instead of a cryptic ``size mismatch`` deep inside ``load_state_dict``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

GanMode = Literal["vanilla", "lsgan"]
Padding = Literal["zeros", "reflect"]
_Config = TypeVar("_Config")


@dataclass
class ModelConfig:
    """Architecture of the two VAEs (encoder + generator per domain) and the two discriminators.

    The encoder is ``conv7 -> n_downsample strided convs -> n_res_blocks residual blocks``; the
    generator mirrors it. Of the ``n_res_blocks`` residual blocks, the last ``n_shared`` of each
    encoder and the first ``n_shared`` of each generator are *weight-tied* between the domains
    (one module object serves both). ``n_shared = 0`` gives two independent VAEs, the paper's
    "no weight sharing" ablation; the total depth stays the same for every ``n_shared``, so
    the ablation compares tying, not capacity.
    """

    image_size: int = 32
    channels_a: int = 3
    channels_b: int = 3
    base_channels: int = 16
    n_downsample: int = 2
    n_res_blocks: int = 4
    n_shared: int = 1
    padding: Padding = "reflect"
    # discriminator
    d_channels: int = 16
    d_max_channels: int = 256
    d_layers: int = 4
    d_scales: int = 1
    # Discriminator initialisation: "dcgan" is N(0, 0.02), the paper's (it starts a narrow D
    # with logits of std ~1e-5, blind); "pytorch" is the framework's default (Kaiming uniform,
    # logits of std ~4e-3); "kaiming" is He-normal for LeakyReLU (logits of std ~1).
    # Encoders and generators always use N(0, 0.02).
    d_init: str = "dcgan"

    @property
    def latent_channels(self) -> int:
        return self.base_channels * 2**self.n_downsample

    @property
    def latent_size(self) -> int:
        return self.image_size // 2**self.n_downsample

    def validate(self) -> None:
        """Refuse configurations that cannot build a consistent model, naming the field."""
        if not 0 <= self.n_shared <= self.n_res_blocks:
            raise ValueError(
                f"model.n_shared={self.n_shared} must lie in 0..n_res_blocks={self.n_res_blocks}"
            )
        if self.image_size % 2**self.n_downsample:
            raise ValueError(
                f"model.image_size={self.image_size} must be divisible by "
                f"2**n_downsample={2**self.n_downsample}"
            )
        smallest = self.image_size // 2 ** (self.d_scales - 1)
        if smallest // 2**self.d_layers < 1:
            raise ValueError(
                f"model.d_layers={self.d_layers} halves the {smallest}px input "
                f"(scale {self.d_scales}) below one pixel; use fewer layers or scales"
            )
        if self.d_init not in ("dcgan", "pytorch", "kaiming"):
            raise ValueError(f"model.d_init={self.d_init!r} must be dcgan, pytorch or kaiming")
        _at_least(
            0, **{"model.n_downsample": self.n_downsample, "model.n_res_blocks": self.n_res_blocks}
        )
        for name in (
            "d_max_channels",
            "base_channels",
            "d_channels",
            "d_layers",
            "d_scales",
            "channels_a",
            "channels_b",
            "image_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class LossConfig:
    """Weights of the UNIT objective (paper defaults: lambda0..lambda4 = 10, 0.1, 100, 0.1, 100)."""

    gan: float = 10.0
    kl: float = 0.1
    recon: float = 100.0
    cycle_kl: float = 0.1
    cycle: float = 100.0
    gan_mode: GanMode = "vanilla"
    use_cycle: bool = True


@dataclass
class OptimConfig:
    lr: float = 1e-4
    # The discriminators' learning rate is ``lr * dis_lr_mult`` (1 in the paper; > 1 is the
    # two time-scale update rule of Heusel et al., 2017, for discriminators that lag behind).
    dis_lr_mult: float = 1.0
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4


#: Where a run's images come from: the embedded map world (generated, offline), or a dataset
#: of the paper on disk (:mod:`unitlab.data.paper_datasets`) under ``data.root``.
SOURCES = ("mapworld", "maps", "folders", "celeba")


@dataclass
class DataConfig:
    """The images a run trains and is scored on: by default the embedded map world.

    ``source`` picks the dataset (:data:`SOURCES`); the map-world fields (``train_size``,
    ``zoom``, ``look``) shape the generated world, the others a dataset on disk under ``root``.
    ``test_size`` caps the held-out images of either.
    """

    source: str = "mapworld"
    train_size: int = 2000
    test_size: int = 200
    seed: int = 0
    # The map world's view (see ``mapworld.paired``): ``zoom`` times wider features, and the
    # satellite ``look``. The defaults are the original world, so that a config saved before
    # these fields existed still means the data it was trained on.
    zoom: int = 1
    look: str = "photo"
    # A dataset on disk: its folder (``unitlab train --data-root``), the CelebA attribute(s)
    # that split the faces into two domains (``attribute`` vs not, or ``attribute`` vs
    # ``other``), the size the shorter side is resized to before the crop (0: the image size,
    # as the authors' ``new_size``), and the DataLoader's worker processes.
    root: str = ""
    attribute: str = ""
    other: str = ""
    load_size: int = 0
    workers: int = 2


@dataclass
class TrainConfig:
    """Everything one run needs; saved as ``config.json`` in the run folder."""

    preset: str = "mapworld32"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    sample_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 10
    kernels: Literal["auto", "torch", "triton"] = "auto"
    # "bf16": the forward passes under bfloat16 autocast (weights, optimiser state and the
    # losses stay fp32). Meant for CUDA; on the CPU it runs, slowly, for tests.
    precision: Literal["fp32", "bf16"] = "fp32"

    def validate(self) -> None:
        self.model.validate()
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps} must be >= 0 and batch_size >= 1")
        if self.kernels not in ("auto", "torch", "triton"):
            raise ValueError(f"kernels={self.kernels!r} must be one of auto, torch, triton")
        if self.loss.gan_mode not in ("vanilla", "lsgan"):
            raise ValueError(f"loss.gan_mode={self.loss.gan_mode!r} must be vanilla or lsgan")
        from .data.mapworld import LOOKS  # numpy only; no cycle

        _at_least(
            1,
            batch_size=self.batch_size,
            sample_every=self.sample_every,
            checkpoint_every=self.checkpoint_every,
            log_every=self.log_every,
            **{"data.zoom": self.data.zoom, "data.train_size": self.data.train_size},
            **{"data.test_size": self.data.test_size},
        )
        _at_least(0, **{"optim.lr": self.optim.lr, "optim.dis_lr_mult": self.optim.dis_lr_mult})
        _at_least(0, **{f"loss.{k}": getattr(self.loss, k) for k in _LOSS_WEIGHTS})
        if self.data.look not in LOOKS:
            raise ValueError(f"data.look={self.data.look!r} must be one of {', '.join(LOOKS)}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={self.precision!r} must be fp32 or bf16")
        self._validate_source()

    def _validate_source(self) -> None:
        d = self.data
        if d.source not in SOURCES:
            raise ValueError(f"data.source={d.source!r} must be one of {', '.join(SOURCES)}")
        _at_least(0, **{"data.load_size": d.load_size, "data.workers": d.workers})
        if d.source == "mapworld":
            return
        if not d.root:
            raise ValueError(
                f"data.source={d.source} reads a dataset on disk: give its folder with "
                f"--data-root (or --set data.root=PATH)"
            )
        if d.source == "celeba" and not d.attribute:
            raise ValueError(
                "data.source=celeba needs data.attribute (e.g. Blond_Hair, Smiling) to split "
                "the faces into two domains"
            )
        if 0 < d.load_size < self.model.image_size:
            raise ValueError(
                f"data.load_size={d.load_size} is below model.image_size="
                f"{self.model.image_size}: the crop would not fit"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config, refusing unknown fields (a typo must not silently do nothing)."""
        return _from_dict(cls, _without_legacy_fields(data), prefix="")


def _without_legacy_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Configs written before ``data.dataset`` was removed hold ``"mapworld"`` there, the only
    value it ever had: it is dropped, so old checkpoints and shipped models still load."""
    section = data.get("data")
    if not isinstance(section, dict) or "dataset" not in section:
        return data
    if section["dataset"] != "mapworld":
        raise ValueError(f"data.dataset={section['dataset']!r} is unknown; only the map world is")
    return {**data, "data": {k: v for k, v in section.items() if k != "dataset"}}


_LOSS_WEIGHTS = ("gan", "kl", "recon", "cycle_kl", "cycle")


def _at_least(bound: float, **values: float) -> None:
    """Refuse the first value below ``bound``, naming its field and value."""
    for name, value in values.items():
        if value < bound:
            raise ValueError(f"{name}={value} must be >= {bound}")


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(
            f"unknown config field(s): {', '.join(prefix + u for u in sorted(unknown))}"
        )
    kwargs = {}
    for name, value in data.items():
        sub = _NESTED.get(name)
        if sub is not None and cls is TrainConfig:
            kwargs[name] = _from_dict(sub, value, prefix=f"{name}.")
        else:
            kwargs[name] = value
    return cls(**kwargs)


_NESTED = {"model": ModelConfig, "loss": LossConfig, "optim": OptimConfig, "data": DataConfig}


def _mapworld32() -> TrainConfig:
    # The CPU-friendly default: finishes in a few minutes on 2 cores. One downsampling (a 16x16
    # latent) instead of the paper's two: at 32 px, an 8x8 code cannot hold 1-2 px roads (a map
    # autoencoder of this size reaches 0.72 pixel accuracy in 400 steps with a 16x16 code, 0.57
    # with 8x8), and the residual blocks cost the same (half the channels, four times the cells).
    cfg = TrainConfig(preset="mapworld32")
    cfg.model = ModelConfig(n_downsample=1)
    return cfg


def _mapworld64() -> TrainConfig:
    cfg = TrainConfig(preset="mapworld64", steps=5000, batch_size=4)
    cfg.model = ModelConfig(image_size=64, base_channels=32, d_layers=5)
    return cfg


def _unit_paper(size: int) -> TrainConfig:
    """The NIPS architecture (64-channel conv7, 2 downsamplings, 3+1 residual blocks, 5-layer D)."""
    cfg = TrainConfig(preset=f"paper{size}", steps=100_000, batch_size=1)
    cfg.model = ModelConfig(
        image_size=size,
        base_channels=64,
        n_res_blocks=4,
        n_shared=1,
        padding="zeros",
        d_channels=64,
        d_max_channels=1024,
        d_layers=5,
    )
    return cfg


def _paper_dataset(name: str, size: int, steps: int, data: DataConfig, **model: Any) -> TrainConfig:
    """A dataset of the paper with the NIPS code's architecture and objective (batch 1).

    ``steps`` is the NIPS config's ``max_iterations`` where it gives one; the paper trains to
    convergence. Override ``--steps`` for a shorter run.
    """
    cfg = _unit_paper(size)
    cfg.preset, cfg.steps, cfg.data = name, steps, data
    cfg.sample_every, cfg.checkpoint_every, cfg.log_every = 2500, 5000, 100
    cfg.model = dataclasses.replace(cfg.model, **model)
    return cfg


def _maps256() -> TrainConfig:
    # The paper's maps: training satellites vs validation maps (pix2pix ``maps``), 1 tied
    # block and a 5-layer D (its chosen setting), scored on all 1,098 validation pairs.
    # Resize 600 -> 256 (the authors' ``new_size``), no crop left, random flips.
    return _paper_dataset("maps256", 256, 200_000, DataConfig(source="maps", test_size=1098))


def _streets256() -> TrainConfig:
    # Street scenes in the folder-pair layout (trainA/trainB/testA/testB, e.g. GTA -> Cityscapes,
    # synthia -> Cityscapes): the NIPS config's multi-scale D (3 scales x 4 layers), 500k steps,
    # at the 256 px crop of the authors' released gta2city config.
    data = DataConfig(source="folders", test_size=200)
    return _paper_dataset("streets256", 256, 500_000, data, d_layers=4, d_scales=3)


def _faces128() -> TrainConfig:
    # CelebA attribute translation (NIPS blondhair.yaml): aligned faces, centre square,
    # resized to 132 and randomly cropped to 128; blond hair vs not by default
    # (--set data.attribute=Smiling, or data.other=Brown_Hair for blond vs brown).
    data = DataConfig(source="celeba", attribute="Blond_Hair", load_size=132, test_size=200)
    return _paper_dataset("faces128", 128, 2_000_000, data, d_layers=6)


def _tiny() -> TrainConfig:
    # For tests and CI: seconds, not minutes.
    cfg = TrainConfig(
        preset="tiny", steps=20, batch_size=4, sample_every=10, checkpoint_every=10, log_every=1
    )
    cfg.model = ModelConfig(
        image_size=16,
        base_channels=8,
        n_res_blocks=2,
        n_shared=1,
        d_channels=8,
        d_max_channels=32,
        d_layers=3,
    )
    cfg.data = DataConfig(train_size=64, test_size=16)
    return cfg


class Presets(Mapping[str, Callable[[], _Config]]):
    """Named configs of one task: the one preset lookup map-world UNIT and digit adaptation share.

    A mapping from name to a function making a *fresh* config (so a caller's changes never leak
    into the next run); :meth:`make` builds one and refuses an unknown name, listing the known.
    """

    def __init__(self, task: str, makers: dict[str, Callable[[], _Config]]) -> None:
        self.task, self._makers = task, makers

    def __getitem__(self, name: str) -> Callable[[], _Config]:
        return self._makers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)

    def make(self, name: str) -> _Config:
        if name not in self._makers:
            raise ValueError(
                f"unknown {self.task}preset {name!r}; known presets: {', '.join(self._makers)}"
            )
        return self._makers[name]()


PRESETS: Presets[TrainConfig] = Presets(
    "",
    {
        "mapworld32": _mapworld32,
        "mapworld64": _mapworld64,
        "paper64": lambda: _unit_paper(64),
        "paper128": lambda: _unit_paper(128),
        "paper256": lambda: _unit_paper(256),
        "maps256": _maps256,
        "streets256": _streets256,
        "faces128": _faces128,
        "tiny": _tiny,
    },
)


def get_preset(name: str) -> TrainConfig:
    """Return a fresh config for a named preset; unknown names list the known ones."""
    return PRESETS.make(name)


def apply_overrides(cfg: _Config, overrides: list[str]) -> _Config:
    """Apply ``section.field=value`` strings (e.g. ``model.n_shared=0``), typed by the field.

    Works on any dataclass config (``TrainConfig``, ``AdaptConfig``); top-level fields need
    no section (``cls=5``).
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(
                f"override {item!r} must look like field=value (e.g. model.n_shared=0)"
            )
        path, raw = item.split("=", 1)
        target: Any = cfg
        parts = path.split(".")
        for part in parts[:-1]:
            if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
                raise ValueError(f"unknown config section {part!r} in override {item!r}")
            target = getattr(target, part)
        name = parts[-1]
        known = {f.name: f for f in fields(target)}
        if name not in known:
            raise ValueError(
                f"unknown config field {path!r}; {type(target).__name__} has: {', '.join(known)}"
            )
        current = getattr(target, name)
        setattr(target, name, _parse_like(current, raw, path))
    return cfg


def _parse_like(current: Any, raw: str, path: str) -> Any:
    try:
        if isinstance(current, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise ValueError(
            f"cannot parse {raw!r} for {path} (expected {type(current).__name__})"
        ) from None
    return raw
