"""What an adaptation run reports: its source-only baseline, ``result.json`` and the table.

Each ``unitlab adapt`` run folder ends up holding ``result.json``: the final target accuracy, the
source-only baseline trained on the same split with the same classifier and budget, the paper's
number, the run's time and the machine. ``python -m unitlab.adapt.report RUN...`` turns any set
of them into the Markdown table of ``docs/results.md``, so the published numbers are exactly
what the commands wrote.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from ..data.adaptation import NAMES, AdaptationSplit
from ..machine import machine_description
from ..run import RunFolder
from .baseline import train_source_only
from .config import PAPER, AdaptConfig

RESULT = "result.json"
BASELINE = "source_only.json"
# The runs behind docs/results.md, shipped (results and logs, no weights) for notebook 07.
SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "adapt"
SHIPPED_FILES = (RESULT, BASELINE, "config.json", "log.jsonl")


def source_only(
    cfg: AdaptConfig,
    split: AdaptationSplit,
    run_dir: str | Path,
    device: str | torch.device = "cpu",
) -> dict:
    """The source-only baseline for ``cfg``'s run, cached in ``run_dir/source_only.json``.

    The same discriminator-classifier (``cfg.dis_channels``), optimiser, batch size, seed,
    augmentation and number of classifier steps as the adaptation run (``warm_start + steps``:
    the adaptation's classifier sees a source batch in each), trained on source labels alone.
    """
    path = Path(run_dir) / BASELINE
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("config") == _baseline_key(cfg):
            return cached
    result = train_source_only(
        split,
        cfg.warm_start + cfg.steps,
        cfg.batch_size,
        cfg.lr,
        cfg.seed,
        channels=cfg.dis_channels,
        device=device,
        augment=cfg.augment,
    )
    result = {k: v for k, v in result.items() if k != "history"}
    result["config"] = _baseline_key(cfg)
    RunFolder(run_dir).write_json(BASELINE, result)
    return result


def _baseline_key(cfg: AdaptConfig) -> dict:
    keys = ("source", "target", "seed", "batch_size", "dis_width", "lr", "weight_decay")
    key = {k: getattr(cfg, k) for k in keys} | {"steps": cfg.warm_start + cfg.steps}
    # Preprocessing and augmentation change the baseline too; a baseline cached before these
    # fields existed had neither, so only their presence is recorded.
    return key | {k: True for k in ("normalise", "augment") if getattr(cfg, k)}


def write_result(
    run_dir: str | Path,
    cfg: AdaptConfig,
    split: AdaptationSplit,
    final: dict,
    baseline: dict | None,
) -> dict:
    """Write and return ``run_dir/result.json`` for a finished run."""
    result = {
        "source": cfg.source,
        "target": cfg.target,
        "preset": cfg.preset,
        "steps": final["step"],
        "minutes": round(final.get("seconds", 0.0) / 60, 1),
        "target_accuracy": final["target_accuracy"],
        "source_accuracy": final["source_accuracy"],
        "source_only": None if baseline is None else baseline["target_accuracy"],
        "paper": PAPER.get((cfg.source, cfg.target)),
        "eval_images": len(split.target_eval),
        "machine": machine_description(torch.device("cpu")),
        "protocol": split.protocol,
    }
    RunFolder(run_dir).write_json(RESULT, result)
    return result


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_table(results: list[dict]) -> str:
    """Markdown: direction, source-only, unitlab, the paper, steps and minutes."""
    lines = [
        "| direction | source-only | unitlab | paper | steps | minutes | eval images |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        direction = f"{NAMES[r['source']]} -> {NAMES[r['target']]}"
        lines.append(
            f"| {direction} | {_fmt(r['source_only'])} | {_fmt(r['target_accuracy'])} | "
            f"{_fmt(r['paper'])} | {r['steps']} | {r['minutes']} | {r['eval_images']:,} |"
        )
    return "\n".join(lines)


def load_results(run_dirs: list[str | Path]) -> list[dict]:
    """``result.json`` of each run folder; a folder without one is named in the error."""
    results = []
    for run in run_dirs:
        path = Path(run) / RESULT
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: has `unitlab adapt` finished there?")
        results.append(json.loads(path.read_text()))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Markdown table of finished adaptation runs.")
    parser.add_argument("runs", nargs="+", help="run folders holding result.json")
    parser.add_argument(
        "--ship", action="store_true", help=f"also copy their results and logs into {SHIPPED}"
    )
    args = parser.parse_args(argv)
    results = load_results(args.runs)
    if args.ship:
        for run, r in zip(args.runs, results, strict=True):
            dest = SHIPPED / f"{r['source']}-{r['target']}"
            dest.mkdir(parents=True, exist_ok=True)
            for name in SHIPPED_FILES:
                shutil.copyfile(Path(run) / name, dest / name)
    print(format_table(results))
    for r in results:
        print(f"\n{NAMES[r['source']]} -> {NAMES[r['target']]}: {r['machine']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
