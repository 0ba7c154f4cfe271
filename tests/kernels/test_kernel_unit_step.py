"""A whole UNIT training iteration gives the same losses and gradients with either backend."""

from __future__ import annotations

import pytest
import torch
from unitlab.kernels import reference
from unitlab.kernels.reparam import draw_seed, philox_normal

from unitlab.config import get_preset
from unitlab.trainer import Trainer


def _train_step(backend: str, x_a, x_b, device, precision: str = "fp32"):
    """One ``train_step`` (E/G step, then D step) at the ``tiny`` preset; losses and grads.

    After the step every parameter still holds the gradient of its own update: the
    discriminators' from the D step, the encoders'/generators' from the E/G step.
    """
    cfg = get_preset("tiny")
    cfg.kernels, cfg.precision = backend, precision
    trainer = Trainer(cfg, device=device)  # seeds torch: identical initial weights
    torch.manual_seed(1)
    losses = trainer.train_step(x_a, x_b)
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return losses, grads


@pytest.fixture
def true_fp32():
    """No TF32 (PyTorch's CUDA default for convolutions): it would round both runs' tiny
    differences into large ones. No effect on the CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cudnn.allow_tf32 = saved[0]
    torch.set_float32_matmul_precision(saved[1])


def test_training_step_matches_torch_backend(device, monkeypatch, true_fp32):
    """Backend ``triton`` (fused kernels; the interpreter on a CPU) vs ``torch`` (reference).

    The backends draw the reparameterisation noise differently: the reference calls
    ``torch.randn_like``, the kernel regenerates Philox noise from a seed it draws from torch's
    RNG. To compare like with like, the reference run is fed the kernel's own noise: it draws
    the seed the same way (so both runs consume torch's RNG identically) and passes
    ``philox_normal(seed)`` as ``noise``. Everything else, including the in-kernel sampling and
    its seed-regenerating backward, runs unchanged; that the Philox noise is standard normal
    is tested on its own in test_kernel_reparam.py.
    """
    cfg = get_preset("tiny")
    shape = (cfg.batch_size, 3, cfg.model.image_size, cfg.model.image_size)
    g = torch.Generator().manual_seed(0)
    x_a, x_b = (torch.rand(shape, generator=g).to(device) * 2 - 1 for _ in range(2))

    triton_losses, triton_grads = _train_step("triton", x_a, x_b, device)
    _feed_kernel_noise_to_the_reference(monkeypatch)
    torch_losses, torch_grads = _train_step("torch", x_a, x_b, device)

    assert triton_losses.keys() == torch_losses.keys()
    for name, value in torch_losses.items():
        assert abs(triton_losses[name] - value) <= 1e-4 * max(abs(value), 1.0), name
    assert triton_grads.keys() == torch_grads.keys()
    for names in _by_module(torch_grads).values():
        # One scale per layer: a conv bias that feeds an instance norm has a zero gradient in
        # exact arithmetic, so its own "scale" is rounding noise; its layer's weight's is not.
        scale = max(torch_grads[n].abs().max().item() for n in names)
        for name in names:
            torch.testing.assert_close(
                triton_grads[name],
                torch_grads[name],
                rtol=1e-3,
                atol=1e-4 * scale,
                msg=lambda m, n=name: f"{n}: {m}",
            )


def _feed_kernel_noise_to_the_reference(monkeypatch) -> None:
    """Make the reference draw the noise the kernel draws (see the test above)."""
    original = reference.reparameterize

    def kernel_noise(mu, logvar=None, *, sample=True, noise=None):
        if sample and noise is None:
            noise = philox_normal(mu.shape, draw_seed(), mu.device).to(mu.dtype)
        return original(mu, logvar, sample=sample, noise=noise)

    monkeypatch.setattr(reference, "reparameterize", kernel_noise)


def test_bf16_training_step_runs_the_kernels_and_matches_torch(device, monkeypatch):
    """precision=bf16 (autocast): the kernels get bf16 block outputs next to fp32 skips (the
    reparameterised codes); ops promotes them as PyTorch does, and the losses agree with the
    torch backend's bf16 step to bf16 rounding (the same noise as above)."""
    cfg = get_preset("tiny")
    shape = (cfg.batch_size, 3, cfg.model.image_size, cfg.model.image_size)
    g = torch.Generator().manual_seed(0)
    x_a, x_b = (torch.rand(shape, generator=g).to(device) * 2 - 1 for _ in range(2))
    triton_losses, _ = _train_step("triton", x_a, x_b, device, precision="bf16")
    _feed_kernel_noise_to_the_reference(monkeypatch)
    torch_losses, _ = _train_step("torch", x_a, x_b, device, precision="bf16")
    for name, value in torch_losses.items():
        assert triton_losses[name] == pytest.approx(value, rel=2e-2, abs=1e-3), name


def _by_module(grads: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Parameter names grouped by the module that owns them (``a.b.weight`` -> ``a.b``)."""
    groups: dict[str, list[str]] = {}
    for name in grads:
        groups.setdefault(name.rpartition(".")[0], []).append(name)
    return groups
