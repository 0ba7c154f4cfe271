"""Recipe sweeps: many short UNIT runs, one accuracy curve each, in parallel processes.

Finding a recipe that translates is an empirical search (``docs/mapworld_experiments.md``):
each candidate is a preset plus ``--set`` overrides, trained for a few thousand steps while the
held-out pixel accuracy is measured every ``eval_every`` steps. On a GPU hundreds of 32 px runs
fit in minutes, so the sweep runs ``--workers`` processes side by side (each with its own torch
thread budget) and appends one JSON line per finished run to ``--out``; runs already in the
file are skipped, so an interrupted sweep continues.

    python -m unitlab.sweep recipes.txt --out sweep.jsonl --steps 2000 --eval-every 250 \\
        --seeds 0 1 2 --workers 8 --device cuda

``recipes.txt`` holds one recipe a line: a name, a colon, then overrides (``#`` comments)::

    lead: data.zoom=2 data.look=clear loss.gan_mode=lsgan optim.lr=1e-3 model.n_shared=4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

from .config import apply_overrides, get_preset


def parse_recipes(text: str) -> dict[str, list[str]]:
    """``name: field=value ...`` lines -> ``{name: overrides}``; blank lines and ``#`` skipped."""
    recipes: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, rest = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"recipe line {number} must look like 'name: field=value ...'")
        if name.strip() in recipes:
            raise ValueError(f"recipe line {number}: the name {name.strip()!r} is used twice")
        recipes[name.strip()] = rest.split()
    if not recipes:
        raise ValueError("no recipes given")
    return recipes


def run_recipe(job: dict[str, Any]) -> dict[str, Any]:
    """Train one recipe with one seed; return its record (the curve of held-out accuracy)."""
    import torch

    from .data.sources import evaluation_pairs, training_data
    from .trainer import Trainer, train_with_curve

    if job["threads"]:  # a worker process of its own; in-process runs keep the caller's setting
        torch.set_num_threads(job["threads"])
    cfg = apply_overrides(get_preset(job["preset"]), job["overrides"])
    cfg.seed, cfg.steps = job["seed"], job["steps"]
    cfg.validate()
    data_a, data_b = training_data(cfg)
    trainer = Trainer(cfg, device=job["device"])
    start = time.perf_counter()
    curve = train_with_curve(trainer, data_a, data_b, evaluation_pairs(cfg), job["eval_every"])
    return {
        "recipe": job["name"],
        "preset": job["preset"],
        "overrides": job["overrides"],
        "seed": job["seed"],
        "steps": cfg.steps,
        "curve": curve,
        "final": curve[-1][1],
        "best": max(acc for _, acc in curve),
        "seconds": round(time.perf_counter() - start, 1),
        "device": job["device"],
    }


def _done(out: Path) -> set[tuple[str, int, int]]:
    if not out.is_file():
        return set()
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {(r["recipe"], r["seed"], r["steps"]) for r in rows}


def sweep(
    recipes: dict[str, list[str]],
    out: str | Path,
    preset: str = "mapworld32",
    seeds: tuple[int, ...] = (0,),
    steps: int = 1000,
    eval_every: int = 250,
    workers: int = 1,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Run every (recipe, seed) not yet in ``out``; append each record as it finishes."""
    if steps < 1 or eval_every < 1 or workers < 1:
        raise ValueError("steps, eval_every and workers must be >= 1")
    for name, overrides in recipes.items():  # refuse a typo before hours of training
        try:
            apply_overrides(get_preset(preset), overrides).validate()
        except ValueError as exc:
            raise ValueError(f"recipe {name!r}: {exc}") from None
    out = Path(out)
    done = _done(out)
    jobs = [
        {
            "name": name,
            "preset": preset,
            "overrides": overrides,
            "seed": seed,
            "steps": steps,
            "eval_every": eval_every,
            "device": device,
            "threads": None if workers == 1 else max(1, mp.cpu_count() // workers),
        }
        for name, overrides in recipes.items()
        for seed in seeds
        if (name, seed, steps) not in done
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    records = []
    if workers == 1:
        results = map(run_recipe, jobs)
    else:
        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(run_recipe, jobs)
    for record in results:
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"{record['recipe']:24s} seed {record['seed']}: final {record['final']:.3f}, "
            f"best {record['best']:.3f} ({record['seconds']:.0f} s)",
            flush=True,
        )
        records.append(record)
    if workers > 1:
        pool.close()
        pool.join()
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m unitlab.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipes", help="a text file of 'name: field=value ...' lines")
    parser.add_argument("--out", required=True, help="JSON-lines file of results (appended)")
    parser.add_argument("--preset", default="mapworld32")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    try:
        recipes = parse_recipes(Path(args.recipes).read_text())
        sweep(
            recipes,
            args.out,
            args.preset,
            tuple(args.seeds),
            args.steps,
            args.eval_every,
            args.workers,
            args.device,
        )
    except (ValueError, OSError) as exc:
        print(f"python -m unitlab.sweep: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
