"""The one command a GPU session runs: kernel tests compiled for the GPU, then the benchmark.

``python -m benchmarks.gpu_check [--out docs/benchmarks-gpu.md] [--quick] [--no-compile]``

1. ``pytest tests/kernels`` without ``TRITON_INTERPRET``: every kernel test, on CUDA tensors,
   with the kernels compiled for the real device (CI only ever runs them interpreted).
2. :mod:`benchmarks.kernels`: eager vs ``torch.compile`` vs Triton, and a whole training step.
3. Writes both, with the GPU's name, driver, CUDA/torch/Triton versions and the date, to
   ``docs/benchmarks-gpu.md`` (notebook 08 shows the latest one).

Exits 1 when a kernel test fails (the page is still written, saying so); without a GPU it says
so and exits 0. About five minutes on an H200 (``--quick --no-compile``: about two).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
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


def page(tests_passed: bool, test_summary: str, benchmark: str) -> str:
    import triton

    gpu = torch.cuda.get_device_name()
    verdict = "passed" if tests_passed else "FAILED"
    return "\n".join(
        [
            "# Triton kernels on a GPU",
            "",
            f"Written by `python -m benchmarks.gpu_check` on "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"- GPU: {gpu}, driver {driver_version()}, CUDA {torch.version.cuda}",
            f"- torch {torch.__version__}, Triton {triton.__version__}, "
            f"Python {platform.python_version()}",
            f"- Kernel tests compiled for this GPU (`pytest tests/kernels`, no interpreter): "
            f"**{verdict}** ({test_summary})",
            "",
            "## Benchmark",
            "",
            benchmark,
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
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "no CUDA GPU: nothing to check here (the kernel tests run interpreted on the CPU: "
            "pytest tests/kernels)"
        )
        return 0
    passed, summary = (True, "skipped") if args.skip_tests else run_kernel_tests()
    benchmark = bench.report(quick=args.quick, with_compile=not args.no_compile)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(passed, summary, benchmark))
    print(f"wrote {out}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
