"""The ``unitlab`` command line: ``train``, ``translate``, ``evaluate``, ``ceiling``, ``ablation``,
``adapt``, ``presets``.

Errors a user can fix (a missing file, a wrong shape, an unknown preset or field, a NaN loss) are
printed as one clear line and exit with status 2 (usage) or 1 (run failed), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .config import PRESETS, TrainConfig, apply_overrides, get_preset

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitlab",
        description="UNIT: unsupervised image-to-image translation (Liu et al., NIPS 2017).",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train UNIT (default: the embedded map world, a few CPU minutes)",
        description="Train UNIT and report satellite->map pixel accuracy against baselines.",
    )
    _add_preset_options(train)
    train.add_argument(
        "--data-root",
        help="folder of a dataset on disk, for the presets that read one (maps256, streets256, "
        "faces128); sets data.root",
    )
    train.add_argument("--out", default="runs", help="folder holding run folders (default: runs)")
    train.add_argument("--name", help="run folder name (default: the preset's name)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in OUT/NAME from its checkpoint"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument(
        "--eval-every",
        type=int,
        default=0,
        metavar="K",
        help="print the held-out pixel accuracy every K steps and append it to curve.jsonl "
        "in the run folder (default 0: only at the end)",
    )
    train.add_argument(
        "--device",
        default="auto",
        help="auto (default: CUDA when this machine has it, else the CPU), cpu or cuda[:N]; "
        "a resume is bit-exact on the CPU only",
    )

    ce = sub.add_parser(
        "ceiling",
        help="the supervised ceiling: UNIT's a->b network trained WITH pairs, same budget",
        description="Train gen_b(enc_a(x)) of the same config by L1 on paired training data "
        "and print the held-out pixel accuracy along the way: what the network can learn in "
        "this budget when told the answer, an upper reference for an unsupervised run.",
    )
    _add_preset_options(ce)
    ce.add_argument("--eval-every", type=int, default=100, help="steps between accuracy points")

    tr = sub.add_parser(
        "translate",
        help="translate image files with a trained checkpoint",
        description="Translate PNG/JPEG files or folders of them.",
    )
    tr.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN_OR_FILE",
        help="a run folder or a checkpoint .pt file",
    )
    tr.add_argument("--direction", default="a2b", choices=["a2b", "b2a"])
    tr.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    tr.add_argument("--out", required=True, help="output folder")
    tr.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    tr.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="refuse larger input images (default: (128 x the model's image size)^2)",
    )

    ev = sub.add_parser(
        "evaluate", help="held-out pixel accuracy of a checkpoint (map world, maps) vs baselines"
    )
    ev.add_argument("--checkpoint", required=True, metavar="RUN_OR_FILE")
    ev.add_argument("--data-root", help="where the run's dataset on disk is now (data.root)")
    ev.add_argument(
        "--detail",
        action="store_true",
        help="also print UNIT's accuracy per map class and at looser colour tolerances",
    )

    ab = sub.add_parser(
        "ablation",
        help="the paper's ablation on the map world (no tying, no cycle, 1..4 tied, D depth)",
        description="Train every variant with the same protocol and write results.json, a "
        "Markdown table, loss logs and translation grids. Runs already in OUT are skipped.",
    )
    ab.add_argument("--out", default="runs/ablation", help="results folder (default: %(default)s)")
    ab.add_argument(
        "--variants", nargs="+", metavar="NAME", help="subset of variants (default: all)"
    )
    ab.add_argument(
        "--preset", default="mapworld32", choices=sorted(PRESETS), help="base configuration"
    )
    ab.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default: 0)")
    ab.add_argument("--steps", type=int, help="steps per run (default: the preset's)")
    ab.add_argument("--eval-every", type=int, default=100, help="steps between accuracy points")
    ab.add_argument("--list", action="store_true", help="list the variants and exit")

    ad = sub.add_parser(
        "adapt",
        help="UNIT domain adaptation on digits (e.g. --source usps --target mnist)",
        description="Train the coupled digit VAE-GAN whose shared discriminator classifies "
        "target digits with source labels only; report target accuracy next to a source-only "
        "baseline and the paper. Protocol: docs/domain_adaptation.md.",
    )
    ad.add_argument("--source", required=True, choices=["mnist", "usps", "printed", "svhn"])
    ad.add_argument("--target", required=True, choices=["mnist", "usps"])
    ad.add_argument(
        "--preset",
        default="cpu",
        help="cpu (default, <= 60 CPU minutes), cpu-translate (cpu with a generator that "
        "translates), cpu-frames (cpu-translate with a learnable frame per domain: digits may "
        "change size), paper, svhn-mnist (the paper's, MNIST doubled with inverted copies) "
        "or tiny",
    )
    ad.add_argument("--steps", type=int, help="training iterations (default: the preset's)")
    ad.add_argument("--seed", type=int, default=0, help="seed for weights, batches and split")
    ad.add_argument("--data-root", help="digit data folder (default: $UNITLAB_DATA)")
    ad.add_argument("--out", default="runs", help="folder holding run folders (default: runs)")
    ad.add_argument("--name", help="run folder name (default: adapt-SOURCE-TARGET)")
    ad.add_argument("--resume", action="store_true", help="continue OUT/NAME from its checkpoint")
    ad.add_argument(
        "--no-baseline", action="store_true", help="skip training the source-only baseline"
    )
    ad.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda[:N] or auto; the paper preset is a GPU job",
    )
    _add_set_option(ad, "cls=5")
    ad.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    sub.add_parser("presets", help="list the named configurations and what each costs")
    return parser


def _add_preset_options(parser: argparse.ArgumentParser) -> None:
    """The options that build a :class:`TrainConfig` (read back by :func:`_config_from_args`)."""
    parser.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="named configuration (default: mapworld32)",
    )
    parser.add_argument("--steps", type=int, help="total training iterations")
    parser.add_argument("--batch-size", type=int, help="images per domain per step")
    parser.add_argument("--seed", type=int, help="seed for weights, noise and batches")
    _add_set_option(parser, "model.n_shared=0")


def _add_set_option(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set FIELD=VALUE`` (repeatable), collected into ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"override a config field, e.g. --set {example} (repeatable)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "preset") and args.command in ("train", "ceiling"):
        args.preset_given = args.preset is not None  # --resume refuses an explicit other one
        args.preset = args.preset or "mapworld32"
    handlers = {
        "train": _train,
        "translate": _translate,
        "evaluate": _evaluate,
        "ablation": _ablation,
        "adapt": _adapt,
        "ceiling": _ceiling,
        "presets": _presets,
    }
    try:
        return handlers[args.command](args)
    except (ValueError, OSError) as exc:  # bad input or configuration, a path, a full disk
        if args.debug:
            raise
        print(f"unitlab {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside the training loop, which saves and explains itself
        if args.debug:
            raise
        print(f"unitlab {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """An error as one line; OS errors keep their path and reason (``[Errno 28] ...``)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    cfg = get_preset(args.preset)
    apply_overrides(cfg, args.overrides)
    if getattr(args, "data_root", None):
        cfg.data.root = args.data_root
    for field, value in (
        ("steps", args.steps),
        ("batch_size", args.batch_size),
        ("seed", args.seed),
    ):
        if value is not None:
            setattr(cfg, field, value)
    cfg.validate()
    return cfg


def _train(args: argparse.Namespace) -> int:
    from .run import NonFiniteLossError, RunInterrupted
    from .train import train_run

    if args.eval_every < 0:
        raise ValueError(f"--eval-every={args.eval_every} must be >= 0")
    device = _device(args.device)  # before any work: a typo must not cost a data generation
    run_dir = Path(args.out) / (args.name or args.preset)
    cfg = _resumed_config(args, run_dir) if args.resume else _config_from_args(args)
    try:
        report = train_run(
            cfg,
            run_dir,
            resume=args.resume,
            device=device,
            eval_every=args.eval_every,
            progress=not args.no_progress,
            on_eval=_print_curve_point,
            on_resume=lambda step: print(f"resuming {run_dir} at step {step} of {cfg.steps}"),
        )
    except NonFiniteLossError as exc:
        print(f"unitlab train: {exc}", file=sys.stderr)
        return 1
    except RunInterrupted as exc:  # in the training loop (before it: main's one-line message)
        print(f"\ninterrupted at step {exc.step}; {_saved_step(run_dir)}", file=sys.stderr)
        return 130
    from .evaluate import format_report

    if report:  # under torchrun, rank 0 alone reports
        print(format_report(report))
        print(f"run saved in {run_dir}")
    return 0


def _resumed_config(args: argparse.Namespace, run_dir: Path) -> TrainConfig:
    """The saved config with what the command line asks applied on top: the run then refuses
    any change but ``--steps``, naming each field (``train_run``)."""
    from .train import saved_config

    cfg = apply_overrides(saved_config(run_dir), args.overrides)
    if args.data_root:  # the same data, moved: a resume may say where it is now
        cfg.data.root = args.data_root
    for field, value in (("batch_size", args.batch_size), ("seed", args.seed)):
        if value is not None:
            setattr(cfg, field, value)
    if args.preset_given:
        cfg.preset = args.preset
    if args.steps is not None:
        cfg.steps = args.steps
    return cfg


def _saved_step(run_dir: Path) -> str:
    """What is on disk, read back from the checkpoint itself (not what was meant to be)."""
    from .run import RunFolder

    try:
        step = int(RunFolder(run_dir).load()["step"])
    except (ValueError, OSError):
        return f"no readable checkpoint in {run_dir}: nothing to resume from"
    return f"the checkpoint in {run_dir} holds step {step}: continue with --resume"


def _print_curve_point(step: int, accuracy: float) -> None:
    print(f"step {step:>6}  held-out pixel accuracy {accuracy:.3f}", flush=True)


def _translate(args: argparse.Namespace) -> int:
    """Translate every input, or none: all inputs are read and all output names checked
    before the first file is written, so a bad file in the list loses nothing."""
    from .images import load_image, save_image
    from .inference import load_model

    model, cfg = load_model(args.checkpoint)
    src = args.direction[0]
    channels = cfg.model.channels_a if src == "a" else cfg.model.channels_b
    files = list(_expand_inputs(args.inputs))
    targets = _output_paths(files, Path(args.out), args.direction)
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise ValueError(
            f"{len(existing)} output(s) exist, e.g. {existing[0]}; pass --overwrite to replace "
            f"them (nothing was written)"
        )
    images = [load_image(p, cfg.model.image_size, channels, args.max_pixels) for p in files]
    for path, x, target in zip(files, images, targets, strict=True):
        y = model.translate(x.unsqueeze(0), args.direction)[0]
        save_image(y, target)
        print(f"{path} -> {target}")
    return 0


def _output_paths(files: list[Path], out: Path, direction: str) -> list[Path]:
    """``<out>/<path relative to the inputs' common folder>/<stem>_<direction>.png``: inputs
    of one folder keep flat names; same-named files from different folders mirror the input
    tree instead of overwriting each other."""
    parents = [p.resolve().parent for p in files]
    common = Path(os.path.commonpath(parents)) if parents else Path()
    return [
        out / parent.relative_to(common) / f"{p.stem}_{direction}.png"
        for p, parent in zip(files, parents, strict=True)
    ]


def _expand_inputs(inputs: list[str]):
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no PNG/JPEG files in folder {path}")
            yield from found
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"input {path} does not exist")


def _evaluate(args: argparse.Namespace) -> int:
    from .data.sources import training_data
    from .evaluate import detail_report, evaluate_run, format_report
    from .inference import load_model

    model, cfg = load_model(args.checkpoint)
    if args.data_root:
        cfg.data.root = args.data_root
    _, train_maps = training_data(cfg)  # the constant baseline's colour, generated once
    print(format_report(evaluate_run(model, cfg, train_maps)))
    if args.detail:
        print(detail_report(model, cfg, train_maps))
    return 0


def _ceiling(args: argparse.Namespace) -> int:
    from .ceiling import format_point, train_ceiling

    cfg = _config_from_args(args)
    print(
        f"supervised ceiling of preset {cfg.preset}: gen_b(enc_a(x)) trained with pairs, "
        f"{cfg.steps} steps of batch {cfg.batch_size}, lr {cfg.optim.lr:g}"
    )
    train_ceiling(cfg, eval_every=args.eval_every, on_point=lambda p: print(format_point(p)))
    return 0


def _ablation(args: argparse.Namespace) -> int:
    from . import ablation

    if args.list:
        for name, overrides in ablation.VARIANTS.items():
            print(f"{name:22s} {' '.join(overrides) or '(the default preset)'}")
        return 0
    runs = ablation.run_ablation(
        args.out,
        args.variants,
        args.seeds,
        preset=args.preset,
        steps=args.steps,
        eval_every=args.eval_every,
    )
    table = ablation.format_table(runs)
    (Path(args.out) / "results.md").write_text(table + "\n")
    print(table)
    return 0


def _adapt(args: argparse.Namespace) -> int:
    from .adapt import adapt_preset, adapt_run, config_split
    from .adapt import report as adapt_report
    from .adapt.trainer import saved_config
    from .run import NonFiniteLossError

    device = _device(args.device)
    run_dir = Path(args.out) / (args.name or f"adapt-{args.source}-{args.target}")
    if args.resume:  # the saved config, with what is asked on top (a change is then refused)
        cfg = apply_overrides(saved_config(run_dir), args.overrides)
    else:
        cfg = adapt_preset(args.preset, source=args.source, target=args.target, seed=args.seed)
        apply_overrides(cfg, args.overrides)
    if args.steps is not None:
        cfg.steps = args.steps
    cfg.validate()
    split = config_split(cfg, args.data_root or None)
    print(split.protocol)
    try:
        result = adapt_run(
            cfg,
            split,
            run_dir,
            resume=args.resume,
            baseline=not args.no_baseline,
            device=device,
            progress=not args.no_progress,
            on_eval=lambda row: print(
                f"step {row['step']}: target accuracy {row['target_accuracy']:.4f} "
                f"(translated source digits: {row['translation_accuracy']:.3f})",
                flush=True,
            ),
        )
    except NonFiniteLossError as exc:
        print(f"unitlab adapt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with --resume --name {run_dir.name}", file=sys.stderr)
        return 130
    print(adapt_report.format_table([result]))
    print(
        f"translations read by an independent target classifier: "
        f"{result['translation_oracle']:.3f}, the same source digits untranslated "
        f"{result['source_oracle']:.3f} (it reads held-out target digits at "
        f"{result['oracle_accuracy']:.3f}; the run's own classifier reads the translations at "
        f"{result['translation_accuracy']:.3f})"
    )
    print(f"run saved in {run_dir}")
    return 0


def _device(name: str) -> torch.device:
    """``--device``, checked before any work starts (a typo must not cost a baseline run);
    ``auto`` is CUDA when this machine has it, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name!r} is not a device name ({exc})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA device")
    return device


def _presets(args: argparse.Namespace) -> int:
    from .models import model_cost

    print(
        f"{'preset':11s} {'data':9s} {'px':>4s} {'G+E par.':>9s} {'D par.':>8s} "
        f"{'GFLOP/it':>9s} {'steps':>9s} {'batch':>5s} {'PFLOP/run':>9s}  architecture"
    )
    for name, make in PRESETS.items():
        cfg = make()
        m, cost = cfg.model, model_cost(cfg.model)
        per_step = cost["train_flops"] * cfg.batch_size
        print(
            f"{name:11s} {cfg.data.source:9s} {m.image_size:4d} "
            f"{cost['gen_params'] / 1e6:8.2f}M {cost['dis_params'] / 1e6:7.2f}M "
            f"{per_step / 1e9:9.1f} {cfg.steps:9,d} {cfg.batch_size:5d} "
            f"{per_step * cfg.steps / 1e15:9.3f}  {m.base_channels} ch, {m.n_res_blocks} res "
            f"blocks ({m.n_shared} tied), D {m.d_layers} layers x {m.d_scales} scale(s)"
        )
    print(
        "GFLOP/it: one training iteration (both domains, all streams, forward + backward of "
        "both updates), counted from the convolutions; an H200 sustains a few hundred TFLOP/s "
        "on large convolutions, far less at batch 1."
    )
    from .adapt import ADAPT_PRESETS

    print("\ndigit adaptation (unitlab adapt --preset NAME):")
    for name, make in ADAPT_PRESETS.items():
        cfg = make()
        extras = [
            label
            for label, on in (
                ("size-normalised", cfg.normalise),
                ("warped batches", cfg.augment),
                ("MNIST doubled with inverted copies", cfg.target_inverted),
                (f"{cfg.warm_start:,} source-only steps first", cfg.warm_start),
                (f"{cfg.gen_warm_start:,} VAE-only steps next", cfg.gen_warm_start),
                ("per-domain style critics", cfg.style),
            )
            if on
        ]
        print(
            f"{name:13s} widths {cfg.gen_width}/{cfg.dis_width}, {cfg.steps:,} steps x batch "
            f"{cfg.batch_size} per domain ({cfg.steps * cfg.batch_size / 1e6:.2f}M images)"
            + (f"; {', '.join(extras)}" if extras else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
