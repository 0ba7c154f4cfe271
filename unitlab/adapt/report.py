"""What an adaptation run reports: its source-only baseline, ``result.json`` and the table.

Each ``unitlab adapt`` run folder ends up holding ``result.json``: the final target accuracy, the
source-only baseline trained on the same split with the same classifier and budget, the
translation accuracy, the paper's number, the run's time and the machine. ``python -m
unitlab.adapt.report RUN...`` turns any set of them into the Markdown tables of
``docs/results.md`` (one row per run, and per protocol and direction the mean and spread over
seeds), and ``--json FILE`` into per-seed records, so the published numbers are exactly what the
commands wrote; ``--merge`` keeps the file's records of runs not passed (earlier sessions' run
folders need not be on this machine).

Two readings of the translations: ``translation_accuracy`` is the run's own classifier (b's path)
reading source digits translated into the target domain; with ``cls_translated`` > 0 that
classifier has been *trained* on those translations, so it can read them whatever they look
like. ``translation_oracle`` is independent: a fresh classifier trained on half of the target's
evaluation images with their labels (the adaptation never sees them) reads the translations, so
it is high only if translations carry the digit *and* look like target digits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from ..checkpoint import half_precision, load_checkpoint, save_checkpoint
from ..data.adaptation import COLOUR, NAMES, AdaptationSplit, LabeledImages
from ..machine import machine_description
from ..run import RunFolder, RunLock
from .baseline import accuracy, fit_source_classifier, train_source_only
from .config import ADAPT_PRESETS, PAPER, AdaptConfig
from .models import DigitDiscriminator
from .trainer import PROBE, AdaptTrainer, load_run, run_adaptation

RESULT = "result.json"
BASELINE = "source_only.json"
# The oracle's classifier steps (fewer if the run's whole classifier budget is smaller).
ORACLE_STEPS = 2000
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


def translation_oracle(
    cfg: AdaptConfig,
    split: AdaptationSplit,
    translate: Callable[[torch.Tensor], torch.Tensor],
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """An independent reading of a run's translations, with the target's labels.

    A fresh discriminator-classifier (``cfg.dis_channels``, warped batches) is trained on the
    even rows of ``split.target_eval`` with their labels and scored on the odd rows
    (``oracle_accuracy``: how well it reads real target digits, the ceiling of what follows);
    then it reads the ``PROBE`` (2,000) source training digits that the run's own classifier
    reads (``AdaptTrainer.evaluate``), translated by ``translate`` (a batch of source
    images -> the same digits in the target domain), against their source labels
    (``translation_oracle``), and the same digits untranslated (``source_oracle``): a
    translation that helps reads better than its source. A diagnostic only: the oracle never
    feeds back into training, and the run's reported target accuracy never comes from it.
    """
    evaluation, steps = split.target_eval, min(ORACLE_STEPS, cfg.warm_start + cfg.steps)
    teach, hold = (_rows(evaluation, rows) for rows in (slice(0, None, 2), slice(1, None, 2)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 5)
        oracle = DigitDiscriminator(split.channels, cfg.dis_channels).to(device)
        generator = torch.Generator().manual_seed(cfg.seed + 5)
        fit_source_classifier(
            oracle, teach, steps, cfg.batch_size, cfg.lr, generator, None, augment=True
        )
    source = split.source_train
    images, labels = source.images[:PROBE].to(device), source.labels[:PROBE]
    with torch.no_grad():
        translated = torch.cat([translate(x) for x in images.split(500)])
    return {
        "oracle_accuracy": accuracy(oracle, hold.images, hold.labels, "a"),
        "translation_oracle": accuracy(oracle, translated, labels, "a"),
        "source_oracle": accuracy(oracle, images, labels, "a"),
    }


def _rows(images: LabeledImages, rows: slice) -> LabeledImages:
    return LabeledImages(
        images.images[rows], images.origin, images.indices[rows], images.labels[rows]
    )


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
        "settings": preset_settings(cfg.to_dict()),
        "seed": cfg.seed,
        "normalised": cfg.normalise,
        "translation_accuracy": final.get("translation_accuracy"),
        "translation_oracle": final.get("translation_oracle"),
        "source_oracle": final.get("source_oracle"),
        "oracle_accuracy": final.get("oracle_accuracy"),
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


# Fields a run may set without changing what its preset stands for: the direction and seed,
# the protocol (each record says whether it is size-normalised) and how often it logs.
_NOT_SETTINGS = frozenset(
    {"preset", "source", "target", "seed", "normalise", "eval_every", "checkpoint_every",
     "log_every"}
)  # fmt: skip


def preset_settings(config: dict) -> str:
    """Where a run's config departs from its preset, as ``field=value`` words in field order
    ("" for the preset as it is), so that a record says what ran: ``cpu-frames`` with
    ``--set latent_size=8`` is not ``cpu-frames``. Fields the config lacks (written before they
    existed) count as their defaults."""
    preset = ADAPT_PRESETS.make(config.get("preset", "cpu")).to_dict()
    defaults = AdaptConfig().to_dict()
    return " ".join(
        f"{name}={config.get(name, defaults[name])}"
        for name, value in preset.items()
        if name not in _NOT_SETTINGS and config.get(name, defaults[name]) != value
    )


def adapt_run(
    cfg: AdaptConfig,
    split: AdaptationSplit,
    run_dir: str | Path,
    *,
    resume: bool = False,
    baseline: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
) -> dict:
    """A whole adaptation run as one call: its source-only baseline (cached in the folder), the
    adaptation (:func:`run_adaptation`), the oracle's reading of its translations
    (:func:`translation_oracle`) and ``result.json``, which it returns.

    A fresh run refuses a folder that already holds one; ``resume`` continues it and refuses a
    changed config (only ``steps`` may change). The folder belongs to this process meanwhile.
    """
    cfg.validate()
    folder = RunFolder(run_dir)
    with RunLock(run_dir):
        if not resume and folder.has_checkpoint():
            raise ValueError(
                f"{run_dir} already holds a run; pass --resume to continue it or "
                f"--name to start another (nothing was overwritten)"
            )
        reference = source_only(cfg, split, run_dir, device) if baseline else None
        final = run_adaptation(
            cfg, split, run_dir, resume, progress=progress, on_eval=on_eval, device=device
        )
        # The independent reading of the translations, from the checkpoint the run just wrote.
        trainer = AdaptTrainer(cfg, split, device)
        trainer.load_state_dict(folder.load(map_location=device), where=str(folder.checkpoint))
        final |= translation_oracle(cfg, split, lambda x: trainer.gen.translate(x, "a2b"), device)
        return write_result(run_dir, cfg, split, final, reference)


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
    config_file = run / "config.json"
    if "settings" not in result:  # written before runs recorded their settings
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        result = {**result, "settings": preset_settings(config) if config else ""}
    if all(k in result for k in ("seed", "normalised", "translation_accuracy")):
        return result
    config = json.loads(config_file.read_text())
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


Records = dict[str, dict[str, list[dict]]]


def per_seed_records(results: list[dict]) -> Records:
    """``{protocol: {direction: [{seed, preset, settings, unitlab, source_only, translation,
    translation_oracle, source_oracle}, ...]}}``, the protocols ``normalised`` / ``raw`` and
    directions such as ``mnist-usps``; ``settings`` is where the run departed from its preset
    (:func:`preset_settings`). Sorted by preset, settings, then seed. Two results of one
    protocol, direction, preset, settings and seed are refused (which one would count?)."""
    records: Records = {}
    for r in results:
        runs = records.setdefault(_protocol(r), {}).setdefault(_direction(r), [])
        preset, settings = _preset(r), r.get("settings", "")
        if any(_recipe(x) == (preset, settings) and x["seed"] == r["seed"] for x in runs):
            raise ValueError(
                f"two {_protocol(r)} {_direction(r)} {_name(preset, settings)} results for seed "
                f"{r['seed']}: pass one"
            )
        runs.append(
            {
                "seed": r["seed"],
                "preset": preset,
                "settings": settings,
                "unitlab": r["target_accuracy"],
                "source_only": r["source_only"],
                "translation": r["translation_accuracy"],
                "translation_oracle": r.get("translation_oracle"),
                "source_oracle": r.get("source_oracle"),
            }
        )
    _sort(records)
    return records


def merge_records(old: Records, new: Records) -> Records:
    """``old``'s records with ``new``'s added; a new record replaces an old one of the same
    protocol, direction, preset, settings and seed (a rerun counts, not both)."""
    merged: Records = {p: {d: list(runs) for d, runs in by.items()} for p, by in old.items()}
    for protocol, by_direction in new.items():
        for direction, runs in by_direction.items():
            kept = merged.setdefault(protocol, {}).setdefault(direction, [])
            fresh = {(*_recipe(r), r["seed"]) for r in runs}
            kept[:] = [r for r in kept if (*_recipe(r), r["seed"]) not in fresh] + runs
    _sort(merged)
    return merged


def _sort(records: Records) -> None:
    for by_direction in records.values():
        for runs in by_direction.values():
            runs.sort(key=lambda x: (*_recipe(x), x["seed"]))


def _recipe(record: dict) -> tuple[str, str]:
    """A record's preset and its departures from it (records written before settings were
    recorded ran their preset as it is)."""
    return record["preset"], record.get("settings", "")


def _name(preset: str, settings: str) -> str:
    return f"{preset} ({settings})" if settings else preset


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


def format_summary(records: Records) -> str:
    """Markdown: per protocol, direction and preset, mean ± sd over seeds of UNIT, source-only,
    the two readings of the translations (the run's classifier; the independent oracle) and the
    oracle's reading of the same source digits untranslated, and UNIT's gain over source-only
    in standard errors (paired seeds)."""
    lines = [
        "| protocol | direction | preset | seeds | source-only | unitlab | gain over source-only "
        "| translations (own classifier) | translations (oracle) | untranslated (oracle) | paper |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol, by_direction in sorted(records.items()):
        for direction, runs in sorted(by_direction.items()):
            source, target = direction.split("-")
            paper = PAPER.get((source, target))
            for recipe in sorted({_recipe(r) for r in runs}):
                same = [r for r in runs if _recipe(r) == recipe]
                oracle = [r.get("translation_oracle") for r in same]
                untranslated = [r.get("source_oracle") for r in same]
                lines.append(
                    f"| {protocol} | {NAMES[source]} -> {NAMES[target]} | {_name(*recipe)} | "
                    f"{len(same)} | {_mean_sd([r['source_only'] for r in same])} | "
                    f"{_mean_sd([r['unitlab'] for r in same])} | {_gain(same)} | "
                    f"{_mean_sd([r['translation'] for r in same])} | {_mean_sd(oracle)} | "
                    f"{_mean_sd(untranslated)} | "
                    f"{_fmt(paper)} |"
                )
    return "\n".join(lines)


def add_oracle(run: str | Path, data_root: str | Path | None = None) -> dict:
    """Give a finished run folder's ``result.json`` the oracle's reading of its translations
    (:func:`translation_oracle`, from the folder's checkpoint and its own data split), if it
    lacks one; returns the result."""
    path = Path(run) / RESULT
    result = _completed(json.loads(path.read_text()), Path(run))
    if result.get("translation_oracle") is None or result.get("source_oracle") is None:
        trainer, split = load_run(run, data_root)
        gen = trainer.gen
        result |= translation_oracle(trainer.cfg, split, lambda x: gen.translate(x, "a2b"))
        RunFolder(run).write_json(RESULT, result)
    return result


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
    parser.add_argument("runs", nargs="*", help="run folders holding result.json")
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
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep FILE's records of runs not passed (a passed run replaces its own record); "
        "the summary then covers them all",
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="first add the oracle's reading of the translations to runs that lack it",
    )
    parser.add_argument(
        "--data-root", help="digit data folder for --oracle (default: $UNITLAB_DATA)"
    )
    args = parser.parse_args(argv)
    if args.merge and not args.json:
        parser.error("--merge needs --json FILE (the records to keep)")
    if not args.runs and not args.merge:
        parser.error("pass run folders, or --json FILE --merge to summarise FILE")
    if args.oracle:
        for run in args.runs:
            add_oracle(run, args.data_root)
    results = load_results(args.runs)
    records = per_seed_records(results)
    if args.merge:
        path = Path(args.json)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: nothing to merge into")
        records = merge_records(json.loads(path.read_text()), records)
    if args.json:
        RunFolder(Path(args.json).parent).write_json(Path(args.json).name, records)
    if args.ship:
        for run, r in zip(args.runs, results, strict=True):
            ship(run, r)
    if results:
        print(format_table(results))
        print()
    print(format_summary(records))
    machines = (f"{NAMES[r['source']]} -> {NAMES[r['target']]}: {r['machine']}" for r in results)
    for line in dict.fromkeys(machines):  # each direction's machine once
        print(f"\n{line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
