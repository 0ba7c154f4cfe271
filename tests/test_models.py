"""Shapes, weight tying and parameter bookkeeping of the UNIT networks."""

import math

import pytest
import torch

from unitlab.config import ModelConfig, get_preset
from unitlab.models import UNIT


def tiny_model(**overrides) -> UNIT:
    cfg = get_preset("tiny").model
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return UNIT(cfg)


@pytest.mark.parametrize(
    "size,n_down,channels_a,channels_b",
    [(16, 2, 3, 3), (32, 2, 1, 3), (24, 1, 3, 1), (64, 3, 3, 3)],
)
def test_shapes_for_several_sizes(size, n_down, channels_a, channels_b):
    cfg = ModelConfig(
        image_size=size,
        channels_a=channels_a,
        channels_b=channels_b,
        base_channels=4,
        n_downsample=n_down,
        n_res_blocks=2,
        n_shared=1,
        d_channels=4,
        d_layers=3,
        d_scales=2,
    )
    model = UNIT(cfg)
    x_a = torch.randn(2, channels_a, size, size)
    mu = model.enc_a(x_a)
    assert mu.shape == (2, cfg.latent_channels, size // 2**n_down, size // 2**n_down)
    assert model.gen_a(mu).shape == x_a.shape
    x_ab = model.gen_b(mu)
    assert x_ab.shape == (2, channels_b, size, size)
    assert x_ab.abs().max() <= 1  # tanh output
    logits = model.dis_b(x_ab)
    assert len(logits) == 2
    side = math.ceil(size / 8)  # three stride-2 convs with padding 1
    assert logits[0].shape == (2, 1, side, side)
    half = math.ceil(math.ceil(size / 2) / 8)  # the second scale sees the image pooled by 2
    assert logits[1].shape == (2, 1, half, half)
    assert model.translate(x_a, "a2b").shape == x_ab.shape


@pytest.mark.parametrize("n_shared", [0, 1, 2])
def test_tied_layers_are_the_same_objects(n_shared):
    model = tiny_model(n_shared=n_shared)
    assert model.enc_a.shared is model.enc_b.shared
    assert model.gen_a.shared is model.gen_b.shared
    assert len(model.enc_a.shared) == n_shared
    # total depth is constant: tying moves blocks from private to shared
    assert len(model.enc_a.private) + len(model.enc_a.shared) == model.cfg.n_res_blocks
    assert model.enc_a.private is not model.enc_b.private
    shared_ids = {id(p) for p in model.enc_a.shared.parameters()}
    assert shared_ids == {id(p) for p in model.enc_b.shared.parameters()}
    assert not shared_ids & {id(p) for p in model.enc_a.private.parameters()}


def test_each_parameter_once_in_the_optimiser_groups():
    model = tiny_model(n_shared=2)
    gen = list(model.generator_parameters())
    assert len(gen) == len({id(p) for p in gen})
    all_gen = {
        id(p) for m in (model.enc_a, model.enc_b, model.gen_a, model.gen_b) for p in m.parameters()
    }
    assert {id(p) for p in gen} == all_gen
    dis = {id(p) for p in model.discriminator_parameters()}
    assert not dis & all_gen
    assert dis | all_gen == {id(p) for p in model.parameters()}


def test_a_step_on_domain_a_changes_domain_b_tied_layer():
    model = tiny_model(n_shared=1)
    opt = torch.optim.SGD(model.generator_parameters(), lr=0.1)
    tied_b = [p.detach().clone() for p in model.enc_b.shared.parameters()]
    private_b = [p.detach().clone() for p in model.enc_b.private.parameters()]
    loss = model.enc_a(torch.randn(2, 3, 16, 16)).pow(2).mean()  # domain a only
    loss.backward()
    opt.step()
    assert any(
        not torch.equal(a, b) for a, b in zip(tied_b, model.enc_b.shared.parameters(), strict=True)
    )
    assert all(
        torch.equal(a, b) for a, b in zip(private_b, model.enc_b.private.parameters(), strict=True)
    )


def test_untied_model_has_independent_encoders():
    model = tiny_model(n_shared=0)
    ids_a = {id(p) for p in model.enc_a.parameters()}
    ids_b = {id(p) for p in model.enc_b.parameters()}
    assert not ids_a & ids_b


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("n_shared", 5, "n_shared"),
        ("image_size", 18, "image_size"),
        ("d_layers", 9, "d_layers"),
        ("d_init", "xavier", "d_init"),
    ],
)
def test_invalid_configs_name_the_field(field, value, message):
    cfg = get_preset("tiny").model
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=message):
        UNIT(cfg)


def test_translate_rejects_wrong_shapes_with_a_clear_message():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 3, 16, 16\).*\(1, 1, 16"):
        model.translate(torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="direction"):
        model.translate(torch.zeros(1, 3, 16, 16), "a2c")


def test_translation_is_deterministic_at_test_time():
    model = tiny_model()
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model.translate(x), model.translate(x))


@pytest.mark.parametrize("n_shared", [0, 1, 2])
def test_batched_paths_equal_separate_calls(n_shared):
    """encode_pair / decode_both / decode_pair run the tied blocks once on both domains'
    batches; instance norm is per sample, so they must equal the plain per-domain calls."""
    model = tiny_model(n_shared=n_shared)
    g = torch.Generator().manual_seed(0)
    x_a, x_b = torch.rand(3, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    mu_a, mu_b = model.encode_pair(x_a, x_b)
    torch.testing.assert_close(mu_a, model.enc_a(x_a))
    torch.testing.assert_close(mu_b, model.enc_b(x_b))
    to_a, to_b = model.decode_both(mu_a)
    torch.testing.assert_close(to_a, model.gen_a(mu_a))
    torch.testing.assert_close(to_b, model.gen_b(mu_a))
    out_a, out_b = model.decode_pair(mu_a, mu_b)
    torch.testing.assert_close(out_a, model.gen_a(mu_a))
    torch.testing.assert_close(out_b, model.gen_b(mu_b))


def test_discriminator_initialisations_set_the_starting_logit_spread():
    """N(0, 0.02) starts a narrow D blind (logits ~1e-5); He-normal keeps them of order one;
    the encoders and generators keep N(0, 0.02) whatever D's scheme."""
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    spread = {}
    for scheme in ("dcgan", "pytorch", "kaiming"):
        torch.manual_seed(0)
        model = tiny_model(d_init=scheme)
        spread[scheme] = model.dis_b(x)[0].std().item()
        assert model.enc_a.stem[0].conv.weight.std().item() == pytest.approx(0.02, rel=0.2)
    assert spread["dcgan"] < 1e-3 < spread["pytorch"] < 0.1 < spread["kaiming"]


def test_model_cost_counts_parameters_and_convolution_flops():
    from unitlab.config import ModelConfig
    from unitlab.models import UNIT, model_cost

    cfg = ModelConfig(image_size=32, base_channels=8, n_res_blocks=2, n_shared=1)
    cost = model_cost(cfg)
    model = UNIT(cfg)
    assert cost["gen_params"] == sum(p.numel() for p in model.generator_parameters())
    assert cost["dis_params"] == sum(p.numel() for p in model.discriminator_parameters())
    # the encoder's first layer alone: a 7x7 conv, 3 -> 8 channels, at every one of 32x32 cells
    assert cost["encoder_flops"] > 2 * 32 * 32 * 8 * 3 * 7 * 7
    # twice the side, four times the work, for every part (convolutions scale with the pixels)
    bigger = model_cost(ModelConfig(image_size=64, base_channels=8, n_res_blocks=2, n_shared=1))
    for part in ("encoder_flops", "generator_flops", "discriminator_flops", "train_flops"):
        assert bigger[part] == pytest.approx(4 * cost[part], rel=0.05)
