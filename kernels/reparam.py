"""Fused reparameterisation + KL: one pass reads ``mu`` (and ``logvar``), writes ``z`` and KL sums.

Unfused, ``z = mu + exp(logvar / 2) * randn_like(mu)`` plus the KL costs a pass per op and stores
``eps`` for the backward. Here ``eps`` is drawn inside the kernel from Philox with a seed, and the
backward *regenerates* it from the same seed and element positions instead of reading it back:
the op moves the bytes it must (``mu``, ``logvar`` in, ``z`` out) and nothing else.

Layout: program ``p`` owns the ``BLOCK`` elements ``[p * BLOCK, (p + 1) * BLOCK)`` as four
contiguous quarters; one ``tl.randn4x`` call at Philox counters ``p * BLOCK / 4 + lane`` gives
the four quarters' noise (a quarter of the Philox rounds of ``tl.randn``). ``BLOCK`` is a fixed
constant, never autotuned: the backward must lay the counters out exactly as the forward did.
Each program writes one KL partial sum; the host adds them with ``torch.sum`` (deterministic,
unlike float atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .common import accumulator, check_runnable, is_interpreted, torch_accumulator

#: Elements per program (four quarters of ``BLOCK // 4``); part of the noise layout, see above.
BLOCK = 4096
_NUM_WARPS = 8


@triton.jit
def _forward_quarter(
    mu_ptr, lv_ptr, z_ptr, offs, n, eps, FULL: tl.constexpr, SAMPLE: tl.constexpr, ACC: tl.constexpr
):
    """Write ``z`` for one quarter and return its sum of KL integrands."""
    mask = offs < n
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(ACC)
    if FULL:
        lv = tl.load(lv_ptr + offs, mask=mask, other=0.0).to(ACC)
        term = mu * mu + tl.exp(lv) - lv - 1.0
        z = mu + tl.exp(0.5 * lv) * eps
    else:
        term = mu * mu
        z = mu + eps
    if SAMPLE:
        tl.store(z_ptr + offs, z.to(z_ptr.dtype.element_ty), mask=mask)
    return tl.sum(tl.where(mask, term, 0.0), axis=0)


@triton.jit(do_not_specialize=["seed"])
def _reparam_fwd_kernel(
    mu_ptr,
    lv_ptr,
    z_ptr,
    partial_ptr,
    n,
    seed,
    FULL: tl.constexpr,
    SAMPLE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    QUARTER: tl.constexpr = BLOCK // 4
    lane = tl.arange(0, QUARTER)
    start = pid * BLOCK + lane
    if SAMPLE:
        e0, e1, e2, e3 = tl.randn4x(seed, pid * QUARTER + lane)
    else:
        e0, e1, e2, e3 = 0.0, 0.0, 0.0, 0.0
    kl = _forward_quarter(mu_ptr, lv_ptr, z_ptr, start, n, e0, FULL, SAMPLE, ACC)
    kl += _forward_quarter(mu_ptr, lv_ptr, z_ptr, start + QUARTER, n, e1, FULL, SAMPLE, ACC)
    kl += _forward_quarter(mu_ptr, lv_ptr, z_ptr, start + 2 * QUARTER, n, e2, FULL, SAMPLE, ACC)
    kl += _forward_quarter(mu_ptr, lv_ptr, z_ptr, start + 3 * QUARTER, n, e3, FULL, SAMPLE, ACC)
    tl.store(partial_ptr + pid, kl)


@triton.jit
def _backward_quarter(
    mu_ptr,
    lv_ptr,
    dz_ptr,
    dmu_ptr,
    dlv_ptr,
    offs,
    n,
    eps,
    g,
    FULL: tl.constexpr,
    HAS_DZ: tl.constexpr,
    ACC: tl.constexpr,
):
    """Gradients for one quarter; ``g`` is ``dL/dkl`` over the KL's denominator."""
    mask = offs < n
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(ACC)
    dz = 0.0
    if HAS_DZ:
        dz = tl.load(dz_ptr + offs, mask=mask, other=0.0).to(ACC)
    tl.store(dmu_ptr + offs, (dz + 2.0 * g * mu).to(dmu_ptr.dtype.element_ty), mask=mask)
    if FULL:
        lv = tl.load(lv_ptr + offs, mask=mask, other=0.0).to(ACC)
        dlv = g * (tl.exp(lv) - 1.0) + dz * eps * 0.5 * tl.exp(0.5 * lv)
        tl.store(dlv_ptr + offs, dlv.to(dlv_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["seed"])
def _reparam_bwd_kernel(
    mu_ptr,
    lv_ptr,
    dz_ptr,
    dkl_ptr,
    dmu_ptr,
    dlv_ptr,
    n,
    seed,
    kl_denom,
    FULL: tl.constexpr,
    HAS_DZ: tl.constexpr,
    HAS_DKL: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    QUARTER: tl.constexpr = BLOCK // 4
    lane = tl.arange(0, QUARTER)
    start = pid * BLOCK + lane
    # Only dz/dlogvar = eps * std / 2 needs the noise: the reduced VAE's backward draws none.
    if FULL and HAS_DZ:
        e0, e1, e2, e3 = tl.randn4x(seed, pid * QUARTER + lane)
    else:
        e0, e1, e2, e3 = 0.0, 0.0, 0.0, 0.0
    g = 0.0
    if HAS_DKL:
        g = tl.load(dkl_ptr).to(ACC) / kl_denom
    _backward_quarter(mu_ptr, lv_ptr, dz_ptr, dmu_ptr, dlv_ptr, start, n, e0, g, FULL, HAS_DZ, ACC)
    _backward_quarter(
        mu_ptr, lv_ptr, dz_ptr, dmu_ptr, dlv_ptr, start + QUARTER, n, e1, g, FULL, HAS_DZ, ACC
    )
    _backward_quarter(
        mu_ptr, lv_ptr, dz_ptr, dmu_ptr, dlv_ptr, start + 2 * QUARTER, n, e2, g, FULL, HAS_DZ, ACC
    )
    _backward_quarter(
        mu_ptr, lv_ptr, dz_ptr, dmu_ptr, dlv_ptr, start + 3 * QUARTER, n, e3, g, FULL, HAS_DZ, ACC
    )


def _kl_denominator(mu: Tensor, full: bool) -> int:
    """What the KL's sum is divided by: all elements (reduced) or twice the batch (full).

    An integer, so that the kernel divides in its accumulator dtype (exact enough for fp64
    ``gradcheck``, where a float argument would be rounded to fp32 by the launcher).
    """
    return 2 * mu.shape[0] if full else mu.numel()


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def _forward(mu: Tensor, logvar: Tensor | None, seed: int, sample: bool) -> tuple[Tensor, Tensor]:
    """Launch the forward kernel: ``z`` (an empty tensor when ``sample`` is false) and the KL."""
    n = mu.numel()
    z = torch.empty_like(mu) if sample else mu.new_empty(0)
    partials = torch.empty(_grid(n)[0], device=mu.device, dtype=torch_accumulator(mu.dtype))
    full = logvar is not None
    _reparam_fwd_kernel[_grid(n)](
        mu,
        logvar if full else mu,
        z if sample else mu,
        partials,
        n,
        seed,
        FULL=full,
        SAMPLE=sample,
        ACC=accumulator(mu.dtype),
        BLOCK=BLOCK,
        num_warps=_NUM_WARPS,
    )
    kl = (partials.sum() / _kl_denominator(mu, full)).to(mu.dtype)
    return z, kl


class ReparamFunction(torch.autograd.Function):
    """``(z, kl)`` (``sample=True``) or ``(None, kl)``; the backward regenerates ``eps``."""

    @staticmethod
    def forward(ctx, mu: Tensor, logvar: Tensor | None, seed: int, sample: bool):
        ctx.set_materialize_grads(False)  # unused outputs arrive as None: skip their reads
        z, kl = _forward(mu, logvar, seed, sample)
        ctx.save_for_backward(mu, logvar)
        ctx.seed = seed
        return (z if sample else None), kl

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dz: Tensor | None, dkl: Tensor | None):
        mu, logvar = ctx.saved_tensors
        full = logvar is not None
        dz = dz.contiguous() if dz is not None else None
        dmu = torch.empty_like(mu)
        dlogvar = torch.empty_like(logvar) if full else None
        n = mu.numel()
        _reparam_bwd_kernel[_grid(n)](
            mu,
            logvar if full else mu,
            dz if dz is not None else mu,
            dkl if dkl is not None else mu,
            dmu,
            dlogvar if full else dmu,
            n,
            ctx.seed,
            _kl_denominator(mu, full),
            FULL=full,
            HAS_DZ=dz is not None,
            HAS_DKL=dkl is not None,
            ACC=accumulator(mu.dtype),
            BLOCK=BLOCK,
            num_warps=_NUM_WARPS,
        )
        return dmu, dlogvar, None, None


def draw_seed() -> int:
    """A Philox seed from torch's (CPU) RNG, so that ``torch.manual_seed`` makes runs repeat.

    Drawing on the CPU generator costs no device synchronisation.
    """
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


def reparameterize(
    mu: Tensor, logvar: Tensor | None = None, *, sample: bool = True, seed: int | None = None
) -> tuple[Tensor, Tensor]:
    """Triton version of :func:`unitlab.kernels.reference.reparameterize`.

    ``seed`` fixes the noise (same seed, same ``z``); by default one is drawn with
    :func:`draw_seed`. Non-contiguous inputs are copied to contiguous ones first.
    """
    check_runnable("reparameterize", INTERPRETED, mu, logvar)
    if logvar is not None and logvar.shape != mu.shape:
        raise ValueError(f"logvar shape {tuple(logvar.shape)} must equal mu's {tuple(mu.shape)}")
    if logvar is not None and logvar.dtype != mu.dtype:
        raise TypeError(f"logvar dtype {logvar.dtype} must equal mu's {mu.dtype}")
    if mu.numel() == 0 or mu.dim() == 0:
        raise ValueError(f"reparameterize needs a non-empty batch, got shape {tuple(mu.shape)}")
    if seed is None:
        seed = draw_seed() if sample else 0
    mu = mu.contiguous()
    logvar = logvar.contiguous() if logvar is not None else None
    z, kl = ReparamFunction.apply(mu, logvar, seed, sample)
    return (z if sample else mu), kl


def philox_normal(shape: tuple[int, ...], seed: int, device: str | torch.device = "cpu") -> Tensor:
    """The ``eps`` that :func:`reparameterize` adds for ``seed`` (fp32), for tests and teaching."""
    zeros = torch.zeros(shape, device=device, dtype=torch.float32)
    return _forward(zeros, None, seed, sample=True)[0]


#: Whether these kernels were built for the Triton interpreter (CPU) instead of a GPU.
INTERPRETED: bool = is_interpreted(_reparam_fwd_kernel)
