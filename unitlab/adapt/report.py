"""What an adaptation run reports: its source-only baseline, ``result.json`` and the table.

Each ``unitlab adapt`` run folder ends up holding ``result.json``: the final target accuracy, the
source-only baseline trained on the same split with the same classifier and budget, the
translation accuracy, the paper's number, the run's time and the machine. ``python -m
unitlab.adapt.report RUN...`` turns any set of them into the Markdown tables of
``docs/results.md`` (one row per run, and per protocol and direction the mean and spread over
seeds), and ``--json FILE`` into per-seed records, so the published numbers are exactly what the
commands wrote.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch

from ..checkpoint import half_precision, load_checkpoint, save_checkpoint
from ..data.adaptation import COLOUR, NAMES, AdaptationSplit
from ..machine import machine_description
from ..run import RunFolder
from .baseline import train_source_only
from .config import PAPER, AdaptConfig

RESULT = "result.json"
BASELINE = "source_only.json"
# The runs behind docs/results.md, shipped (results, logs and fp16 weights) for notebook 07.
SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "adapt"
SHIPPED_FILES = (RESULT, BASELINE, "config.json", "log.jsonl")
SHIPPED_MODEL = "model.pt"


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
    preprocessing = {k: True for k in ("normalise", "augment") if getattr(cfg, k)}
    if cfg.source_grey and cfg.source in COLOUR:  # a grey source is left as it is
        preprocessing["source_grey"] = True
    return key | preprocessing


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
        "seed": cfg.seed,
        "normalised": cfg.normalise,
        "translation_accuracy": final.get("translation_accuracy"),
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
    """``result.json`` of each run folder; a folder without one is named in the error.

    Results written before ``seed``, ``normalised`` and ``translation_accuracy`` were recorded
    get them from the folder's ``config.json`` and the last evaluated row of ``log.jsonl``.
    """
    results = []
    for run in run_dirs:
        path = Path(run) / RESULT
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: has `unitlab adapt` finished there?")
        results.append(_completed(json.loads(path.read_text()), Path(run)))
    return results


def _completed(result: dict, run: Path) -> dict:
    if all(k in result for k in ("seed", "normalised", "translation_accuracy")):
        return result
    config = json.loads((run / "config.json").read_text())
    evaluated = [
        row
        for row in map(json.loads, (run / "log.jsonl").read_text().splitlines())
        if "translation_accuracy" in row
    ]
    return {
        "seed": config["seed"],
        "normalised": config.get("normalise", False),
        "translation_accuracy": evaluated[-1]["translation_accuracy"] if evaluated else None,
        **result,
    }


def _protocol(result: dict) -> str:
    return "normalised" if result["normalised"] else "raw"


def _preset(result: dict) -> str:
    """The run's preset; results written before it was recorded came from ``cpu``."""
    return result.get("preset", "cpu")


def _direction(result: dict) -> str:
    return f"{result['source']}-{result['target']}"


def per_seed_records(results: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """``{protocol: {direction: [{seed, preset, unitlab, source_only, translation}, ...]}}``,
    the protocols ``normalised`` / ``raw`` and directions such as ``mnist-usps``; sorted by
    preset, then seed. Two results of one protocol, direction, preset and seed are refused
    (which one would count?)."""
    records: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        runs = records.setdefault(_protocol(r), {}).setdefault(_direction(r), [])
        preset = _preset(r)
        if any(x["seed"] == r["seed"] and x["preset"] == preset for x in runs):
            raise ValueError(
                f"two {_protocol(r)} {_direction(r)} {preset} results for seed {r['seed']}: "
                "pass one"
            )
        runs.append(
            {
                "seed": r["seed"],
                "preset": preset,
                "unitlab": r["target_accuracy"],
                "source_only": r["source_only"],
                "translation": r["translation_accuracy"],
            }
        )
    for by_direction in records.values():
        for runs in by_direction.values():
            runs.sort(key=lambda x: (x["preset"], x["seed"]))
    return records


def _mean_sd(values: list[float | None]) -> str:
    """``mean ± sd`` over seeds (one value as it is; missing values left out)."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return _fmt(values[0] if values else None)
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _gain(runs: list[dict]) -> str:
    """UNIT minus source-only, paired by seed: the mean and how many standard errors it is."""
    gains = [r["unitlab"] - r["source_only"] for r in runs if r["source_only"] is not None]
    if not gains:
        return "-"
    mean = statistics.mean(gains)
    se = statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 else 0.0
    return f"{mean:+.4f} ({mean / se:+.1f} SE)" if se > 0 else f"{mean:+.4f}"


def format_summary(results: list[dict]) -> str:
    """Markdown: per protocol, direction and preset, mean ± sd over seeds of UNIT, source-only
    and the translation accuracy, and UNIT's gain over source-only in standard errors (paired
    seeds)."""
    lines = [
        "| protocol | direction | preset | seeds | source-only | unitlab | gain over source-only "
        "| translation | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    records = per_seed_records(results)
    for protocol, by_direction in sorted(records.items()):
        for direction, runs in sorted(by_direction.items()):
            source, target = direction.split("-")
            paper = PAPER.get((source, target))
            for preset in sorted({r["preset"] for r in runs}):
                same = [r for r in runs if r["preset"] == preset]
                lines.append(
                    f"| {protocol} | {NAMES[source]} -> {NAMES[target]} | {preset} | "
                    f"{len(same)} | {_mean_sd([r['source_only'] for r in same])} | "
                    f"{_mean_sd([r['unitlab'] for r in same])} | {_gain(same)} | "
                    f"{_mean_sd([r['translation'] for r in same])} | {_fmt(paper)} |"
                )
    return "\n".join(lines)


def export_weights(run_or_file: str | Path, path: str | Path) -> Path:
    """Write a run's networks as a small file (fp16 weights; no optimiser or RNG state: a sixth
    of the checkpoint's size) that :func:`unitlab.adapt.load_trainer` reads, for notebook 07."""
    state = load_checkpoint(run_or_file)
    small = {
        net: half_precision(state[net])
        for net in ("gen", "dis", "critic", "dis_ema")
        if net in state
    }
    return save_checkpoint({"config": state["config"], "step": state["step"], **small}, path)


def shipped_name(result: dict) -> str:
    """The folder a run ships to: its direction, and its preset unless it is ``cpu``."""
    preset = _preset(result)
    return _direction(result) + ("" if preset == "cpu" else f"-{preset}")


def ship(run: str | Path, result: dict, into: Path = SHIPPED) -> Path:
    """Copy a run's results and logs, and its networks as a small fp16 file (``model.pt``: a
    few MB), into ``into/shipped_name(result)``, where notebook 07 reads them."""
    dest = into / shipped_name(result)
    dest.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        shutil.copyfile(Path(run) / name, dest / name)
    export_weights(run, dest / SHIPPED_MODEL)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Markdown table of finished adaptation runs.")
    parser.add_argument("runs", nargs="+", help="run folders holding result.json")
    parser.add_argument(
        "--ship",
        action="store_true",
        help=f"also copy their results, logs and weights into {SHIPPED}",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="also write the per-seed records, by protocol and direction, to FILE "
        "(e.g. docs/adaptation_results.json)",
    )
    args = parser.parse_args(argv)
    results = load_results(args.runs)
    if args.json:
        RunFolder(Path(args.json).parent).write_json(
            Path(args.json).name, per_seed_records(results)
        )
    if args.ship:
        for run, r in zip(args.runs, results, strict=True):
            ship(run, r)
    print(format_table(results))
    print()
    print(format_summary(results))
    for r in results:
        print(f"\n{NAMES[r['source']]} -> {NAMES[r['target']]}: {r['machine']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
