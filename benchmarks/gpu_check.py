"""The one command a GPU session runs: kernel tests compiled for the GPU, the benchmark, and
a paper preset trained end to end with and without the kernels and bf16.

``python -m benchmarks.gpu_check [--out docs/benchmarks-gpu.md] [--quick] [--no-compile]
[--steps N] [--dry-run]``

1. ``pytest tests/kernels`` without ``TRITON_INTERPRET``: every kernel test, on CUDA tensors,
   with the kernels compiled for the real device (CI only ever runs them interpreted).
2. :mod:`benchmarks.kernels`: eager vs ``torch.compile`` vs Triton, and a whole training step.
3. ``unitlab.train.train_run`` of the ``maps256`` preset (the paper's architecture, batch 1,
   256 px, DataLoader workers) for ``--steps`` steps on a small maps dataset in the real
   pix2pix layout (:func:`unitlab.data.samples.write_maps_sample`; the GPU machine has no
   network), four ways: kernels torch/triton x precision fp32/bf16: ms per step, last losses,
   whether every loss stayed finite.
4. Writes all three, with the GPU's name, driver, CUDA/torch/Triton versions and the date, to
   ``docs/benchmarks-gpu.md`` (notebook 08 shows the latest one).

Exits 1 when a kernel test or a run fails (the page is still written, saying so); without a GPU
it says so and exits 0. ``--dry-run`` runs step 3 on the CPU at a toy size (the Triton rows
say they need CUDA) and writes the page, so that CI exercises everything but the GPU itself.
About six minutes on an H200 (``--quick --no-compile``: about three).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import kernels as bench

REPO = Path(__file__).resolve().parents[1]  # benchmarks/ sits in the repository root
TESTS = REPO / "tests" / "kernels"


PAGE = REPO / "docs" / "benchmarks-gpu.md"


def run_kernel_tests(timeout: int = 900) -> tuple[bool, str]:
    """Run the kernel tests in a fresh process on the GPU; (passed, pytest's summary line)."""
    if not TESTS.is_dir():
        return True, f"not run: {TESTS} is absent (an installed wheel carries no tests)"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "pytest", str(TESTS), "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    print(done.stdout[-6000:], done.stderr[-3000:], sep="\n", flush=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip("= ") if lines else f"pytest exited {done.returncode}"
    return done.returncode == 0, summary


def driver_version() -> str:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout.strip().splitlines()[0] or "unknown"
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


#: The end-to-end runs of step 3: (kernels, precision).
RUNS = [("torch", "fp32"), ("triton", "fp32"), ("torch", "bf16"), ("triton", "bf16")]


def preset_runs(device: torch.device, steps: int, dry_run: bool = False) -> tuple[bool, str]:
    """Train the maps256 preset ``steps`` steps per (kernels, precision); (all ok, markdown)."""
    from unitlab.config import apply_overrides, get_preset
    from unitlab.data.samples import write_maps_sample
    from unitlab.train import train_run

    toy = ["model.image_size=32", "model.base_channels=8", "model.d_layers=3", "data.workers=0"]
    lines = [
        f"`train_run` of `maps256`{' (toy size: ' + ', '.join(toy) + ')' if dry_run else ''}, "
        f"batch 1, {steps} steps on a generated maps sample in the pix2pix layout "
        "(training satellites vs validation maps, scored on the validation pairs):",
        "",
        "| kernels | precision | ms / step | last gen loss | last dis loss | all finite |",
        "|---|---|---|---|---|---|",
    ]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = write_maps_sample(Path(tmp) / "maps", n_train=16, n_val=8, half=128)
        for kernels, precision in RUNS:
            if kernels == "triton" and device.type != "cuda":
                lines.append(f"| {kernels} | {precision} | needs CUDA | | | |")
                continue
            cfg = apply_overrides(get_preset("maps256"), toy if dry_run else [])
            cfg.data.root, cfg.steps, cfg.kernels, cfg.precision = (
                str(root),
                steps,
                kernels,
                precision,
            )
            cfg.log_every = cfg.checkpoint_every = cfg.sample_every = max(1, steps // 4)
            run_dir = Path(tmp) / f"{kernels}-{precision}"
            try:
                start = time.perf_counter()
                train_run(cfg, run_dir, device=device, progress=False)
                seconds = time.perf_counter() - start
                rows = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
                finite = all(
                    abs(v) < float("inf") for r in rows for k, v in r.items() if k != "step"
                )
                # the time between the first and last logged steps: no start-up, no evaluation
                span = rows[-1]["seconds"] - rows[0]["seconds"]
                per_step = span / max(1, rows[-1]["step"] - rows[0]["step"])
                last = rows[-1]
                lines.append(
                    f"| {kernels} | {precision} | {per_step * 1e3:.1f} | {last['gen']:.3g} | "
                    f"{last['dis']:.3g} | {'yes' if finite else 'NO'} |"
                )
                ok &= finite
                print(lines[-1], f"({seconds:.0f} s with start-up and evaluation)", flush=True)
            except Exception as error:  # one failing run must not lose the others
                ok = False
                message = " ".join(str(error).split())[:200]
                lines.append(f"| {kernels} | {precision} | FAILED: {type(error).__name__}: "
                             f"{message} | | | |")  # fmt: skip
                print(lines[-1], flush=True)
    return ok, "\n".join(lines) + "\n"


def versions_lines(device: torch.device) -> list[str]:
    """GPU, driver, CUDA, torch, Triton and Python, as the page's list items."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    gpu = "none (dry run on the CPU)"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = f"{name}, driver {driver_version()}, CUDA {torch.version.cuda}"
    return [
        f"- GPU: {gpu}",
        f"- torch {torch.__version__}, Triton {triton_version}, Python {platform.python_version()}",
    ]


def page(
    device: torch.device, tests_passed: bool, test_summary: str, benchmark: str, runs: str
) -> str:
    verdict = "passed" if tests_passed else "FAILED"
    return "\n".join(
        [
            "# Triton kernels on a GPU",
            "",
            f"Written by `python -m benchmarks.gpu_check` on "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}.",
            "",
            *versions_lines(device),
            f"- Kernel tests compiled for this GPU (`pytest tests/kernels`, no interpreter): "
            f"**{verdict}** ({test_summary})",
            "",
            "## Benchmark",
            "",
            benchmark,
            "",
            "## A paper preset end to end",
            "",
            runs,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", default=str(PAGE))
    parser.add_argument("--quick", action="store_true", help="one size per op")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--skip-tests", action="store_true", help="benchmark only")
    parser.add_argument("--steps", type=int, default=300, help="steps per end-to-end run")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="on the CPU: the end-to-end runs at a toy size (2 steps); no kernel tests, no "
        "benchmark",
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        device = torch.device("cpu")
        passed, summary = True, "not run (dry run)"
        benchmark = "Not run (dry run on the CPU: the benchmark needs CUDA)."
        runs_ok, runs = preset_runs(device, min(args.steps, 2), dry_run=True)
    elif not torch.cuda.is_available():
        print(
            "no CUDA GPU: nothing to check here (the kernel tests run interpreted on the CPU: "
            "pytest tests/kernels; --dry-run exercises this script on the CPU)"
        )
        return 0
    else:
        device = torch.device("cuda")
        passed, summary = (True, "skipped") if args.skip_tests else run_kernel_tests()
        benchmark = bench.report(quick=args.quick, with_compile=not args.no_compile)
        runs_ok, runs = preset_runs(device, args.steps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(device, passed, summary, benchmark, runs))
    print(f"wrote {out}")
    return 0 if passed and runs_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
