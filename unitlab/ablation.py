"""The paper's ablation on the map world: the same protocol for every variant of UNIT.

Each variant is the default preset plus config overrides (no tying, no cycle, 1..4 tied blocks,
shallow or deep discriminators). A run trains with the same seed and step count as the others,
measures the satellite->map pixel accuracy on the held-out pairs every ``eval_every`` steps (the
curve shows *when* a variant is good, not only where it ends), and keeps small files that the
ablation explorer of the course reads: the loss log, the accuracy curve and a grid of held-out
translations. Each run writes its record last, as ``<variant>/seed<k>/record.json``; runs that
have one are skipped, so an interrupted ablation continues where it stopped, and several
processes may share one folder (give each its own variants).

Run it with ``unitlab ablation --out docs/ablation`` (see ``--help``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainConfig, apply_overrides, get_preset
from .images import save_grid, uint8_to_tensor

# name -> overrides of the default preset. The paper's maps numbers (average pixel accuracy):
# UNIT 0.600, no weight sharing 0.569, no cycle 0.568.
VARIANTS: dict[str, list[str]] = {
    "UNIT (1 tied)": [],
    "no weight sharing": ["model.n_shared=0"],
    "no cycle": ["loss.use_cycle=false"],
    "2 tied": ["model.n_shared=2"],
    "3 tied": ["model.n_shared=3"],
    "4 tied": ["model.n_shared=4"],
    "shallow D (3 layers)": ["model.d_layers=3"],
    "deep D (5 layers)": ["model.d_layers=5"],
}
PAPER = {"UNIT (1 tied)": 0.600, "no weight sharing": 0.569, "no cycle": 0.568}
RECORD = "record.json"
# The ablation shipped with the package (read by notebook 06's explorer); `unitlab ablation
# --out` writes the same layout anywhere.
SHIPPED = Path(__file__).parent / "pretrained" / "ablation"


def slug(name: str) -> str:
    """A folder name for a variant: ``"UNIT (1 tied)" -> "unit-1-tied"``."""
    kept = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in kept.split("-") if part)


def variant_config(name: str, preset: str = "mapworld32", steps: int | None = None) -> TrainConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation variant {name!r}; known: {', '.join(VARIANTS)}")
    cfg = apply_overrides(get_preset(preset), list(VARIANTS[name]))
    if steps is not None:
        cfg.steps = steps
    return cfg


def run_variant(
    name: str,
    seed: int,
    out: str | Path,
    preset: str = "mapworld32",
    steps: int | None = None,
    eval_every: int = 100,
) -> dict[str, Any]:
    """Train one variant with one seed through :func:`unitlab.train.train_run` (what
    ``unitlab train`` runs); return its record and keep only the run's small files."""
    from .data.sources import evaluation_pairs
    from .evaluate import translate_uint8
    from .inference import load_model
    from .machine import machine_description
    from .run import LOCK_NAME, RunFolder
    from .train import train_run

    cfg = variant_config(name, preset, steps)
    cfg.seed = seed
    cfg.sample_every = cfg.checkpoint_every = max(cfg.steps, 1)  # one grid/checkpoint, at the end
    run_dir = Path(out) / slug(name) / f"seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short before its record: start again
    curve: list[tuple[int, float]] = []
    start = time.perf_counter()
    train_run(
        cfg, run_dir, eval_every=eval_every, progress=False,
        on_eval=lambda step, accuracy: curve.append((step, accuracy)),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    model, _ = load_model(run_dir)
    folder = RunFolder(run_dir)
    folder.checkpoint.unlink()  # the records stay small
    (run_dir / LOCK_NAME).unlink(missing_ok=True)  # a finished, shipped folder needs no lock
    os.replace(folder.sample_path(cfg.steps), run_dir / "samples.png")
    shutil.rmtree(run_dir / RunFolder.SAMPLES)
    sat, maps = evaluation_pairs(cfg)
    shown = slice(0, 8)
    save_grid(
        [uint8_to_tensor(sat[shown]), uint8_to_tensor(translate_uint8(model, sat[shown]))]
        + [uint8_to_tensor(maps[shown])],
        run_dir / "translations.png",
    )
    record = {
        "variant": name,
        "preset": preset,
        "overrides": VARIANTS[name],
        "seed": seed,
        "steps": cfg.steps,
        "accuracy": curve[-1][1],
        "best": max(acc for _, acc in curve),
        "curve": curve,
        "seconds": round(seconds, 1),
        "folder": str(run_dir.relative_to(out)),
        "machine": machine_description(torch.device("cpu")),
    }
    folder.write_json(RECORD, record)  # written last and atomically: its presence means done
    return record


def load_results(out: str | Path) -> list[dict[str, Any]]:
    """Every run record under ``out``, in :data:`VARIANTS` order, then by seed."""
    runs = []
    for path in sorted(Path(out).glob(f"*/seed*/{RECORD}")):
        try:
            runs.append(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not an ablation record: {exc}") from exc
    order = {name: i for i, name in enumerate(VARIANTS)}
    return sorted(runs, key=lambda r: (order.get(r["variant"], len(order)), r["seed"]))


def read_log(out: str | Path, record: dict[str, Any]) -> list[dict[str, float]]:
    """The loss log (``log.jsonl`` rows) of one run record found under ``out``."""
    path = Path(out) / record["folder"] / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_ablation(
    out: str | Path,
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    preset: str = "mapworld32",
    steps: int | None = None,
    eval_every: int = 100,
    log=print,
) -> list[dict[str, Any]]:
    """Run every (variant, seed) not yet in ``out/results.json``; return all records."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(variants or VARIANTS)
    for name in names:
        variant_config(name, preset, steps)  # fail on a bad name before any training
    for name in names:
        for seed in seeds:
            if (out / slug(name) / f"seed{seed}" / RECORD).is_file():
                continue
            record = run_variant(name, seed, out, preset, steps, eval_every)
            log(
                f"{name:22s} seed {seed}: accuracy {record['accuracy']:.3f} "
                f"(best {record['best']:.3f}) in {record['seconds']:.0f} s"
            )
    return load_results(out)


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant (in :data:`VARIANTS` order): mean/std of final and best accuracy over seeds."""
    rows = []
    for name in VARIANTS:
        mine = [r for r in runs if r["variant"] == name]
        if not mine:
            continue
        final = np.array([r["accuracy"] for r in mine])
        best = np.array([r["best"] for r in mine])
        rows.append(
            {
                "variant": name,
                "seeds": len(mine),
                "accuracy": float(final.mean()),
                "accuracy_std": float(final.std()),
                "best": float(best.mean()),
                "paper": PAPER.get(name),
            }
        )
    return rows


def format_table(runs: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`summarise` (the paper's number where it has one)."""
    lines = [
        "| variant | seeds | final accuracy | best during training | paper |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in summarise(runs):
        spread = f" ± {row['accuracy_std']:.3f}" if row["seeds"] > 1 else ""
        paper = f"{row['paper']:.3f}" if row["paper"] is not None else "—"
        lines.append(
            f"| {row['variant']} | {row['seeds']} | {row['accuracy']:.3f}{spread} "
            f"| {row['best']:.3f} | {paper} |"
        )
    return "\n".join(lines)
