"""Shared checks of the kernel tests: per-dtype tolerances against a higher-precision reference."""

from __future__ import annotations

import torch

#: Per storage dtype: (rtol, atol) against an fp64 reference computed from the same inputs.
#: Half formats round the *output* once (fp16: 2**-11, bf16: 2**-8 relative), so the bound is a few
#: of their ulps; fp32 differs from fp64 only in accumulation order.
TOLERANCES = {
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float64: (1e-10, 1e-10),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale=1.0):
    """Compare to a (higher-precision) reference with ``dtype``'s tolerance, relative to scale."""
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.double(), expected.double(), rtol=rtol, atol=atol * scale, check_device=False
    )
