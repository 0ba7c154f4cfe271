"""Benchmarks and GPU tooling: not installed with the package, run from the repository root.

- ``python -m benchmarks.train_step`` — one UNIT training iteration, per preset and batch;
- ``python -m benchmarks.kernels`` — eager vs ``torch.compile`` vs the Triton kernels (CUDA);
- ``python -m benchmarks.gpu_check`` — the one command of a GPU session: the kernel tests
  compiled for the GPU, then the kernel benchmark, written to ``docs/benchmarks-gpu.md``.

They import the package; the package never imports them.
"""

from pathlib import Path


def publish(markdown: str, out: str | None) -> None:
    """Print a benchmark's markdown and, with ``--out``, write it to that file too."""
    print(markdown)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(markdown)
