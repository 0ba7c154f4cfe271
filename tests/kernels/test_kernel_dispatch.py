"""The ``unitlab.ops`` seam: which backend runs, how it is chosen, and the errors it gives."""

from __future__ import annotations

import pytest
import torch
from unitlab.kernels import reference
from unitlab.kernels.reparam import draw_seed, philox_normal

from unitlab import ops


@pytest.fixture
def x(device):
    return torch.randn(2, 3, 4, 5, device=device)


def test_env_variable_selects_backend(monkeypatch, x):
    ops.set_backend(None)
    monkeypatch.delenv(ops.ENV_VAR, raising=False)
    assert ops.get_backend() == "auto"
    for name in ops.BACKENDS:
        monkeypatch.setenv(ops.ENV_VAR, name)
        assert ops.get_backend() == name
    monkeypatch.setenv(ops.ENV_VAR, "cuda")
    with pytest.raises(ValueError, match="UNITLAB_KERNELS='cuda' must be one of auto, torch"):
        ops.instance_norm_act(x)


def test_set_backend_wins_over_env_and_refuses_unknown_names(monkeypatch):
    monkeypatch.setenv(ops.ENV_VAR, "triton")
    ops.set_backend("torch")
    assert ops.get_backend() == "torch"
    with pytest.raises(ValueError, match="'Triton' must be one of auto, torch, triton"):
        ops.set_backend("Triton")
    assert ops.get_backend() == "torch"
    with ops.use_backend("auto"):
        assert ops.get_backend() == "auto"
    assert ops.get_backend() == "torch"


def test_auto_uses_triton_only_on_cuda(x):
    with ops.use_backend("auto"):
        assert ops.uses_triton(x) == (x.is_cuda and ops.triton_available())
        assert not ops.uses_triton(x.cpu())
    with ops.use_backend("torch"):
        assert not ops.uses_triton(x)
    with ops.use_backend("triton"):
        assert ops.uses_triton(x)


def test_forced_triton_runs_the_kernels(x):
    """Kernel results (the Triton noise, drawn from torch's RNG via a seed) under ``triton``."""
    with ops.use_backend("triton"):
        torch.manual_seed(0)
        z, kl = ops.reparameterize(x)
        y = ops.instance_norm_act(x, activation="lrelu", residual=x)
    torch.manual_seed(0)
    torch.testing.assert_close(z - x, philox_normal(x.shape, draw_seed(), x.device))
    torch.testing.assert_close(kl, x.pow(2).mean())
    torch.testing.assert_close(y, reference.instance_norm_act(x, activation="lrelu", residual=x))


def test_forced_torch_runs_the_reference(x):
    with ops.use_backend("torch"):
        torch.manual_seed(0)
        z, kl = ops.reparameterize(x, x)
        y = ops.instance_norm_act(x, activation="none")
    torch.manual_seed(0)
    z_ref, kl_ref = reference.reparameterize(x, x)
    assert torch.equal(z, z_ref) and torch.equal(kl, kl_ref)
    assert torch.equal(y, reference.instance_norm_act(x, activation="none"))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_both_backends_refuse_unknown_activation(backend, x):
    with ops.use_backend(backend), pytest.raises(ValueError, match="activation 'tanh'"):
        ops.instance_norm_act(x, activation="tanh")


def test_forced_triton_without_triton_is_a_clear_error(monkeypatch, x):
    monkeypatch.setattr(ops, "triton_available", lambda: False)
    with ops.use_backend("triton"), pytest.raises(RuntimeError, match="Triton does not import"):
        ops.instance_norm_act(x)
    with ops.use_backend("auto"):
        assert not ops.uses_triton(x)  # auto falls back to the reference instead


def _backends_seen_in_a_step(monkeypatch, kernels: str) -> set[str]:
    """The backend in force at every op call of one ``train_step`` of a ``tiny`` Trainer."""
    from unitlab.config import get_preset
    from unitlab.trainer import Trainer

    seen = set()
    original = ops.uses_triton

    def recording(x):
        seen.add(ops.get_backend())
        return original(x)

    monkeypatch.setattr(ops, "uses_triton", recording)
    cfg = get_preset("tiny")
    cfg.kernels = kernels
    trainer = Trainer(cfg)
    x = torch.rand(cfg.batch_size, 3, cfg.model.image_size, cfg.model.image_size) * 2 - 1
    trainer.train_step(x, x)
    return seen


def test_trainer_honours_an_enclosing_use_backend(monkeypatch):
    """kernels=auto follows the backend in force around the trainer (as the kernel
    benchmark's step table relies on), and constructing a trainer changes nothing."""
    with ops.use_backend("torch"):
        assert _backends_seen_in_a_step(monkeypatch, "auto") == {"torch"}
        assert ops.get_backend() == "torch"
    with ops.use_backend("auto"):
        assert _backends_seen_in_a_step(monkeypatch, "auto") == {"auto"}


def test_a_trainers_forced_backend_stays_inside_its_steps(monkeypatch):
    """kernels=torch rules the trainer's steps only: before and after, the enclosing
    setting is in force again (no trainer leaks its choice into other code)."""
    with ops.use_backend("auto"):
        assert _backends_seen_in_a_step(monkeypatch, "torch") == {"torch"}
        assert ops.get_backend() == "auto"
