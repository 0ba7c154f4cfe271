"""Training-step benchmark (not a test): ``python -m benchmarks.train_step [--out FILE]``.

Times one full UNIT iteration (encoder/generator step + discriminator step) for the default
preset and the paper's architecture at 64x64 and 128x128, batch 1 and 8, on whatever device is
present: the median of several steps after warm-up. Run from the repository root.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unitlab.config import get_preset
from unitlab.machine import machine_description
from unitlab.trainer import Trainer

from . import publish

TRAIN_CASES = [
    ("mapworld32", 8),
    ("paper64", 1),
    ("paper64", 8),
    ("paper128", 1),
    ("paper128", 8),
]


def time_train_step(
    preset: str, batch: int, device: torch.device, warmup: int = 2, repeats: int = 5
) -> float:
    """Median seconds of one training iteration on random images."""
    cfg = get_preset(preset)
    cfg.batch_size = batch
    trainer = Trainer(cfg, device=device)
    m = cfg.model
    x_a = torch.rand(batch, m.channels_a, m.image_size, m.image_size, device=device) * 2 - 1
    x_b = torch.rand(batch, m.channels_b, m.image_size, m.image_size, device=device) * 2 - 1
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainer.train_step(x_a, x_b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_table(device: torch.device, repeats: int, cases=TRAIN_CASES) -> str:
    lines = [
        "# Training-step benchmark",
        "",
        f"Made by `python -m benchmarks.train_step --repeats {repeats} --out docs/benchmarks.md`"
        + (f" `--only {' '.join(f'{p}:{b}' for p, b in cases)}`." if cases != TRAIN_CASES else "."),
        f"One iteration = an encoder/generator step + a discriminator step, on random images; "
        f"median of {repeats} after 2 warm-up steps. Machine: {machine_description(device)}.",
        "",
        "| preset | image | batch | ms / step | images / s (per domain) |",
        "|---|---|---|---|---|",
    ]
    for preset, batch in cases:
        seconds = time_train_step(preset, batch, device, repeats=repeats)
        size = get_preset(preset).model.image_size
        lines.append(
            f"| {preset} | {size}x{size} | {batch} | {seconds * 1e3:.1f} | {batch / seconds:.1f} |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_step", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", help="also write the markdown table to this file")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per case")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="PRESET:BATCH",
        help="time only these cases (e.g. mapworld32:8); default: "
        + " ".join(f"{p}:{b}" for p, b in TRAIN_CASES),
    )
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cases = TRAIN_CASES
    if args.only:
        try:
            cases = [(p, int(b)) for p, b in (case.split(":") for case in args.only)]
        except ValueError:
            parser.error(f"--only takes PRESET:BATCH cases, got {' '.join(args.only)}")
    table = train_table(device, args.repeats, cases)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
