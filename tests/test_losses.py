"""Every loss term against a hand computation on tiny tensors."""

import math

import pytest
import torch

from unitlab import losses, ops


def test_l1_by_hand():
    x = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    y = torch.tensor([[0.0, 0.0], [0.5, 1.0]])
    assert losses.l1(x, y).item() == pytest.approx((1 + 2 + 0 + 1) / 4)


def test_reduced_kl_is_mean_mu_squared_before_the_noise():
    mu = torch.tensor([[1.0, -3.0], [0.0, 2.0]])
    z, kl = ops.reparameterize(mu)
    assert kl.item() == pytest.approx((1 + 9 + 0 + 4) / 4)
    assert not torch.equal(z, mu)  # noise was added to z, not to the KL's input
    z_test, kl_test = ops.reparameterize(mu, sample=False)
    assert torch.equal(z_test, mu) and kl_test.item() == pytest.approx(3.5)


def test_full_gaussian_kl_by_hand():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    _, kl = ops.reparameterize(mu, logvar)
    # 0.5 * [(1 + 1 - 0 - 1) + (0 + 4 - log 4 - 1)]
    assert kl.item() == pytest.approx(0.5 * (1 + 3 - math.log(4.0)))


def test_vanilla_gan_terms_by_hand():
    logits = [torch.tensor([0.0, 2.0])]
    sig = [0.5, 1 / (1 + math.exp(-2))]
    real = -(math.log(sig[0]) + math.log(sig[1])) / 2
    fake = -(math.log(1 - sig[0]) + math.log(1 - sig[1])) / 2
    assert losses.gan_term(logits, True).item() == pytest.approx(real, rel=1e-6)
    assert losses.gan_term(logits, False).item() == pytest.approx(fake, rel=1e-6)
    assert losses.generator_gan_loss(logits).item() == pytest.approx(real, rel=1e-6)
    d = losses.discriminator_loss(logits, [torch.tensor([-1.0])])
    assert d.item() == pytest.approx(real + math.log(1 + math.exp(-1)), rel=1e-6)


def test_lsgan_terms_by_hand():
    logits = [torch.tensor([0.0, 2.0]), torch.tensor([[0.5]])]  # two scales: summed
    assert losses.gan_term(logits, True, "lsgan").item() == pytest.approx(1.0 + 0.25)
    assert losses.gan_term(logits, False, "lsgan").item() == pytest.approx(2.0 + 0.25)


def test_unknown_gan_mode_is_refused():
    with pytest.raises(ValueError, match="wgan"):
        losses.gan_term([torch.zeros(1)], True, "wgan")


def test_instance_norm_act_by_hand():
    x = torch.tensor([[[[1.0, 3.0]]]])  # mean 2, var 1 -> normalised [-1, 1]
    y = ops.instance_norm_act(x, activation="relu", eps=0.0)
    assert torch.allclose(y, torch.tensor([[[[0.0, 1.0]]]]))
    y = ops.instance_norm_act(
        x, activation="lrelu", slope=0.1, eps=0.0, residual=torch.ones_like(x)
    )
    assert torch.allclose(y, torch.tensor([[[[0.9, 2.0]]]]))
