"""Host-side plumbing shared by the op modules: dtype policy, input checks, interpreter detection.

Kept apart from the kernels so that each op module reads as "kernel, launcher, autograd.Function"
and the rules every op follows (which dtypes, what accumulates in what) are written once.
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor
from triton.runtime.interpreter import InterpretedFunction

#: Storage dtypes the kernels accept. float64 exists for ``torch.autograd.gradcheck``.
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def is_interpreted(kernel: object) -> bool:
    """Whether ``@triton.jit`` built ``kernel`` for the interpreter (CPU) rather than a GPU.

    Triton reads ``TRITON_INTERPRET`` when the decorator runs, i.e. when an op module is imported,
    so asking the kernel object is the only reliable test: setting the variable afterwards does
    not make already imported kernels runnable on the CPU.
    """
    return isinstance(kernel, InterpretedFunction)


def accumulator(dtype: torch.dtype) -> tl.dtype:
    """The dtype statistics and sums are computed in: fp32, or fp64 for fp64 inputs.

    Half-precision sums over thousands of elements lose most of their digits, so everything
    accumulates in fp32; fp64 inputs keep fp64 so that ``gradcheck`` sees exact-enough values.
    """
    return tl.float64 if dtype == torch.float64 else tl.float32


def torch_accumulator(dtype: torch.dtype) -> torch.dtype:
    """The torch dtype matching :func:`accumulator` (for buffers the kernels write)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_runnable(name: str, interpreted: bool, *tensors: Tensor | None) -> None:
    """Refuse inputs the Triton kernels cannot take, naming the argument and the fix.

    CPU tensors only work in the Triton interpreter; on a GPU build, passing CPU tensors would
    otherwise fail deep inside the launcher with a pointer error.
    """
    present = [t for t in tensors if t is not None]
    first = present[0]
    for t in present:
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"{name}: Triton kernels take float32/float16/bfloat16/float64, got {t.dtype}"
            )
        if t.device != first.device:
            raise ValueError(
                f"{name}: all tensors must be on one device, got {first.device} and {t.device}"
            )
    if first.device.type == "cuda":
        return
    if first.device.type != "cpu" or not interpreted:
        raise RuntimeError(
            f"{name}: the Triton kernels need CUDA tensors (got {first.device}); to run them on "
            "the CPU, set TRITON_INTERPRET=1 before unitlab.kernels is imported"
        )
