"""The single-domain VAE of notebook 02: built from UNIT's blocks, trained by train_vae."""

import numpy as np
import pytest
import torch

from unitlab import course
from unitlab.config import ModelConfig
from unitlab.models import Encoder, Generator
from unitlab.vae import VAE, train_vae, vae_config


def small_cfg(steps=0):
    cfg = vae_config(image_size=16, base_channels=4, n_res_blocks=1)
    cfg.batch_size = 4
    cfg.steps = steps
    return cfg


def images(n=12, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_built_from_unit_blocks_without_tied_layers():
    model = VAE(ModelConfig(image_size=16, base_channels=4, n_res_blocks=2, n_shared=1))
    assert isinstance(model.encoder, Encoder) and isinstance(model.generator, Generator)
    assert len(model.encoder.shared) == 0 and len(model.encoder.private) == 2  # full depth kept
    assert len(model.generator.private) == 2
    assert model.cfg.n_shared == 0
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    out = model(x)
    assert out.mu.shape == (3, 16, 4, 4) == out.z.shape and out.logvar is None
    assert out.recon.shape == x.shape
    assert model.latent_shape == (16, 4, 4)


def test_reduced_kl_is_mean_mu_squared_and_noise_has_unit_variance():
    model = VAE(small_cfg().model)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    torch.manual_seed(0)
    out = model(x)
    torch.testing.assert_close(out.kl, out.mu.pow(2).mean())
    assert 0.8 < (out.z - out.mu).std().item() < 1.2
    det = model(x, sample=False)
    torch.testing.assert_close(det.z, det.mu)


def test_full_posterior_has_a_logvar_head_starting_near_zero():
    model = VAE(small_cfg().model, posterior="full")
    out = model(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert out.logvar is not None and out.logvar.shape == out.mu.shape
    assert out.logvar.abs().max() < 0.5
    mu, lv = out.mu, out.logvar
    closed = 0.5 * (mu.pow(2) + lv.exp() - lv - 1).flatten(1).sum(1).mean()
    torch.testing.assert_close(out.kl, closed)
    with pytest.raises(ValueError, match="posterior"):
        VAE(small_cfg().model, posterior="diag")


def test_training_lowers_the_reconstruction_loss_and_repeats():
    data = images()
    cfg = small_cfg()
    model, history = train_vae(data, cfg, steps=25)
    assert len(history) == 25 and set(history[0]) == {"step", "loss", "recon", "kl"}
    assert np.mean([h["recon"] for h in history[-5:]]) < history[0]["recon"]
    assert not model.training
    _, again = train_vae(data, cfg, steps=25)
    assert again == history  # seeded: weights, batches and noise repeat


def test_codes_and_reconstruct_take_uint8():
    data = images(5)
    model = VAE(small_cfg().model)
    assert model.codes(data, batch_size=2).shape == (5, 16, 4, 4)
    rec = model.reconstruct(data)
    assert rec.shape == data.shape and rec.dtype == np.uint8
    with pytest.raises(ValueError, match="VAE input"):
        model.codes(images(2, size=8))


def test_quick_switch(monkeypatch):
    monkeypatch.setenv(course.QUICK_ENV, "1")
    assert course.notebook_quick() and course.pick(500, 20) == 20
    for off in ("", "0", "false"):
        monkeypatch.setenv(course.QUICK_ENV, off)
        assert not course.notebook_quick() and course.pick(500, 20) == 500
    monkeypatch.delenv(course.QUICK_ENV)
    assert not course.notebook_quick()


def test_smooth():
    assert np.allclose(course.smooth([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    assert np.allclose(course.smooth([1, 2, 3], 1), [1, 2, 3])
