"""Small trained models that ship with the package, so the course's explorers open instantly.

A pretrained file is a checkpoint without optimiser or RNG state (config, step and weights in
half precision), written by :func:`export` from any run and read by
:func:`unitlab.inference.load_model` like any checkpoint. :data:`RECIPES` says how each shipped
model was trained; ``python -m unitlab.pretrained`` retrains them all and rewrites the files in
``unitlab/pretrained/``. :func:`load_pretrained` loads a shipped file, or, where it is missing
(e.g. a source checkout without the files), trains the recipe once into the user cache.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import half_precision, load_checkpoint, save_checkpoint
from .config import TrainConfig, apply_overrides, get_preset
from .data.paths import cache_dir
from .inference import load_model
from .models import UNIT

PRETRAINED_DIR = Path(__file__).parent / "pretrained"


@dataclass(frozen=True)
class Recipe:
    """How a shipped model is trained: a preset, overrides and a step count (None: preset's)."""

    preset: str
    overrides: list[str] = field(default_factory=list)
    steps: int | None = None

    def config(self) -> TrainConfig:
        cfg = apply_overrides(get_preset(self.preset), list(self.overrides))
        if self.steps is not None:
            cfg.steps = self.steps
        return cfg


RECIPES: dict[str, Recipe] = {
    # exactly what `unitlab train` runs with no arguments
    "mapworld32": Recipe("mapworld32"),
}


def export(run_or_file: str | Path, path: str | Path) -> Path:
    """Write a run's model as a small pretrained file (fp16 weights, no optimiser state).

    A run folder's ``metrics.json`` (what ``unitlab train`` printed at the end) goes along, so
    the file says how well it scored: :func:`pretrained_metrics`.
    """
    state = load_checkpoint(run_or_file)
    small = {
        "config": state["config"],
        "step": state["step"],
        "model": half_precision(state["model"]),
    }
    metrics = Path(run_or_file) / "metrics.json"
    if metrics.is_file():
        small["metrics"] = json.loads(metrics.read_text())
    return save_checkpoint(small, path)


def pretrained_path(name: str) -> Path:
    if name not in RECIPES:
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(RECIPES)}")
    return PRETRAINED_DIR / f"{name}.pt"


def train_recipe(name: str, run_dir: str | Path, progress: bool = False) -> Path:
    """Train recipe ``name`` into ``run_dir`` with :func:`unitlab.train.train_run`, the very
    call ``unitlab train`` makes (``metrics.json`` included); return the folder."""
    from .train import train_run

    train_run(RECIPES[name].config(), run_dir, progress=progress)
    return Path(run_dir)


def load_pretrained(
    name: str = "mapworld32", train_if_missing: bool = True, progress: bool = False
) -> tuple[UNIT, TrainConfig]:
    """``(model in eval mode, config)`` of a shipped model; train it (once, cached) if absent."""
    return load_model(_resolve(name, train_if_missing, progress))


def pretrained_metrics(name: str = "mapworld32") -> dict[str, float] | None:
    """What the run behind a pretrained model printed at its end (None if it was not kept)."""
    return load_checkpoint(_resolve(name, train_if_missing=False)).get("metrics")


def _resolve(name: str, train_if_missing: bool, progress: bool = False) -> Path:
    """The shipped file, else the cached one, else (if allowed) train the recipe into the cache."""
    path = pretrained_path(name)
    if not path.is_file():
        cached = cache_dir() / "pretrained" / f"{name}.pt"
        if not cached.is_file():
            if not train_if_missing:
                raise FileNotFoundError(
                    f"no pretrained model {name!r} at {path} or {cached}; run "
                    f"`python -m unitlab.pretrained {name}`"
                )
            run = train_recipe(name, cache_dir() / "pretrained" / f"{name}-run", progress)
            export(run, cached)
        path = cached
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unitlab.pretrained",
        description="Retrain the shipped models from their recipes and write them as files.",
    )
    parser.add_argument("names", nargs="*", help=f"models (default: all of {', '.join(RECIPES)})")
    parser.add_argument("--out", default=str(PRETRAINED_DIR), help="folder for the .pt files")
    parser.add_argument("--runs", default="runs/pretrained", help="folder for the training runs")
    args = parser.parse_args(argv)
    for name in args.names or list(RECIPES):
        pretrained_path(name)  # validates the name before hours of training
        run = train_recipe(name, Path(args.runs) / name, progress=True)
        out = export(run, Path(args.out) / f"{name}.pt")
        size = out.stat().st_size / 1e6
        print(f"{name}: {out} ({size:.1f} MB), trained with {RECIPES[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
