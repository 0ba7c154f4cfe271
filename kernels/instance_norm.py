"""Residual-block tail: instance norm (+ per-channel affine) + activation (+ residual add), fused.

``y = act((x - mean) * rstd * weight + bias) + residual``, statistics per (sample, channel) row
over H*W. PyTorch eager runs this as three to four kernels, each reading and writing the whole
activation; fused, the forward reads ``x`` (and ``residual``) and writes ``y``, and the backward
reads ``x`` and ``dy`` and writes ``dx``, recomputing the normalised values from the saved fp32
``mean``/``rstd`` instead of storing them.

Each program normalises a ``[ROWS, BLOCK]`` tile of rows (the Triton layer-norm tutorial's
layout, with short rows packed several to a program, as FlagGems does for small H*W). A row that
fits in one block (``H*W <= BLOCK``, e.g. 64x64 at the default 4096) is read once and kept in
registers. A longer row is streamed in chunks: its statistics merge the chunks' exact means and
squared deviations with Chan's parallel formula (Welford for blocks, stable when the mean is
large against the spread), and a second sweep writes the output. The weight/bias gradients are
per-row partial sums, reduced over the batch by the host with ``torch.sum`` (deterministic, no
float atomics).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from .common import accumulator, check_runnable, is_interpreted, torch_accumulator
from .reference import check_activation

#: Largest tile (elements held at once per program); longer rows loop over chunks of this size.
MAX_BLOCK = 4096


@triton.jit
def _activate(y, ACT: tl.constexpr, slope):
    if ACT == "relu":
        y = tl.where(y > 0, y, 0.0)
    elif ACT == "lrelu":
        y = tl.where(y > 0, y, y * slope)
    return y


@triton.jit
def _activation_grad(dy, pre, ACT: tl.constexpr, slope):
    """``dy * act'(pre)``, with PyTorch's convention that the derivative at 0 is the left one."""
    if ACT == "relu":
        dy = tl.where(pre > 0, dy, 0.0)
    elif ACT == "lrelu":
        dy = tl.where(pre > 0, dy, dy * slope)
    return dy


@triton.jit
def _tile(rows, row_mask, L, start, BLOCK: tl.constexpr):
    """Offsets and mask of columns ``[start, start + BLOCK)`` of ``rows`` (a [ROWS, BLOCK] tile)."""
    cols = start + tl.arange(0, BLOCK)
    return rows[:, None] * L + cols[None, :], row_mask[:, None] & (cols[None, :] < L)


@triton.jit
def _row_stats(x_ptr, rows, row_mask, L, BLOCK: tl.constexpr, ACC: tl.constexpr):
    """Mean and biased variance of rows longer than ``BLOCK``, merging chunks (Chan et al.)."""
    offs, mask = _tile(rows, row_mask, L, 0, BLOCK)  # the first chunk is full, since L > BLOCK
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    mean = tl.sum(x, axis=1) / BLOCK
    d = tl.where(mask, x - mean[:, None], 0.0)
    m2 = tl.sum(d * d, axis=1)
    for start in range(BLOCK, L, BLOCK):
        offs, mask = _tile(rows, row_mask, L, start, BLOCK)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
        count = tl.cast(tl.minimum(L - start, BLOCK), ACC)
        chunk_mean = tl.sum(x, axis=1) / count
        d = tl.where(mask, x - chunk_mean[:, None], 0.0)
        seen = tl.cast(start, ACC)
        total = seen + count
        delta = chunk_mean - mean
        mean += delta * (count / total)
        m2 += tl.sum(d * d, axis=1) + delta * delta * (seen * count / total)
    return mean, m2 / L


@triton.jit
def _channel_affine(
    w_ptr,
    b_ptr,
    rows,
    row_mask,
    C,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    ROWS: tl.constexpr,
    ACC: tl.constexpr,
):
    """Per-row weight and bias (1 and 0 when absent); row ``r`` is channel ``r % C``."""
    w = tl.full([ROWS], 1.0, ACC)
    b = tl.zeros([ROWS], ACC)
    if HAS_W:
        w = tl.load(w_ptr + rows % C, mask=row_mask, other=1.0).to(ACC)
    if HAS_B:
        b = tl.load(b_ptr + rows % C, mask=row_mask, other=0.0).to(ACC)
    return w, b


@triton.jit
def _forward_chunk(
    x,
    offs,
    mask,
    y_ptr,
    res_ptr,
    mean,
    scale,
    shift,
    slope,
    HAS_RES: tl.constexpr,
    ACT: tl.constexpr,
):
    y = _activate((x - mean[:, None]) * scale[:, None] + shift[:, None], ACT, slope)
    if HAS_RES:
        y += tl.load(res_ptr + offs, mask=mask, other=0.0).to(y.dtype)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _in_act_fwd_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    res_ptr,
    y_ptr,
    mean_ptr,
    rstd_ptr,
    n_rows,
    C,
    L,
    eps,
    slope,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    HAS_RES: tl.constexpr,
    ACT: tl.constexpr,
    ACC: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_mask = rows < n_rows
    if SINGLE:
        offs, mask = _tile(rows, row_mask, L, 0, BLOCK)
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
        mean = tl.sum(x, axis=1) / L
        d = tl.where(mask, x - mean[:, None], 0.0)
        var = tl.sum(d * d, axis=1) / L
    else:
        mean, var = _row_stats(x_ptr, rows, row_mask, L, BLOCK, ACC)
    rstd = 1.0 / tl.sqrt(var + eps)
    tl.store(mean_ptr + rows, mean, mask=row_mask)
    tl.store(rstd_ptr + rows, rstd, mask=row_mask)
    w, b = _channel_affine(w_ptr, b_ptr, rows, row_mask, C, HAS_W, HAS_B, ROWS, ACC)
    scale = rstd * w
    if SINGLE:
        _forward_chunk(x, offs, mask, y_ptr, res_ptr, mean, scale, b, slope, HAS_RES, ACT)
    else:
        for start in range(0, L, BLOCK):
            offs, mask = _tile(rows, row_mask, L, start, BLOCK)
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
            _forward_chunk(x, offs, mask, y_ptr, res_ptr, mean, scale, b, slope, HAS_RES, ACT)


@triton.jit
def _backward_terms(
    x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, slope, ACT: tl.constexpr, ACC: tl.constexpr
):
    """Load a chunk and return ``(x_hat, g)``: the normalised input and ``dL/d(pre-activation)``."""
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(ACC)
    x_hat = (x - mean[:, None]) * rstd[:, None]
    return x_hat, _activation_grad(dy, x_hat * w[:, None] + b[:, None], ACT, slope)


@triton.jit
def _in_act_bwd_kernel(
    x_ptr,
    dy_ptr,
    w_ptr,
    b_ptr,
    mean_ptr,
    rstd_ptr,
    dx_ptr,
    dw_ptr,
    db_ptr,
    n_rows,
    C,
    L,
    slope,
    HAS_W: tl.constexpr,
    HAS_B: tl.constexpr,
    ACT: tl.constexpr,
    ACC: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    SINGLE: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_mask = rows < n_rows
    mean = tl.load(mean_ptr + rows, mask=row_mask, other=0.0)
    rstd = tl.load(rstd_ptr + rows, mask=row_mask, other=0.0)
    w, b = _channel_affine(w_ptr, b_ptr, rows, row_mask, C, HAS_W, HAS_B, ROWS, ACC)
    # Row sums of g * x_hat and g: the weight/bias gradient partials of each row, and (times w)
    # the two means in dx = rstd * w * (g - mean(g) - x_hat * mean(g * x_hat)).
    if SINGLE:
        offs, mask = _tile(rows, row_mask, L, 0, BLOCK)
        x_hat, g = _backward_terms(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, slope, ACT, ACC)
        sum_gx = tl.sum(g * x_hat, axis=1)
        sum_g = tl.sum(g, axis=1)
    else:
        acc_gx = tl.zeros([ROWS, BLOCK], ACC)
        acc_g = tl.zeros([ROWS, BLOCK], ACC)
        for start in range(0, L, BLOCK):
            offs, mask = _tile(rows, row_mask, L, start, BLOCK)
            x_hat, g = _backward_terms(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, slope, ACT, ACC)
            acc_gx += g * x_hat
            acc_g += g
        sum_gx = tl.sum(acc_gx, axis=1)
        sum_g = tl.sum(acc_g, axis=1)
    tl.store(dw_ptr + rows, sum_gx, mask=row_mask)
    tl.store(db_ptr + rows, sum_g, mask=row_mask)
    a = (rstd * w)[:, None]
    mean_gx = (sum_gx / L)[:, None]
    mean_g = (sum_g / L)[:, None]
    if SINGLE:
        dx = a * (g - mean_g - x_hat * mean_gx)
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    else:
        for start in range(0, L, BLOCK):
            offs, mask = _tile(rows, row_mask, L, start, BLOCK)
            x_hat, g = _backward_terms(x_ptr, dy_ptr, offs, mask, mean, rstd, w, b, slope, ACT, ACC)
            dx = a * (g - mean_g - x_hat * mean_gx)
            tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _launch_config(rows: int, length: int, max_block: int) -> dict:
    """Tile shape ``[ROWS, BLOCK]``, single-pass flag and warps for ``rows`` rows of ``length``.

    Short rows are packed several to a program (up to ``max_block`` elements in all), so that
    a 4x4 or 8x8 feature map does not leave most of a warp idle (and the interpreter does not
    pay its per-program overhead thousands of times). Warps follow the layer-norm tutorial's
    rule, one per 256 elements of the tile, at most 8.
    """
    if max_block < 16 or max_block & (max_block - 1):
        raise ValueError(f"max_block={max_block} must be a power of two >= 16")
    block = min(triton.next_power_of_2(length), max_block)
    single = length <= block
    per_program = min(max_block // block, triton.next_power_of_2(rows)) if single else 1
    return {
        "ROWS": per_program,
        "BLOCK": block,
        "SINGLE": single,
        "num_warps": min(max(per_program * block // 256, 1), 8),
    }


class InstanceNormActFunction(torch.autograd.Function):
    """Autograd wrapper; saves ``x`` and the fp32 ``mean``/``rstd``, recomputes the rest."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        residual: Tensor | None,
        activation: str,
        slope: float,
        eps: float,
        max_block: int,
    ) -> Tensor:
        rows, length = x.shape[0] * x.shape[1], math.prod(x.shape[2:])
        config = _launch_config(rows, length, max_block)
        y = torch.empty_like(x)
        mean = torch.empty(rows, device=x.device, dtype=torch_accumulator(x.dtype))
        rstd = torch.empty_like(mean)
        _in_act_fwd_kernel[(triton.cdiv(rows, config["ROWS"]),)](
            x,
            _or(weight, x),
            _or(bias, x),
            _or(residual, x),
            y,
            mean,
            rstd,
            rows,
            x.shape[1],
            length,
            eps,
            slope,
            HAS_W=weight is not None,
            HAS_B=bias is not None,
            HAS_RES=residual is not None,
            ACT=activation,
            ACC=accumulator(x.dtype),
            **config,
        )
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.activation, ctx.slope, ctx.config = activation, slope, config
        ctx.has_residual = residual is not None
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        dw_rows = torch.empty_like(mean)  # per-row partial sums, reduced over the batch below
        db_rows = torch.empty_like(mean)
        rows = mean.numel()
        _in_act_bwd_kernel[(triton.cdiv(rows, ctx.config["ROWS"]),)](
            x,
            dy,
            _or(weight, x),
            _or(bias, x),
            mean,
            rstd,
            dx,
            dw_rows,
            db_rows,
            rows,
            x.shape[1],
            math.prod(x.shape[2:]),
            ctx.slope,
            HAS_W=weight is not None,
            HAS_B=bias is not None,
            ACT=ctx.activation,
            ACC=accumulator(x.dtype),
            **ctx.config,
        )
        channels = x.shape[1]
        dw = dw_rows.view(-1, channels).sum(0).to(weight.dtype) if weight is not None else None
        db = db_rows.view(-1, channels).sum(0).to(bias.dtype) if bias is not None else None
        dres = dy if ctx.has_residual else None
        return dx, dw, db, dres, None, None, None, None


def _or(t: Tensor | None, fallback: Tensor) -> Tensor:
    """A real pointer for an absent optional input (the kernel never reads it)."""
    return t if t is not None else fallback


def instance_norm_act(
    x: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    activation: str = "relu",
    slope: float = 0.2,
    residual: Tensor | None = None,
    eps: float = 1e-5,
    max_block: int = MAX_BLOCK,
) -> Tensor:
    """Triton version of :func:`unitlab.kernels.reference.instance_norm_act`.

    ``x`` is ``(N, C, *spatial)``; non-contiguous inputs (e.g. channels-last) are copied to
    contiguous NCHW first, and the output is contiguous NCHW. ``max_block`` caps the elements of
    a row held at once (tests lower it to exercise the chunked path on tiny tensors).
    """
    check_activation(activation)
    check_runnable("instance_norm_act", INTERPRETED, x, weight, bias, residual)
    if x.dim() < 3 or x.shape[0] * x.shape[1] == 0 or math.prod(x.shape[2:]) < 2:
        raise ValueError(
            f"instance_norm_act needs an (N, C, *spatial) input with more than one "
            f"spatial element (as nn.InstanceNorm2d), got shape {tuple(x.shape)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.shape != (x.shape[1],):
            raise ValueError(
                f"{name} shape {tuple(t.shape)} must be ({x.shape[1]},) for {x.shape[1]} channels"
            )
    if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
        raise ValueError(
            f"residual {tuple(residual.shape)} {residual.dtype} must match x "
            f"{tuple(x.shape)} {x.dtype}"
        )
    contiguous = [t.contiguous() if t is not None else None for t in (x, weight, bias, residual)]
    return InstanceNormActFunction.apply(
        *contiguous, activation, float(slope), float(eps), max_block
    )


#: Whether these kernels were built for the Triton interpreter (CPU) instead of a GPU.
INTERPRETED: bool = is_interpreted(_in_act_fwd_kernel)
