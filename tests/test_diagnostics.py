"""The discriminator check: logit spread at init, and learning against a fixed generator."""

import pytest
import torch

from unitlab.config import apply_overrides, get_preset
from unitlab.diagnostics import chance_loss, discriminator_check
from unitlab.models import UNIT


def _data(n=32, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(
        n, 3, size, size, generator=g
    ) * 2 - 1


@pytest.mark.parametrize(
    "d_init,bound", [("dcgan", lambda s: s < 1e-3), ("pytorch", lambda s: s > 1e-3)]
)
def test_logit_spread_at_init_depends_on_the_initialisation(d_init, bound):
    cfg = apply_overrides(get_preset("tiny"), [f"model.d_init={d_init}"])
    torch.manual_seed(0)
    model = UNIT(cfg.model)
    check = discriminator_check(model, cfg, *_data(), steps=1)
    assert bound(check.logit_std), check.logit_std


def test_a_discriminator_learns_to_tell_maps_from_translations_of_a_fixed_generator():
    cfg = apply_overrides(get_preset("tiny"), ["optim.lr=1e-3", "model.d_init=pytorch"])
    torch.manual_seed(0)
    model = UNIT(cfg.model)
    data_a, data_b = _data()
    data_b = data_b.clamp(0.5, 1)  # "maps": bright images, unlike an untrained generator's
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check = discriminator_check(model, cfg, data_a, data_b, steps=40)
    assert check.left_chance and check.separation > 0.9, check.summary()
    assert check.chance == pytest.approx(chance_loss("vanilla"))
    for k, v in model.state_dict().items():  # the model itself is untouched
        assert torch.equal(v, before[k]), k


def test_chance_loss_values_and_bad_arguments():
    assert chance_loss("lsgan", scales=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="GAN mode"):
        chance_loss("wgan")
    cfg = get_preset("tiny")
    with pytest.raises(ValueError, match="steps"):
        discriminator_check(UNIT(cfg.model), cfg, *_data(), steps=0)
