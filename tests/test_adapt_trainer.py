"""The digit domain-adaptation model and trainer: tying, losses, label hygiene, resume, learning.

Training tests use the ``tiny`` preset (8-channel networks) on the real USPS -> MNIST split in
../shared/data, one CPU thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from unitlab import cli
from unitlab.adapt import accuracy, adapt_preset
from unitlab.adapt.models import CoupledDigitVAE, DomainFrame, StyleCritic, coordinate_channels
from unitlab.adapt.report import format_table, load_results
from unitlab.adapt.report import main as report_main
from unitlab.adapt.trainer import (
    AdaptTrainer,
    batch_rows,
    config_split,
    feature_matching,
    load_trainer,
    run_adaptation,
    summed_squared_error,
)
from unitlab.data.adaptation import AdaptationSplit, LabeledImages
from unitlab.trainer import NonFiniteLossError


@pytest.fixture(scope="module")
def split(offline_data: Path) -> AdaptationSplit:
    """USPS -> MNIST on CI's data, offline, with a private cache, size-normalised (the tiny
    and cpu presets' data)."""
    return config_split(adapt_preset("tiny"), offline_data)


def _params(*modules: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


# --------------------------------------------------------------------------------------------
# The coupled VAE.


@pytest.mark.parametrize(("channels", "width"), [(1, 8), (3, 16)])
def test_vae_shapes(channels: int, width: int) -> None:
    vae = CoupledDigitVAE(channels, channels, width)
    x_a, x_b = torch.rand(5, channels, 32, 32) * 2 - 1, torch.rand(3, channels, 32, 32) * 2 - 1
    mu, logvar = vae.encode({"a": x_a, "b": x_b})
    assert mu.shape == logvar.shape == (8, 8 * width) == (8, vae.latent_dim)
    out = vae(torch.cat([x_a[:3]]), x_b)
    for key in ("aa", "ab", "ba", "bb"):
        assert out[key].shape == (3, channels, 32, 32)
        assert out[key].abs().max() <= 1
    assert out["kl"].ndim == 0 and out["kl"] > 0
    assert vae.translate(x_a, "a2b").shape == (5, channels, 32, 32)
    with pytest.raises(ValueError, match=r"domain a digits.*\(N, 1, 32, 32\)"):
        CoupledDigitVAE(1, 1, 8).encode({"a": torch.zeros(2, 1, 28, 28)})
    with pytest.raises(ValueError, match="direction"):
        vae.translate(x_a, "a2a")


def test_coordinate_channels() -> None:
    xy = coordinate_channels(4)
    assert xy.shape == (2, 4, 4)
    assert xy[0, :, 0].tolist() == [-1.0, -0.5, 0.0, 0.5]  # rows vary down a column
    assert xy[1, 0, :].tolist() == [-1.0, -0.5, 0.0, 0.5]  # columns along a row


def test_vae_tying_is_by_identity() -> None:
    vae = CoupledDigitVAE(1, 1, 8)
    ids = [id(p) for p in vae.parameters()]
    assert len(ids) == len(set(ids))
    shared = {id(p) for p in vae.shared_parameters()}
    private = {id(p) for p in vae.private_encoder_a.parameters()}
    assert shared and not shared & private
    # A loss on domain a alone moves the shared weights (the ones b uses), never b's private.
    mu, logvar = vae.encode({"a": torch.randn(4, 1, 32, 32)})
    (vae.decode(mu, "a").sum() + logvar.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vae.shared_parameters())
    assert all(p.grad is None for p in vae.private_encoder_b.parameters())
    assert all(p.grad is None for p in vae.private_decoder_b.parameters())


def test_mirrored_init_starts_translations_as_reconstructions() -> None:
    torch.manual_seed(0)
    vae = CoupledDigitVAE(1, 1, 8, mirror_init=True)
    x = torch.randn(4, 1, 32, 32)
    torch.testing.assert_close(vae.translate(x, "a2b"), vae.translate(x, "b2a"))
    mu, _ = vae.eval().encode({"a": x})
    torch.testing.assert_close(vae.decode(mu, "a"), vae.decode(mu, "b"))
    # Copies, not ties: the two private layers are separate parameters that can diverge.
    assert vae.private_encoder_a.state_dict().keys() == vae.private_encoder_b.state_dict().keys()
    assert not {id(p) for p in vae.private_decoder_a.parameters()} & {
        id(p) for p in vae.private_decoder_b.parameters()
    }
    plain = CoupledDigitVAE(1, 1, 8).eval()
    assert not torch.allclose(plain.decode(mu, "a"), plain.decode(mu, "b"), rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="same image channels"):
        CoupledDigitVAE(3, 1, 8, mirror_init=True)


def test_spatial_latent_is_local_and_keeps_the_streams() -> None:
    torch.manual_seed(0)
    vae = CoupledDigitVAE(1, 1, 8, mirror_init=True, latent_size=8).eval()
    assert vae.latent_dim == 8 * 8 * 8 * 8 and vae.latent_shape == (64, 8, 8)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    mu, logvar = vae.encode({"a": x})
    assert mu.shape == logvar.shape == (3, vae.latent_dim)
    # A change in the top-left corner moves the code of the top-left places only: each of the
    # 8x8 places describes its own part of the digit (a 1x1 code changes as a whole).
    nudged = x.clone()
    nudged[:, :, :4, :4] = 1.0
    change = (vae.encode({"a": nudged})[0] - mu).abs().view(3, *vae.latent_shape)
    assert change[..., 0, 0].max() > 0 and change[..., 4:, 4:].max() == 0
    vector = CoupledDigitVAE(1, 1, 8).eval()
    assert (vector.encode({"a": nudged})[0] != vector.encode({"a": x})[0]).all()
    out = vae.train()(x, x[:2])
    assert {k: tuple(out[k].shape) for k in ("aa", "ab", "ba", "bb")} == {
        "aa": (3, 1, 32, 32), "ab": (3, 1, 32, 32), "ba": (2, 1, 32, 32), "bb": (2, 1, 32, 32)
    }  # fmt: skip
    torch.testing.assert_close(vae.translate(x, "a2b"), vae.translate(x, "b2a"))  # mirrored
    with pytest.raises(ValueError, match="latent_size must be 1"):
        CoupledDigitVAE(1, 1, 8, latent_size=4)
    with pytest.raises(ValueError, match="latent_size=4"):
        adapt_preset("tiny", latent_size=4)


def test_translation_is_deterministic_and_keeps_mode() -> None:
    vae = CoupledDigitVAE(1, 1, 8).train()
    x = torch.randn(4, 1, 32, 32)
    torch.testing.assert_close(vae.translate(x), vae.translate(x))
    assert vae.training


def _centred_square(half: int) -> torch.Tensor:
    """(1, 1, 32, 32): -1 background, a bright square of side 2 * half in the middle."""
    x = -torch.ones(1, 1, 32, 32)
    x[..., 16 - half : 16 + half, 16 - half : 16 + half] = 1.0
    return x


def test_domain_frame_resamples_and_inverts() -> None:
    frame = DomainFrame()
    x = torch.randn(2, 1, 32, 32)
    # At the start a frame changes nothing, in either direction.
    torch.testing.assert_close(frame.from_canonical(x), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(frame.to_canonical(x), x, atol=1e-5, rtol=0)
    with torch.no_grad():
        frame.delta.copy_(torch.tensor([[-0.3, 0.0, 0.05], [0.0, -0.3, -0.1]]))
    full = torch.cat([frame.matrix(), torch.tensor([[0.0, 0.0, 1.0]])])
    inverse = torch.cat([frame.inverse(), torch.tensor([[0.0, 0.0, 1.0]])])
    torch.testing.assert_close(full @ inverse, torch.eye(3), atol=1e-6, rtol=0)
    # Sampling the canonical image at 0.7x the coordinates enlarges a digit by 1 / 0.7 ...
    small = _centred_square(6)
    bright = (frame.from_canonical(small) > 0).sum().item()
    assert 1.7 < bright / (small > 0).sum().item() < 2.4  # (1 / 0.7)^2 = 2.04
    # ... and to_canonical undoes it where nothing was cut off (up to bilinear blur at edges).
    smooth = torch.exp(-(coordinate_channels().square().sum(0)) / 0.1)[None, None]
    back = frame.to_canonical(frame.from_canonical(smooth))
    inner = (..., slice(6, 26), slice(6, 26))  # the border rows are cut off by the shift
    torch.testing.assert_close(back[inner], smooth[inner], atol=0.03, rtol=0)
    # The parameters get gradients through the resampling (what the GAN loss moves).
    frame.from_canonical(torch.randn(2, 1, 32, 32)).square().sum().backward()
    assert frame.delta.grad is not None and frame.delta.grad.abs().sum() > 0


def test_vae_frames_are_optional_and_keep_mirroring() -> None:
    plain = CoupledDigitVAE(1, 1, 8)
    assert plain.frame_parameters() == []
    assert not any("frames" in key for key in plain.state_dict())
    torch.manual_seed(0)
    framed = CoupledDigitVAE(1, 1, 8, mirror_init=True, frames=True)
    assert {k for k in framed.state_dict() if "frames" in k} == {"frames.a.delta", "frames.b.delta"}
    x = torch.randn(4, 1, 32, 32)
    torch.testing.assert_close(framed.translate(x, "a2b"), framed.translate(x, "b2a"))
    # With a moved frame, decoding as b is b's private decoder's output resampled by b's frame.
    with torch.no_grad():
        framed.frames["b"].delta.copy_(torch.tensor([[-0.3, 0.0, 0.0], [0.0, -0.3, 0.0]]))
    framed.eval()
    mu, _ = framed.encode({"a": x})
    canonical = framed.private_decoder("b")(framed.shared_decoder(mu[:, :, None, None]))
    torch.testing.assert_close(framed.decode(mu, "b"), framed.frames["b"].from_canonical(canonical))


# --------------------------------------------------------------------------------------------
# Loss terms against hand computations.


def test_feature_matching_by_hand() -> None:
    f_ab = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    f_aa = torch.tensor([[0.0, 2.0, 2.0], [1.0, 0.0, 1.0]])
    # image 1: 1 + 0 + 4 = 5; image 2: 1 + 0 + 4 = 5; batch mean 5
    assert feature_matching(f_ab, f_aa).item() == pytest.approx(5.0)
    # Feature maps are flattened per image: (N, C, H, W) gives the same as (N, C*H*W).
    assert feature_matching(f_ab.view(2, 3, 1, 1), f_aa.view(2, 3, 1, 1)).item() == 5.0
    assert feature_matching(f_ab, f_ab).item() == 0.0


def test_summed_squared_error_by_hand() -> None:
    x = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]).view(2, 1, 2, 2)
    assert summed_squared_error(x, target).item() == pytest.approx((2.0 + 4.0) / 2)


def test_batches_are_a_pure_function_of_the_step() -> None:
    epoch = torch.cat([batch_rows(10, 3, 7, s) for s in range(3)])
    assert len(set(epoch.tolist())) == 9  # one epoch: 3 full batches, no repeats
    assert torch.equal(batch_rows(10, 3, 7, 4), batch_rows(10, 3, 7, 4))
    assert not torch.equal(batch_rows(10, 3, 7, 0), batch_rows(10, 3, 8, 0))
    with pytest.raises(ValueError, match="exceeds"):
        batch_rows(2, 3, 0, 0)


# --------------------------------------------------------------------------------------------
# The trainer.


def _tiny(**overrides) -> object:
    return adapt_preset("tiny", **{"eval_every": 10, "log_every": 5, **overrides})


def test_alternating_steps_leave_the_other_player_alone(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(), split)
    x_a, y_a, x_b = trainer.batch(0)
    before_gen = _params(trainer.gen)
    before_dis = _params(trainer.dis)
    trainer.dis_step(x_a, y_a, x_b)
    assert all(torch.equal(p, q) for p, q in zip(before_gen, _params(trainer.gen), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(before_dis, _params(trainer.dis), strict=True))
    before_dis = _params(trainer.dis)
    trainer.gen_step(x_a, x_b)
    assert all(torch.equal(p, q) for p, q in zip(before_dis, _params(trainer.dis), strict=True))


def test_no_target_label_reaches_a_loss(split: AdaptationSplit) -> None:
    """Training with the target's evaluation labels scrambled gives bit-identical weights.

    ``target_train`` has no labels at all (an ``Images``), so the only target labels that exist
    are ``target_eval``'s; if any of them reached a loss, scrambling them would change training.
    """
    assert not hasattr(split.target_train, "labels")
    ev = split.target_eval
    scrambled = LabeledImages(ev.images, ev.origin, ev.indices, (ev.labels + 1) % 10)
    other = dataclasses.replace(split, target_eval=scrambled)
    weights = []
    for s in (split, other):
        trainer = AdaptTrainer(_tiny(cls_translated=1.0), s)
        for _ in range(3):
            trainer.train_step()
        weights.append(_params(trainer.gen, trainer.dis))
    assert all(torch.equal(p, q) for p, q in zip(*weights, strict=True))


def test_augmented_batches_are_seeded_warps_of_the_same_rows(split: AdaptationSplit) -> None:
    plain = AdaptTrainer(_tiny(augment=False), split)
    warped = AdaptTrainer(_tiny(augment=True), split)
    (x_a, y_a, x_b), (w_a, w_y, w_b) = plain.batch(3), warped.batch(3)
    assert torch.equal(y_a, w_y)  # the same rows, so the same labels
    assert not torch.equal(x_a, w_a) and not torch.equal(x_b, w_b)
    assert w_a.min() >= -1 and w_a.max() <= 1
    # Same step, same warps: a resumed run redraws them.
    assert all(torch.equal(p, q) for p, q in zip(warped.batch(3), (w_a, w_y, w_b), strict=True))


def test_config_split_matches_the_config(offline_data: Path, split: AdaptationSplit) -> None:
    from unitlab.data.digit_geometry import normalise_size

    plain = config_split(_tiny(normalise=False), offline_data)
    assert torch.equal(plain.target_eval.indices, split.target_eval.indices)
    expected = normalise_size(plain.target_eval.images[:50])
    assert torch.allclose(split.target_eval.images[:50], expected, atol=1e-6)
    assert "size-normalised" in split.protocol and "size-normalised" not in plain.protocol
    assert split.normalised and not plain.normalised
    # A trainer refuses data prepared otherwise than its config says.
    with pytest.raises(ValueError, match="normalise=False but the split is size-normalised"):
        AdaptTrainer(_tiny(normalise=False), split)
    with pytest.raises(ValueError, match="normalise=True but the split is not size-normalised"):
        AdaptTrainer(_tiny(), plain)


def test_source_grey_trains_one_channel_and_is_checked(offline_data: Path) -> None:
    """A printed -> MNIST trainer with ``source_grey`` builds one-channel models and steps; a
    trainer refuses a split whose source was prepared otherwise than its config says."""
    from unitlab.data.adaptation import adaptation_split

    def printed(grey: bool) -> AdaptationSplit:
        return adaptation_split(
            "printed", "mnist", offline_data, printed_n=200, normalise=True, source_grey=grey
        )

    cfg = _tiny(source="printed", source_grey=True, batch_size=8)
    trainer = AdaptTrainer(cfg, printed(True))
    x_a = trainer.batch(0)[0]
    assert x_a.shape == (8, 1, 32, 32)
    assert trainer.dis(x_a, "a")[1].shape == (8, 10)
    row = trainer.train_step()
    assert all(math.isfinite(v) for v in row.values())
    with pytest.raises(ValueError, match="source_grey=True but the split's printed source is"):
        AdaptTrainer(cfg, printed(False))
    with pytest.raises(ValueError, match="source_grey=False but the split's printed source is"):
        AdaptTrainer(_tiny(source="printed", batch_size=8), printed(True))


def test_baseline_cache_key_names_a_greyed_source_only() -> None:
    """A source-only baseline of a greyed colour source is another baseline (its cache key
    says so); ``source_grey`` on a grey source changes no pixel, so it keeps the key."""
    from unitlab.adapt.report import _baseline_key

    printed = _baseline_key(_tiny(source="printed", source_grey=True))
    assert printed["source_grey"] is True
    assert "source_grey" not in _baseline_key(_tiny(source="printed"))
    assert _baseline_key(_tiny(source_grey=True)) == _baseline_key(_tiny())


def test_warm_start_trains_the_classifier_path_only(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(warm_start=20), split)
    gen, real_fake = _params(trainer.gen), _params(trainer.dis.real_fake)
    classifier = _params(trainer.dis.classifier)
    trainer.warm_start()
    assert all(torch.equal(p, q) for p, q in zip(gen, _params(trainer.gen), strict=True))
    assert all(
        torch.equal(p, q) for p, q in zip(real_fake, _params(trainer.dis.real_fake), strict=True)
    )
    assert not torch.equal(classifier[0], trainer.dis.classifier.weight)
    assert trainer.step == 0
    trainer.train_step()
    with pytest.raises(RuntimeError, match="fresh run"):
        trainer.warm_start()


def test_non_finite_loss_stops_with_a_message(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(recon=float("nan")), split)
    with pytest.raises(NonFiniteLossError, match="generator loss is nan"):
        trainer.train_step()


def test_classifier_weight_average(split: AdaptationSplit, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cls_ema=1.0"):
        _tiny(cls_ema=1.0).validate()
    trainer = AdaptTrainer(_tiny(cls_ema=0.75), split)
    assert trainer.classifier is trainer.dis and trainer.dis_ema is None
    trainer.train_step()  # the average starts as a copy of the first step's weights
    first = {k: v.clone() for k, v in trainer.dis.state_dict().items()}
    torch.testing.assert_close(trainer.dis_ema.state_dict(), first)
    assert trainer.classifier is trainer.dis_ema
    assert not any(p.requires_grad for p in trainer.dis_ema.parameters())
    trainer.train_step()
    for name, average in trainer.dis_ema.named_parameters():
        expected = 0.75 * first[name] + 0.25 * dict(trainer.dis.named_parameters())[name]
        torch.testing.assert_close(average, expected, msg=name)
    scores = trainer.evaluate()
    assert {"target_accuracy", "target_accuracy_last"} <= scores.keys()
    # A checkpoint carries the average; a trainer restored from it scores the same.
    restored = AdaptTrainer(_tiny(cls_ema=0.75), split)
    restored.load_state_dict(trainer.state_dict())
    torch.testing.assert_close(restored.dis_ema.state_dict(), trainer.dis_ema.state_dict())
    assert restored.evaluate() == scores
    # Off by default: no average, no extra key, the checkpoint's layout as before.
    plain = AdaptTrainer(_tiny(), split)
    plain.train_step()
    assert plain.dis_ema is None and "dis_ema" not in plain.state_dict()
    assert "target_accuracy_last" not in plain.evaluate()


def test_resume_continues_exactly(split: AdaptationSplit, tmp_path: Path) -> None:
    # With augmentation on: the random warps, too, must continue exactly.
    def run(steps: int, folder: str, resume: bool = False) -> dict:
        cfg = _tiny(steps=steps, augment=True)
        return run_adaptation(cfg, split, tmp_path / folder, resume, progress=False)

    straight = run(6, "straight")
    run(3, "chunked")
    resumed = run(6, "chunked", resume=True)
    for key in ("d_gan", "g_gan", "recon", "cls", "target_accuracy"):
        assert resumed[key] == straight[key], key
    rows = [json.loads(line) for line in (tmp_path / "chunked" / "log.jsonl").open()]
    assert [r["step"] for r in rows] == [3, 5, 6]
    with pytest.raises(ValueError, match="another config.*gen_width"):
        run_adaptation(_tiny(steps=6, gen_width=4, augment=True), split, tmp_path / "chunked", True)
    # A checkpoint from before a config field existed loads as that field's default...
    old = AdaptTrainer(_tiny(), split).state_dict()
    del old["config"]["mirror_init"]
    AdaptTrainer(_tiny(), split).load_state_dict(old)
    # ...and is refused where the field is set otherwise.
    with pytest.raises(ValueError, match="mirror_init"):
        AdaptTrainer(_tiny(mirror_init=True), split).load_state_dict(old)


def test_tiny_adaptation_beats_chance(split: AdaptationSplit, tmp_path: Path) -> None:
    row = run_adaptation(_tiny(), split, tmp_path, progress=False)
    # Measured (seed 0, one thread, size-normalised, warped batches, 200 warm-start steps):
    # target 0.45 (source-only, same 400 classifier steps: 0.48), source 0.63; chance is 0.1.
    # The tiny networks show that the loop learns, not that adaptation helps (docs/results.md).
    assert row["step"] == 200
    assert row["source_accuracy"] > 0.5
    assert row["target_accuracy"] > 0.2


def test_translation_accuracy_reads_translations_through_the_target_path(
    split: AdaptationSplit,
) -> None:
    # Mirrored generator and shared first D layer: before training, a translation is the
    # reconstruction and b's classifier path is a's, so the two accuracies must agree.
    trainer = AdaptTrainer(_tiny(mirror_init=True), split)
    row = trainer.evaluate()
    x, y = split.source_train.images[:2000], split.source_train.labels[:2000]
    with torch.no_grad():
        mu, _ = trainer.gen.eval().encode({"a": x})
        recon = trainer.gen.decode(mu, "a")
    assert row["translation_accuracy"] == accuracy(trainer.dis, recon, y, "a")
    assert 0.0 <= row["translation_accuracy"] <= 1.0


def test_mirrored_discriminator_layer_starts_as_the_warmed_source_path(
    split: AdaptationSplit,
) -> None:
    mirrored = _tiny(dis_share_first=False, dis_mirror_first=True, warm_start=5)
    trainer = AdaptTrainer(mirrored, split)
    dis = trainer.dis
    assert dis.private_a is not dis.private_b  # two layers, free to move apart
    before = _params(dis.private_a)
    trainer.warm_start()
    moved = _params(dis.private_a)
    assert any(not torch.equal(p, q) for p, q in zip(before, moved, strict=True))
    # After the warm start the target's layer is a copy of the trained source layer, so the
    # target path reads any image exactly as the source classifier does.
    for p, q in zip(moved, _params(dis.private_b), strict=True):
        assert torch.equal(p, q)
    x = split.source_train.images[:64]
    assert accuracy(dis, x, split.source_train.labels[:64], "b") == accuracy(
        dis, x, split.source_train.labels[:64], "a"
    )
    # An adaptation step moves them apart: the real/fake game sees each domain on its own path.
    trainer.train_step()
    assert any(
        not torch.equal(p, q)
        for p, q in zip(_params(dis.private_a), _params(dis.private_b), strict=True)
    )
    with pytest.raises(ValueError, match="choose one"):
        _tiny(dis_mirror_first=True)  # the tiny preset ties the first layer
    with pytest.raises(ValueError, match="tied"):
        AdaptTrainer(_tiny(), split).dis.mirror_private_layer()


def test_feature_matching_off_costs_nothing(
    split: AdaptationSplit, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = AdaptTrainer(_tiny(feature=0.0), split)

    def no_features(*args: object) -> None:
        raise AssertionError("feature passes run with feature=0")

    monkeypatch.setattr(trainer.dis, "features", no_features)
    assert trainer.dis_step(*trainer.batch(0))["feature"] == 0.0


def test_style_critics_judge_translations_only(split: AdaptationSplit) -> None:
    critic = StyleCritic(1, 4)
    assert critic(torch.zeros(3, 1, 32, 32), "b").shape == (3,)
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        critic(torch.zeros(3, 3, 32, 32), "a")
    plain = AdaptTrainer(_tiny(), split)
    assert plain.critic is None  # off by default: old checkpoints load
    # The critics are seeded on their own: adding them changes no other weight or draw.
    rng = torch.get_rng_state()
    with_critic = AdaptTrainer(_tiny(style=1.0), split)
    assert torch.equal(torch.get_rng_state(), rng)
    pairs = zip(
        _params(plain.gen, plain.dis), _params(with_critic.gen, with_critic.dis), strict=True
    )
    assert all(torch.equal(p, q) for p, q in pairs)
    trainer = AdaptTrainer(_tiny(style=1.0, critic_width=4), split)
    batch = trainer.batch(0)
    before = _params(trainer.critic)
    row = trainer.dis_step(*batch)
    assert row["critic"] > 0
    assert all(not torch.equal(p, q) for p, q in zip(before, _params(trainer.critic), strict=True))
    # The generator step reads the critics but leaves them alone.
    moved = _params(trainer.critic)
    assert trainer.gen_step(batch[0], batch[2])["style"] > 0
    assert all(torch.equal(p, q) for p, q in zip(moved, _params(trainer.critic), strict=True))
    # Critics and their optimiser travel with the checkpoint.
    restored = AdaptTrainer(_tiny(style=1.0, critic_width=4), split)
    restored.load_state_dict(trainer.state_dict())
    for p, q in zip(_params(trainer.critic), _params(restored.critic), strict=True):
        assert torch.equal(p, q)


def test_generator_warm_start_trains_the_vae_alone(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(warm_start=0, gen_warm_start=30, cycle=0.01), split)
    x_a, _, x_b = trainer.batch(0)
    with torch.no_grad():
        before, _ = trainer._generator_loss(x_a, x_b, adversarial=False)
    dis_before, gen_before = _params(trainer.dis), _params(trainer.gen)
    trainer.warm_start()
    with torch.no_grad():
        after, row = trainer._generator_loss(x_a, x_b, adversarial=False)
    assert after < 0.7 * before  # the VAE learned: reconstruction + cycle + KL went down
    assert "g_gan" not in row and "cycle" in row
    assert all(torch.equal(p, q) for p, q in zip(dis_before, _params(trainer.dis), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(gen_before, _params(trainer.gen), strict=True))
    assert trainer.step == 0  # adaptation steps still start at 1
    with pytest.raises(ValueError, match="gen_warm_start"):
        _tiny(gen_warm_start=-1)


def test_semantic_term_reads_translations_with_a_frozen_source_classifier(
    split: AdaptationSplit,
) -> None:
    with pytest.raises(ValueError, match="warm_start > 0"):
        _tiny(warm_start=0, semantic=1.0).validate()
    # Only the semantic term: no reconstruction, KL, GAN or cycle.
    trainer = AdaptTrainer(_tiny(warm_start=5, semantic=1.0, recon=0.0, kl=0.0), split)
    x_a, y_a, x_b = trainer.batch(0)
    with pytest.raises(RuntimeError, match="warm_start"):
        trainer.gen_step(x_a, x_b, y_a)
    trainer.warm_start()
    reader = trainer.reader
    assert reader is not trainer.dis and not reader.training
    assert not any(p.requires_grad for p in reader.parameters())
    torch.testing.assert_close(reader.state_dict(), trainer.dis.state_dict())
    # The term is the reader's cross-entropy on x_ab: its gradient reaches b's private decoder
    # (x_ab's last layers) and never a's.
    total, row = trainer._generator_loss(x_a, x_b, adversarial=False, y_a=y_a)
    assert total.item() == pytest.approx(row["semantic"]) and row["semantic"] > 0
    total.backward()
    grads = {d: [p.grad for p in trainer.gen.private_decoder(d).parameters()] for d in "ab"}
    assert all(g is None or not g.any() for g in grads["a"])
    assert any(g is not None and g.any() for g in grads["b"])
    trainer.gen.zero_grad(set_to_none=True)
    # Training moves the discriminator, never the frozen copy; a checkpoint carries the copy.
    frozen = _params(reader)
    for _ in range(2):
        assert trainer.train_step()["semantic"] > 0
    assert all(torch.equal(p, q) for p, q in zip(frozen, _params(reader), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(frozen, _params(trainer.dis), strict=True))
    restored = AdaptTrainer(_tiny(warm_start=5, semantic=1.0, recon=0.0, kl=0.0), split)
    restored.load_state_dict(trainer.state_dict())
    torch.testing.assert_close(restored.reader.state_dict(), reader.state_dict())
    assert not restored.reader.training
    # Off by default: no reader, no term, the checkpoint's layout as before.
    plain = AdaptTrainer(_tiny(), split)
    assert "semantic" not in plain.train_step() and "reader" not in plain.state_dict()


def test_a_spatial_latent_trains_and_resumes(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(latent_size=8), split)
    assert trainer.gen.latent_shape == (64, 8, 8)
    row = trainer.train_step()
    assert all(math.isfinite(v) for v in row.values())
    restored = AdaptTrainer(_tiny(latent_size=8), split)
    restored.load_state_dict(trainer.state_dict())
    with pytest.raises(ValueError, match="latent_size"):  # a vector-code model is refused
        AdaptTrainer(_tiny(), split).load_state_dict(trainer.state_dict())


def test_frames_train_at_their_own_rate_after_the_warm_start(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(warm_start=0, gen_warm_start=5, frame_lr=0.01), split)
    groups = trainer.gen_opt.param_groups
    assert [g["lr"] for g in groups] == [trainer.cfg.lr, 0.01]
    assert groups[1]["params"] == trainer.gen.frame_parameters()
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(trainer.gen.parameters()))
    trainer.warm_start()  # the VAE alone: nothing there should move a frame
    assert all(not p.any() for p in trainer.gen.frame_parameters())
    trainer.train_step()  # the adversarial terms do
    assert all(p.abs().max() > 0.001 for p in trainer.gen.frame_parameters())
    with pytest.raises(ValueError, match="frame_lr"):
        _tiny(frame_lr=-1.0)
    plain = AdaptTrainer(_tiny(), split)
    assert plain.gen.frames is None and len(plain.gen_opt.param_groups) == 1


# --------------------------------------------------------------------------------------------
# The command.


def test_cli_adapt_end_to_end(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["adapt", "--source", "usps", "--target", "mnist", "--preset", "tiny"]
    args += ["--data-root", str(shared_data), "--out", str(tmp_path), "--no-progress"]
    args += ["--device", "cpu"]
    assert cli.main([*args, "--steps", "4", "--set", "eval_every=2"]) == 0
    out = capsys.readouterr().out
    assert "step 2: target accuracy" in out and "| USPS -> MNIST |" in out
    assert "translated source digits" in out
    run = tmp_path / "adapt-usps-mnist"
    (result,) = load_results([run])
    assert result["steps"] == 4 and result["source_only"] is not None
    assert "| USPS -> MNIST |" in format_table([result])
    # An existing run is never overwritten; --resume continues it with a larger budget.
    assert cli.main([*args, "--steps", "4"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli.main([*args, "--steps", "6", "--resume", "--no-baseline"]) == 0
    assert load_results([run])[0]["steps"] == 6
    # The oracle's reading is in the result; `report --oracle` gives it back to a run without it.
    (result,) = load_results([run])
    assert 0 <= result["translation_oracle"] <= 1 and 0 <= result["source_oracle"] <= 1
    stripped = {k: v for k, v in result.items() if k not in ("translation_oracle", "source_oracle")}
    (run / "result.json").write_text(json.dumps(stripped))
    assert report_main([str(run), "--oracle", "--data-root", str(shared_data)]) == 0
    (again,) = load_results([run])
    assert again["translation_oracle"] == result["translation_oracle"]  # seeded: the same reader
    assert again["source_oracle"] == result["source_oracle"]
    # Unknown fields and presets are refused by name.
    assert cli.main([*args, "--name", "x", "--set", "colour=1"]) == 2
    assert "unknown config field 'colour'" in capsys.readouterr().err
    assert cli.main([*args[:-7], "--preset", "huge", "--name", "y"]) == 2
    assert "unknown adaptation preset 'huge'" in capsys.readouterr().err
    # A bad device is refused before any training, naming the option.
    assert cli.main([*args, "--name", "z", "--device", "tpu9"]) == 2
    assert "--device 'tpu9' is not a device name" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main([*args, "--name", "z", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_cycle_stream_and_shared_first_layer(split: AdaptationSplit) -> None:
    trainer = AdaptTrainer(_tiny(cycle=0.01), split)
    dis = trainer.dis
    assert dis.private("a") is dis.private("b")  # the tiny/cpu presets tie D's first layer
    ids = [id(p) for p in dis.parameters()]
    assert len(ids) == len(set(ids))
    row = trainer.gen_step(*trainer.batch(0)[::2])
    assert row["cycle"] > 0 and "cycle" not in AdaptTrainer(_tiny(), split).gen_step(
        *trainer.batch(0)[::2]
    )
    paper = AdaptTrainer(adapt_preset("paper", gen_width=8, dis_width=8, normalise=True), split)
    assert paper.dis.private("a") is not paper.dis.private("b")  # the authors' layout


def test_report_names_a_missing_result(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="result.json"):
        load_results([tmp_path])


def _fake_run(root: Path, name: str, seed: int, normalised: bool, unit: float, only: float):
    run = root / name
    run.mkdir()
    result = {"source": "usps", "target": "mnist", "preset": "cpu", "steps": 10,
              "minutes": 1.0, "target_accuracy": unit, "source_accuracy": 0.99,
              "source_only": only, "paper": 0.9358, "eval_images": 2000,
              "machine": "a test"}  # fmt: skip
    if seed != 0:  # the others as written now; seed 0 as written before the fields existed
        result |= {"seed": seed, "normalised": normalised, "translation_accuracy": 0.5 + seed}
    else:
        config = adapt_preset("cpu", seed=0, normalise=normalised).to_dict()
        (run / "config.json").write_text(json.dumps(config))
        rows = [{"step": 5, "translation_accuracy": 0.1}, {"step": 10, "translation_accuracy": 0.5}]
        (run / "log.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    (run / "result.json").write_text(json.dumps(result))
    return run


def test_report_per_seed_records_and_the_mean_over_seeds(tmp_path: Path, capsys) -> None:
    runs = [
        _fake_run(tmp_path, "a", 0, True, 0.95, 0.93),
        _fake_run(tmp_path, "b", 2, True, 0.97, 0.94),
        _fake_run(tmp_path, "c", 1, True, 0.96, 0.93),
        _fake_run(tmp_path, "d", 0, False, 0.80, 0.70),
    ]
    out = tmp_path / "docs" / "adaptation_results.json"
    assert report_main([*map(str, runs), "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["seed"] for r in records["normalised"]["usps-mnist"]] == [0, 1, 2]
    assert records["normalised"]["usps-mnist"][0] == {
        "seed": 0, "preset": "cpu", "settings": "", "unitlab": 0.95, "source_only": 0.93,
        "translation": 0.5, "translation_oracle": None, "source_oracle": None,
    }  # fmt: skip
    assert records["raw"]["usps-mnist"] == [
        {"seed": 0, "preset": "cpu", "settings": "", "unitlab": 0.8, "source_only": 0.7,
         "translation": 0.5, "translation_oracle": None, "source_oracle": None}
    ]  # fmt: skip
    table = capsys.readouterr().out
    # mean 0.96, sd 0.01; gains 0.02, 0.03, 0.03: mean 0.0267, se 0.0033 -> 8.0 SE
    row = next(line for line in table.splitlines() if line.startswith("| normalised |"))
    assert "| cpu | 3 | 0.9333 ± 0.0058 | 0.9600 ± 0.0100 | +0.0267 (+8.0 SE) |" in row
    with pytest.raises(ValueError, match="two normalised usps-mnist cpu results for seed 0"):
        report_main([str(runs[0]), str(runs[0])])
    # Another preset's runs of the same direction and seeds are summarised in their own row.
    other = _fake_run(tmp_path, "e", 1, True, 0.99, 0.93)
    result = json.loads((other / "result.json").read_text()) | {"preset": "cpu-translate"}
    (other / "result.json").write_text(json.dumps(result))
    assert report_main([*map(str, runs[:3]), str(other)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "| normalised |" in line]
    assert len(rows) == 2 and "| cpu-translate | 1 | 0.9300 | 0.9900 | +0.0600 |" in rows[1]
    # A run that departed from its preset is its own recipe, named by its departures.
    config = adapt_preset("cpu-translate", seed=1, latent_size=8).to_dict()
    (other / "config.json").write_text(json.dumps(config))
    result.pop("preset")
    (other / "result.json").write_text(json.dumps(result | {"preset": "cpu-translate"}))
    assert report_main([*map(str, runs[:3]), str(other)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "| normalised |" in line]
    assert "| cpu-translate (latent_size=8) | 1 | 0.9300 | 0.9900 |" in rows[1]


def test_report_merge_keeps_records_of_runs_not_passed(tmp_path: Path, capsys) -> None:
    """``--merge`` adds the passed runs to the JSON file's records: a passed run replaces the
    record of its own protocol, direction, preset and seed, every other record stays, and the
    summary covers them all (earlier sessions' run folders need not exist any more)."""
    out = tmp_path / "records.json"
    first = [
        _fake_run(tmp_path, "a", 1, True, 0.95, 0.93),
        _fake_run(tmp_path, "b", 2, True, 0.97, 0.94),
    ]
    assert report_main([*map(str, first), "--json", str(out)]) == 0
    rerun = _fake_run(tmp_path, "c", 2, True, 0.99, 0.94)  # seed 2 again
    other = _fake_run(tmp_path, "d", 1, False, 0.80, 0.70)
    for run in first:
        shutil.rmtree(run)
    capsys.readouterr()
    assert report_main([str(rerun), str(other), "--json", str(out), "--merge"]) == 0
    records = json.loads(out.read_text())
    assert [(r["seed"], r["unitlab"]) for r in records["normalised"]["usps-mnist"]] == [
        (1, 0.95), (2, 0.99)
    ]  # fmt: skip
    assert [r["unitlab"] for r in records["raw"]["usps-mnist"]] == [0.8]
    summary = capsys.readouterr().out
    assert "| normalised | USPS -> MNIST | cpu | 2 |" in summary and "| raw |" in summary
    # The file alone is summarised too; --merge without a file to keep is refused.
    assert report_main(["--json", str(out), "--merge"]) == 0
    assert "| normalised | USPS -> MNIST | cpu | 2 |" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="nothing to merge into"):
        report_main([str(other), "--json", str(tmp_path / "absent.json"), "--merge"])
    with pytest.raises(SystemExit):
        report_main([str(other), "--merge"])


def test_the_oracle_reads_target_like_translations_and_not_noise(split: AdaptationSplit) -> None:
    """The oracle is trained on the target's labels: size-normalised USPS digits passed through
    unchanged (a "translation" that keeps the digit and looks much like MNIST) read far above
    chance, noise of the same shape near chance; it reads held-out target digits well."""
    from unitlab.adapt.report import translation_oracle

    cfg = _tiny(warm_start=300, steps=0)
    kept = translation_oracle(cfg, split, lambda x: x)
    noise = translation_oracle(cfg, split, lambda x: torch.rand_like(x) * 2 - 1)
    assert kept["oracle_accuracy"] > 0.5  # 300 steps of a tiny network on 1,000 digits
    assert kept["oracle_accuracy"] == noise["oracle_accuracy"]  # seeded: the same oracle
    assert kept["translation_oracle"] > 0.5 > 0.2 > noise["translation_oracle"]
    assert kept["source_oracle"] == kept["translation_oracle"]  # nothing was translated


@pytest.mark.parametrize("preset", ["cpu-translate", "cpu-frames"])
def test_every_preset_validates_and_the_translate_presets_run_their_recipe(
    split: AdaptationSplit, preset: str
) -> None:
    """``cpu-translate`` switches the translation recipe's parts on together (``cpu-frames``
    adds the domain frames); shrunk to tiny widths it runs both warm starts and an adaptation
    step that uses each of them."""
    from unitlab.adapt import ADAPT_PRESETS

    for name in ADAPT_PRESETS:
        adapt_preset(name)  # raises on a contradictory preset
    small = dict(gen_width=8, dis_width=8, critic_width=8, batch_size=16)
    cfg = adapt_preset(preset, warm_start=3, gen_warm_start=3, **small)
    trainer = AdaptTrainer(cfg, split)
    assert (trainer.gen.frames is not None) == (preset == "cpu-frames")
    first_a, first_b = trainer.dis.private("a"), trainer.dis.private("b")
    assert first_a is not first_b  # private first layers (mirrored), not tied
    trainer.warm_start()
    for p, q in zip(first_a.parameters(), first_b.parameters(), strict=True):
        assert torch.equal(p, q)  # the target's layer starts as the warmed source layer
    row = trainer.train_step()
    assert {"cycle", "cls_translated", "style", "critic"} <= set(row)
    assert all(torch.isfinite(torch.tensor(v)) for v in row.values())


def test_ship_writes_a_small_model_that_load_trainer_reads(
    split: AdaptationSplit, tmp_path: Path
) -> None:
    """``report --ship`` exports fp16 networks without optimiser state; loading them gives the
    run's translations and classifier (to fp16 precision), and the folder names the preset."""
    from unitlab.adapt.report import SHIPPED_MODEL, ship, write_result
    from unitlab.adapt.trainer import save_translations
    from unitlab.images import image_pixels

    cfg = _tiny(steps=2, style=1.0, dis_share_first=False, frame_lr=0.02, preset="cpu-frames")
    run = tmp_path / "run"
    final = run_adaptation(cfg, split, run, progress=False)
    result = write_result(run, cfg, split, final, None)
    (run / "source_only.json").write_text("{}")
    dest = ship(run, result, into=tmp_path / "shipped")
    assert dest.name == "usps-mnist-cpu-frames"
    picture = save_translations(run, tmp_path / "translations.png")  # $UNITLAB_DATA's digits
    assert image_pixels(picture) == (3 * 34 + 2) * (16 * 34 + 2)  # 3 rows of 16 digits
    model = dest / SHIPPED_MODEL
    assert model.stat().st_size < (run / "checkpoint.pt").stat().st_size / 3
    original, shipped = load_trainer(run, split), load_trainer(model, split)
    assert shipped.step == 2 and shipped.critic is not None
    for p, q in zip(original.gen.frame_parameters(), shipped.gen.frame_parameters(), strict=True):
        assert p.abs().max() > 0 and torch.allclose(p, q, atol=1e-3)  # moved, and kept
    x = split.target_eval.images[:8]
    with torch.no_grad():
        ref, got = original.gen.translate(x, "b2a"), shipped.gen.translate(x, "b2a")
    assert (ref - got).abs().max() < 0.05 and not torch.equal(ref, got)  # fp16, not a copy
    for a, b in zip(original.dis.parameters(), shipped.dis.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-2)


def test_preset_settings_name_what_departs_from_the_preset() -> None:
    from unitlab.adapt.report import preset_settings

    cfg = adapt_preset("cpu-frames", seed=3, normalise=False, latent_size=8, semantic=1.0)
    assert preset_settings(cfg.to_dict()) == "latent_size=8 semantic=1.0"  # not seed, protocol
    assert preset_settings(adapt_preset("cpu", eval_every=7).to_dict()) == ""
    old = {k: v for k, v in adapt_preset("cpu").to_dict().items() if k != "latent_size"}
    assert preset_settings(old) == ""  # a field the config predates counts as its default
