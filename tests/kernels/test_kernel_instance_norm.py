"""Fused instance norm + activation + residual kernel vs the PyTorch reference."""

from __future__ import annotations

import pytest
import torch
from kernel_checks import assert_close
from unitlab.kernels import reference
from unitlab.kernels.instance_norm import instance_norm_act

ACTIVATIONS = ["relu", "lrelu", "none"]
# (shape, max_block): single block; rows longer than the block (several chunks, a ragged last
# one); non-power-of-two H*W; 1-D spatial.
CASES = [
    ((2, 3, 5, 7), 4096),
    ((2, 3, 5, 7), 16),
    ((1, 4, 33, 17), 128),
    ((3, 2, 50), 4096),
]


def _inputs(shape, dtype, device, affine, residual, shift=0.0):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 2 + shift).to(device, dtype).requires_grad_()
    c = shape[1]
    w = (1 + 0.5 * torch.randn(c, generator=g)).to(device, dtype).requires_grad_()
    b = (0.5 * torch.randn(c, generator=g)).to(device, dtype).requires_grad_()
    r = torch.randn(shape, generator=g).to(device, dtype).requires_grad_()
    return x, (w if affine else None), (b if affine else None), (r if residual else None)


def _check(x, w, b, r, activation, max_block, dtype):
    """Kernel output and all gradients vs the fp64 reference on the same (upcast) inputs."""
    y = instance_norm_act(
        x, w, b, activation=activation, slope=0.1, residual=r, max_block=max_block
    )
    refs = [t.detach().double().requires_grad_() if t is not None else None for t in (x, w, b, r)]
    y_ref = reference.instance_norm_act(
        refs[0], refs[1], refs[2], activation=activation, slope=0.1, residual=refs[3]
    )
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, y_ref, dtype, scale=y_ref.abs().max().item())
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.device, dtype)
    grads = torch.autograd.grad(y, [t for t in (x, w, b, r) if t is not None], dy)
    expected = torch.autograd.grad(y_ref, [t for t in refs if t is not None], dy.double())
    for grad, ref in zip(grads, expected, strict=True):
        assert grad.dtype == dtype
        assert_close(grad, ref, dtype, scale=ref.abs().max().item())


@pytest.mark.parametrize("residual", [False, True], ids=["", "res"])
@pytest.mark.parametrize("affine", [False, True], ids=["", "affine"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape,max_block", CASES, ids=str)
def test_fp32_matches_reference(shape, max_block, activation, affine, residual, device):
    x, w, b, r = _inputs(shape, torch.float32, device, affine, residual)
    _check(x, w, b, r, activation, max_block, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape,max_block", CASES[:3], ids=str)
def test_half_precision_matches_reference(shape, max_block, dtype, device):
    """Half-precision storage, fp32 statistics: within a few output ulps of the fp64 reference."""
    x, w, b, r = _inputs(shape, dtype, device, affine=True, residual=True)
    _check(x, w, b, r, "lrelu", max_block, dtype)


@pytest.mark.parametrize("max_block", [4096, 16], ids=["single", "chunked"])
def test_large_mean_is_stable(max_block, device):
    """fp32 statistics stay accurate when the mean dwarfs the spread (merging chunk moments).

    At mean 1e4 and std 2, the naive fp32 ``E[x^2] - E[x]^2`` cancels ~1e8 against ~1e8 with
    an ulp of 8: the variance (4) is lost entirely. Exact chunk moments lose only the rounding
    of the mean itself (ulp(1e4) = 2**-10, so |error| <= 5e-4 on x - mean, 2.5e-4 after
    dividing by the std): the normalised output must be within 1e-3 of the fp64 reference.
    """
    x, *_ = _inputs((2, 3, 9, 11), torch.float32, device, False, False, shift=1e4)
    y = instance_norm_act(x.detach(), activation="none", max_block=max_block)
    y_ref = reference.instance_norm_act(x.detach().double(), activation="none")
    torch.testing.assert_close(y.double(), y_ref, rtol=0, atol=1e-3, check_device=False)


@pytest.mark.parametrize("max_block", [4096, 16], ids=["single", "chunked"])
def test_gradcheck_float64(max_block, device):
    x, w, b, r = _inputs((1, 2, 4, 5), torch.float64, device, affine=True, residual=True)

    def fn(x, w, b, r):
        return instance_norm_act(x, w, b, activation="lrelu", residual=r, max_block=max_block)

    # The full Jacobian for the one-block path; a random projection of it (fast mode) for the
    # chunked one, whose every call costs the interpreter more.
    fast = max_block == 16
    assert torch.autograd.gradcheck(fn, (x, w, b, r), eps=1e-6, atol=1e-6, fast_mode=fast)


@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_non_contiguous_input_is_copied(layout, device):
    """Strided inputs give exactly what their contiguous copies give."""
    x, w, b, r = _inputs((2, 3, 6, 8), torch.float32, device, affine=True, residual=True)
    x_c = x.detach().clone().requires_grad_()
    if layout == "channels_last":
        x_s = x_c.to(memory_format=torch.channels_last)
    else:
        x_s = torch.stack([x_c, x_c], dim=-1)[..., 0]  # stride 2 in W, same values
    assert not x_s.is_contiguous()
    y_s = instance_norm_act(x_s, w, b, residual=r)
    y_c = instance_norm_act(x, w, b, residual=r)
    torch.testing.assert_close(y_s, y_c, rtol=0, atol=0)
    dy = torch.randn_like(y_c)
    torch.testing.assert_close(
        torch.autograd.grad(y_s, (x_c, w), dy), torch.autograd.grad(y_c, (x, w), dy)
    )


def test_weight_gradient_is_deterministic(device):
    """Per-row partials + torch.sum: the affine gradients repeat bit for bit."""
    x, w, b, _ = _inputs((4, 3, 5, 7), torch.float32, device, affine=True, residual=False)
    dy = torch.randn_like(x)
    first = torch.autograd.grad(instance_norm_act(x, w, b), (w, b), dy)
    second = torch.autograd.grad(instance_norm_act(x, w, b), (w, b), dy)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_rejects_bad_inputs(device):
    x = torch.randn(2, 3, 4, 4, device=device)
    with pytest.raises(ValueError, match="activation 'gelu'"):
        instance_norm_act(x, activation="gelu")
    with pytest.raises(ValueError, match="weight shape"):
        instance_norm_act(x, torch.ones(4, device=device))
    with pytest.raises(ValueError, match="more than one spatial element"):
        instance_norm_act(torch.randn(2, 3, 1, 1, device=device))
    with pytest.raises(ValueError, match="residual"):
        instance_norm_act(x, residual=torch.randn(2, 3, 4, 5, device=device))
    with pytest.raises(ValueError, match="power of two"):
        instance_norm_act(x, max_block=24)
