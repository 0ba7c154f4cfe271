"""Fused reparameterisation + KL kernel vs the PyTorch reference, and its Philox noise."""

from __future__ import annotations

import math

import pytest
import torch
from kernel_checks import assert_close
from unitlab.kernels import reference
from unitlab.kernels.common import check_runnable
from unitlab.kernels.reparam import BLOCK, draw_seed, philox_normal, reparameterize

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# odd sizes, a non-power-of-two batch, and one spanning several programs (> BLOCK elements)
SHAPES = [(2, 3, 5, 7), (1, 4, 33, 17), (3, BLOCK + 5)]


def _inputs(shape, dtype, device, full, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g).to(device, dtype).requires_grad_()
    logvar = (0.5 * torch.randn(shape, generator=g)).to(device, dtype).requires_grad_()
    return mu, (logvar if full else None)


def _reference(mu, logvar, seed, sample=True):
    """The reference in fp64 on the same inputs, fed the kernel's own noise."""
    mu64 = mu.detach().double().requires_grad_()
    lv64 = logvar.detach().double().requires_grad_() if logvar is not None else None
    eps = philox_normal(mu.shape, seed, mu.device).double()
    z, kl = reference.reparameterize(mu64, lv64, sample=sample, noise=eps)
    return mu64, lv64, z, kl


@pytest.mark.parametrize("full", [False, True], ids=["reduced", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape, dtype, full, device):
    mu, logvar = _inputs(shape, dtype, device, full)
    z, kl = reparameterize(mu, logvar, seed=1234)
    mu64, lv64, z_ref, kl_ref = _reference(mu, logvar, seed=1234)
    assert z.dtype == dtype and kl.dtype == dtype and kl.dim() == 0
    assert_close(z, z_ref, dtype)
    assert_close(kl, kl_ref, dtype)

    dz = torch.randn(shape, generator=torch.Generator().manual_seed(9)).to(device, dtype)
    dkl = torch.tensor(0.7, device=device, dtype=dtype)
    inputs = [t for t in (mu, logvar) if t is not None]
    grads = torch.autograd.grad((z, kl), inputs, (dz, dkl))
    refs = torch.autograd.grad(
        (z_ref, kl_ref), [t for t in (mu64, lv64) if t is not None], (dz.double(), dkl.double())
    )
    for grad, ref in zip(grads, refs, strict=True):
        assert grad.dtype == dtype
        assert_close(grad, ref, dtype, scale=ref.abs().max().item())


@pytest.mark.parametrize("full", [False, True], ids=["reduced", "full"])
def test_no_sample_returns_mu_and_kl(full, device):
    mu, logvar = _inputs((2, 3, 5, 7), torch.float32, device, full)
    z, kl = reparameterize(mu, logvar, sample=False)
    assert z is mu
    mu64, lv64, _, kl_ref = _reference(mu, logvar, seed=0, sample=False)
    assert_close(kl, kl_ref, torch.float32)
    inputs = [t for t in (mu, logvar) if t is not None]
    refs = torch.autograd.grad(kl_ref, [t for t in (mu64, lv64) if t is not None])
    for grad, ref in zip(torch.autograd.grad(kl, inputs), refs, strict=True):
        assert_close(grad, ref, torch.float32)


@pytest.mark.parametrize("use", ["z", "kl"])
def test_one_output_unused(use, device):
    """Gradients are right when only ``z`` or only the KL reaches the loss (None grads)."""
    mu, logvar = _inputs((2, 3, 5, 7), torch.float32, device, full=True)
    z, kl = reparameterize(mu, logvar, seed=5)
    mu64, lv64, z_ref, kl_ref = _reference(mu, logvar, seed=5)
    out, out_ref = (z.sum(), z_ref.sum()) if use == "z" else (kl, kl_ref)
    grads = torch.autograd.grad(out, (mu, logvar))
    for grad, ref in zip(grads, torch.autograd.grad(out_ref, (mu64, lv64)), strict=True):
        assert_close(grad, ref, torch.float32)


@pytest.mark.parametrize("sample", [True, False], ids=["sample", "no-sample"])
@pytest.mark.parametrize("full", [False, True], ids=["reduced", "full"])
def test_gradcheck_float64(full, sample, device):
    mu, logvar = _inputs((2, 6), torch.float64, device, full)  # the full Jacobian: keep it small

    def fn(*args):
        z, kl = reparameterize(*args, sample=sample, seed=77)
        return z * 1.0, kl  # `* 1.0`: with sample=False, z is mu itself

    inputs = (mu, logvar) if full else (mu,)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_non_contiguous_input_is_copied(device):
    """A transposed ``mu`` gives what its contiguous copy gives (elements in logical order)."""
    base = torch.randn(7, 6).to(device)
    mu_t = base.t().requires_grad_()  # (6, 7), non-contiguous
    mu_c = base.t().contiguous().requires_grad_()
    z_t, kl_t = reparameterize(mu_t, seed=3)
    z_c, kl_c = reparameterize(mu_c, seed=3)
    torch.testing.assert_close(z_t, z_c, rtol=0, atol=0)
    torch.testing.assert_close(kl_t, kl_c, rtol=0, atol=0)
    (g_t,) = torch.autograd.grad((z_t * z_t).sum() + kl_t, mu_t)
    (g_c,) = torch.autograd.grad((z_c * z_c).sum() + kl_c, mu_c)
    torch.testing.assert_close(g_t, g_c, rtol=0, atol=0)


def test_same_seed_same_z_and_deterministic_kl(device):
    mu, logvar = _inputs((3, BLOCK + 5), torch.float32, device, full=True)
    z1, kl1 = reparameterize(mu, logvar, seed=42)
    z2, kl2 = reparameterize(mu, logvar, seed=42)
    z3, _ = reparameterize(mu, logvar, seed=43)
    assert torch.equal(z1, z2) and torch.equal(kl1, kl2)  # bitwise: no atomics in the KL sum
    assert (z1 != z3).float().mean() > 0.99


def test_seed_follows_torch_manual_seed(device):
    mu = torch.zeros(4, 9, device=device)
    torch.manual_seed(0)
    seed = draw_seed()
    torch.manual_seed(0)
    z1, _ = reparameterize(mu)
    torch.testing.assert_close(z1, philox_normal(mu.shape, seed, device), rtol=0, atol=0)
    torch.manual_seed(0)
    z2, _ = reparameterize(mu)
    z3, _ = reparameterize(mu)
    assert torch.equal(z1, z2) and not torch.equal(z2, z3)


def test_noise_is_standard_normal(device):
    """Mean, variance and the 1-sigma mass of Philox's eps, with 5-sigma bounds.

    For n iid N(0, 1) draws: the sample mean has standard deviation 1/sqrt(n); the sample
    variance has standard deviation sqrt(2/(n-1)) ~ sqrt(2/n) (Var(s^2) = 2 sigma^4 / (n-1) for
    a normal); the fraction inside [-1, 1] is a binomial proportion around p = 0.6827 with
    standard deviation sqrt(p(1-p)/n). Five standard deviations: a correct generator fails
    with probability < 1e-6 per bound (and the seed is fixed, so the test cannot flake).
    The four quarters of a program share one Philox call (``randn4x``): their correlation
    coefficient has standard deviation ~1/sqrt(m) for m pairs, bounded likewise.
    """
    n = 4 * BLOCK * 16
    eps = philox_normal((n,), seed=2024, device=device).double().cpu()
    assert abs(eps.mean()) < 5 / math.sqrt(n)
    assert abs(eps.var() - 1) < 5 * math.sqrt(2 / n)
    p = math.erf(1 / math.sqrt(2))
    inside = (eps.abs() <= 1).double().mean()
    assert abs(inside - p) < 5 * math.sqrt(p * (1 - p) / n)
    quarters = eps.view(-1, 4, BLOCK // 4)  # [program, quarter, lane]
    a, b = quarters[:, 0].flatten(), quarters[:, 1].flatten()
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert abs(corr) < 5 / math.sqrt(a.numel())


def test_rejects_bad_inputs(device):
    mu = torch.randn(2, 3, device=device)
    with pytest.raises(ValueError, match="logvar shape"):
        reparameterize(mu, torch.randn(2, 4, device=device))
    with pytest.raises(TypeError, match="logvar dtype"):
        reparameterize(mu, torch.randn(2, 3, device=device, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32/float16/bfloat16/float64"):
        reparameterize(torch.ones(2, 3, dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match="non-empty"):
        reparameterize(torch.empty(0, 3, device=device))


def test_cpu_tensors_need_the_interpreter():
    """Outside the interpreter, CPU tensors are refused with the fix in the message."""
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        check_runnable("reparameterize", False, torch.zeros(3))
