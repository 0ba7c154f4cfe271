"""Kernel benchmark: PyTorch eager vs ``torch.compile`` vs the Triton kernels, on a CUDA GPU.

``python -m benchmarks.kernels [--out FILE] [--quick] [--no-compile] [--no-step]`` (repository root)

For each op and size, forward and forward+backward (training mode: inputs require grad):
median time (``triton.testing.do_bench``), achieved bandwidth = bytes that must move / time,
and that as a fraction of a device-to-device copy's bandwidth measured in the same run. The
bytes are the op's unavoidable traffic (each input read once, each output written once; the
KL scalar and per-channel vectors are negligible), so a fused kernel's fraction says how close
it is to the memory roof. Then one whole UNIT training step (``paper128``, batch 8) with the
``torch`` and ``triton`` backends. Prints markdown; ``--out`` also writes it.

Without a GPU it prints "no CUDA GPU: kernel benchmark needs one" and returns 0. A GPU session
runs the kernel tests and this benchmark, and records both, with one command (see
:mod:`benchmarks.gpu_check`)::

    python -m benchmarks.gpu_check      # writes docs/benchmarks-gpu.md
"""

from __future__ import annotations

import argparse
import datetime
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from unitlab.kernels import reference

from . import publish

IMPLS = ("eager", "compile", "triton")


@dataclass
class Workload:
    """One op at one size: inputs (requiring grad), output gradients, implementations, bytes."""

    op: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    inputs: list[Tensor]
    grad_outputs: list[Tensor]
    impls: dict[str, Callable[..., tuple[Tensor, ...]]] = field(default_factory=dict)
    forward_bytes: int = 0
    backward_bytes: int = 0


def reparam_workload(shape, dtype, full: bool, device) -> Workload:
    """Reduced (``z = mu + eps``) or full-Gaussian reparameterisation + KL.

    Bytes: forward reads mu (and logvar) and writes z; backward reads dz, mu (and logvar) and
    writes dmu (and dlogvar). The noise is regenerated, never stored, so it costs no bytes.
    """
    from unitlab.kernels import reparam

    mu = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    inputs = [mu]
    if full:
        inputs.append((0.5 * torch.randn_like(mu)).detach().requires_grad_())
    grads = [torch.randn_like(mu), torch.ones((), device=device, dtype=dtype)]
    size = mu.numel() * mu.element_size()
    return Workload(
        op="reparam + KL (full)" if full else "reparam + KL (reduced)",
        shape=tuple(shape),
        dtype=dtype,
        inputs=inputs,
        grad_outputs=grads,
        impls={"eager": reference.reparameterize, "triton": reparam.reparameterize},
        forward_bytes=(3 if full else 2) * size,
        backward_bytes=(5 if full else 3) * size,
    )


def instance_norm_workload(shape, dtype, residual: bool, device) -> Workload:
    """The residual-block tail: IN + ReLU (first half) or IN + residual add (second half).

    Bytes: forward reads x (and the residual) and writes y; backward reads x and dy and writes
    dx (the residual's gradient is dy itself).
    """
    from unitlab.kernels import instance_norm

    x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
    inputs = [x, torch.randn_like(x).requires_grad_()] if residual else [x]
    activation = "none" if residual else "relu"

    def bind(fn):
        def tail(x, res=None):
            return (fn(x, activation=activation, residual=res),)

        return tail

    size = x.numel() * x.element_size()
    return Workload(
        op="IN + residual" if residual else "IN + ReLU",
        shape=tuple(shape),
        dtype=dtype,
        inputs=inputs,
        grad_outputs=[torch.randn_like(x)],
        impls={
            "eager": bind(reference.instance_norm_act),
            "triton": bind(instance_norm.instance_norm_act),
        },
        forward_bytes=(3 if residual else 2) * size,
        backward_bytes=3 * size,
    )


def workloads(device, quick: bool) -> list[Workload]:
    """UNIT-sized cases: the paper128 latent (8x256x32x32) and up to 64M elements."""
    f32, bf16 = torch.float32, torch.bfloat16
    reparam_shapes = [(8, 256, 32, 32)] if quick else [(8, 256, 32, 32), (64, 256, 64, 64)]
    norm_shapes = [(8, 256, 64, 64)]
    if not quick:  # paper128 res blocks; paper256 res blocks; a generator tail (chunked rows)
        norm_shapes = [(8, 256, 32, 32), (8, 256, 64, 64), (8, 64, 128, 128)]
    cases = [
        (reparam_workload, shape, f32, full, device)
        for shape in reparam_shapes
        for full in (False, True)
    ]
    cases += [
        (instance_norm_workload, shape, dtype, residual, device)
        for shape in norm_shapes
        for dtype in ((bf16,) if quick or shape != (8, 256, 64, 64) else (f32, bf16))
        for residual in (False, True)
    ]
    return [build(*args) for build, *args in cases]


def _forward(fn, inputs):
    return lambda: fn(*inputs)


def _forward_backward(fn, inputs, grad_outputs):
    def step():
        torch.autograd.backward(fn(*inputs), grad_outputs)

    return step


def measure(workload: Workload, impl: str, with_compile: bool) -> dict[str, float | str]:
    """Median milliseconds of the forward and forward+backward passes of one implementation."""
    import triton.testing

    fn = workload.impls.get(impl)
    if impl == "compile":
        if not with_compile:
            return {"forward": "skipped", "forward+backward": "skipped"}
        torch._dynamo.reset()  # one compile per case; never hit the recompile limit
        fn = torch.compile(workload.impls["eager"], dynamic=False)
    results: dict[str, float | str] = {}
    passes = {
        "forward": _forward(fn, workload.inputs),
        "forward+backward": _forward_backward(fn, workload.inputs, workload.grad_outputs),
    }
    for name, step in passes.items():
        try:
            results[name] = triton.testing.do_bench(
                step, grad_to_none=workload.inputs, return_mode="median"
            )
        except Exception as error:  # one failing implementation must not lose the table
            results[name] = f"failed ({type(error).__name__})"
    return results


def copy_bandwidth(device, nbytes: int = 1 << 30) -> float:
    """GB/s of a device-to-device copy (bytes read + written), the roof for memory-bound ops."""
    import triton.testing

    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return 2 * nbytes / ms / 1e6


def _cell(ms, nbytes: int, roof: float) -> str:
    if isinstance(ms, str):
        return ms
    gbps = nbytes / ms / 1e6
    return f"{ms * 1e3:,.0f} µs · {gbps:,.0f} GB/s · {gbps / roof:.0%}"


def kernel_table(cases: list[Workload], with_compile: bool, roof: float) -> str:
    """Time every implementation of every case; one markdown row per case and pass."""
    header = ["op", "shape", "dtype", "pass", "MB moved", "eager", "torch.compile", "Triton"]
    header.append("Triton speed-up")
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for workload in cases:
        times = {impl: measure(workload, impl, with_compile) for impl in IMPLS}
        moved = {
            "forward": workload.forward_bytes,
            "forward+backward": workload.forward_bytes + workload.backward_bytes,
        }
        for name, nbytes in moved.items():
            cells = [_cell(times[impl][name], nbytes, roof) for impl in IMPLS]
            speedup = _speedups(times, name)
            shape = "x".join(map(str, workload.shape))
            dtype = str(workload.dtype).removeprefix("torch.")
            row = [workload.op, shape, dtype, name, f"{nbytes / 1e6:,.0f}", *cells, speedup]
            lines.append("| " + " | ".join(row) + " |")
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def _speedups(times, name: str) -> str:
    triton_ms = times["triton"][name]
    parts = []
    for impl in ("eager", "compile"):
        other = times[impl][name]
        if isinstance(triton_ms, float) and isinstance(other, float):
            parts.append(f"{other / triton_ms:.2f}x vs {impl}")
    return ", ".join(parts) or "n/a"


def step_table(device, repeats: int = 5) -> str:
    """One UNIT iteration (D step + E/G step), paper128 batch 8, per backend."""
    from unitlab import ops

    from .train_step import time_train_step

    lines = [
        f"Whole training step (paper128, 128x128, batch 8, fp32), median of {repeats}:",
        "",
        "| backend | ms / step | speed-up |",
        "|---|---|---|",
    ]
    seconds = {}
    for backend in ("torch", "triton"):
        with ops.use_backend(backend):
            seconds[backend] = time_train_step("paper128", 8, device, repeats=repeats)
        speedup = seconds["torch"] / seconds[backend]
        lines.append(f"| {backend} | {seconds[backend] * 1e3:.1f} | {speedup:.2f}x |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def machine_line(device) -> str:
    import triton

    return (
        f"{torch.cuda.get_device_name(device)}; torch {torch.__version__} (CUDA "
        f"{torch.version.cuda}), Triton {triton.__version__}; {datetime.date.today().isoformat()}"
    )


def report(quick: bool = False, with_compile: bool = True, with_step: bool = True) -> str:
    """Run everything and return the markdown (needs a CUDA GPU)."""
    device = torch.device("cuda")
    roof = statistics.median(copy_bandwidth(device) for _ in range(3))
    print(f"device-to-device copy: {roof:,.0f} GB/s", flush=True)
    parts = [
        f"Machine: {machine_line(device)}.",
        "",
        f"Device-to-device copy bandwidth (read + write), the roof: **{roof:,.0f} GB/s**. Cells: "
        "median time · achieved GB/s (bytes that must move / time) · fraction of the copy's.",
        "",
        kernel_table(workloads(device, quick), with_compile, roof),
    ]
    if with_step:
        parts.append(step_table(device))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kernels", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", help="also write the markdown to this file")
    parser.add_argument("--quick", action="store_true", help="one size per op, no fp32 extras")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-step", action="store_true", help="skip the training-step timing")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU: kernel benchmark needs one")
        return 0
    text = report(args.quick, not args.no_compile, not args.no_step)
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
