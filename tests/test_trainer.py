"""The alternating update, NaN handling, checkpoints and exact resume."""

import json

import pytest
import torch

from unitlab import losses
from unitlab.checkpoint import load_checkpoint, save_checkpoint
from unitlab.config import get_preset
from unitlab.trainer import NonFiniteLossError, Trainer


def random_domains(n=16, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, 3, size, size, generator=g) * 2 - 1,
        torch.rand(n, 3, size, size, generator=g) * 2 - 1,
    )


def snapshot(params):
    return [p.detach().clone() for p in params]


def changed(before, params):
    return [not torch.equal(a, b) for a, b in zip(before, params, strict=True)]


def test_dis_step_leaves_encoders_and_generators_untouched():
    t = Trainer(get_preset("tiny"))
    x_a, x_b = random_domains(4)
    gen_before = snapshot(t.model.generator_parameters())
    dis_before = snapshot(t.model.discriminator_parameters())
    t.dis_step(x_a, x_b)
    assert not any(changed(gen_before, t.model.generator_parameters()))
    assert all(changed(dis_before, t.model.discriminator_parameters()))
    assert all(p.grad is None for p in t.model.generator_parameters())


def test_gen_step_leaves_discriminators_untouched():
    t = Trainer(get_preset("tiny"))
    x_a, x_b = random_domains(4)
    gen_before = snapshot(t.model.generator_parameters())
    dis_before = snapshot(t.model.discriminator_parameters())
    out = t.gen_step(x_a, x_b)
    assert not any(changed(dis_before, t.model.discriminator_parameters()))
    assert all(p.grad is None for p in t.model.discriminator_parameters())
    assert sum(changed(gen_before, t.model.generator_parameters())) > 0.9 * len(gen_before)
    assert set(out) == {"gen", "gan", "kl", "recon", "cycle_kl", "cycle"}
    assert all(p.requires_grad for p in t.model.discriminator_parameters())


def test_total_loss_uses_the_paper_weights():
    t = Trainer(get_preset("tiny"))
    terms = {k: torch.tensor(1.0) for k in ("gan", "kl", "recon", "cycle_kl", "cycle")}
    assert t.total_loss(terms).item() == pytest.approx(10 + 0.1 + 100 + 0.1 + 100)


def test_no_cycle_ablation_drops_the_cycle_terms():
    cfg = get_preset("tiny")
    cfg.loss.use_cycle = False
    t = Trainer(cfg)
    s = t.streams(*random_domains(2))
    assert s.x_aba is None and set(s.terms) == {"gan", "kl", "recon"}


def test_same_seed_same_losses():
    x_a, x_b = random_domains()
    runs = [Trainer(get_preset("tiny")).fit(x_a, x_b, steps=3, progress=False) for _ in range(2)]
    assert runs[0] == runs[1]


def test_resume_gives_the_losses_of_an_uninterrupted_run(tmp_path):
    x_a, x_b = random_domains()
    full = Trainer(get_preset("tiny")).fit(x_a, x_b, steps=8, progress=False)
    first = Trainer(get_preset("tiny"))
    first.fit(x_a, x_b, steps=4, progress=False)
    first.save(tmp_path / "ckpt.pt")
    torch.manual_seed(1234)  # scramble the global RNG: the checkpoint must restore it
    resumed = Trainer(get_preset("tiny"))
    resumed.load(tmp_path / "ckpt.pt")
    assert resumed.step == 4
    rest = resumed.fit(x_a, x_b, steps=8, progress=False)
    assert rest == full[4:]


def test_fit_writes_the_run_folder(tmp_path):
    cfg = get_preset("tiny")
    x_a, x_b = random_domains()
    Trainer(cfg).fit(x_a, x_b, run_dir=tmp_path, steps=10, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == "tiny"
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert {"dis", "gen", "recon", "cycle"} <= set(rows[0])
    assert (tmp_path / "samples" / "step_000010.png").stat().st_size > 0
    assert load_checkpoint(tmp_path)["step"] == 10


def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path):
    cfg = get_preset("tiny")
    x_a, x_b = random_domains()
    t = Trainer(cfg)
    t.fit(x_a, x_b, run_dir=tmp_path, steps=10, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    x_nan = x_a.clone()
    x_nan[:] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 11"):
        t.fit(x_nan, x_b, run_dir=tmp_path, steps=20, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(tmp_path)["step"] == 10


def test_checkpoint_from_another_config_is_refused(tmp_path):
    t = Trainer(get_preset("tiny"))
    t.save(tmp_path / "c.pt")
    cfg = get_preset("tiny")
    cfg.model.base_channels = 16
    with pytest.raises(ValueError, match="model.base_channels: checkpoint has 8, config has 16"):
        Trainer(cfg).load(tmp_path / "c.pt")


def test_corrupt_or_missing_checkpoints_name_the_file(tmp_path):
    t = Trainer(get_preset("tiny"))
    path = t.save(tmp_path / "c.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read checkpoint .*c.pt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing")
    save_checkpoint({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a unitlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    t = Trainer(get_preset("tiny"))
    path = t.save(tmp_path / "c.pt")
    good = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        t.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_wrong_batch_shapes_are_named():
    t = Trainer(get_preset("tiny"))
    with pytest.raises(ValueError, match=r"domain a batch: expected .*got \(2, 1, 16, 16\)"):
        t.train_step(torch.zeros(2, 1, 16, 16), torch.zeros(2, 3, 16, 16))


def test_twenty_steps_on_the_map_world_lower_the_reconstruction_loss():
    from unitlab.data.sources import training_data

    cfg = get_preset("tiny")
    data_a, data_b = training_data(cfg)
    history = Trainer(cfg).fit(data_a, data_b, steps=20, progress=False)
    recon = [row["recon"] for row in history]
    first, last = sum(recon[:3]) / 3, sum(recon[-3:]) / 3
    assert last < 0.9 * first, recon  # measured: 1.01 -> 0.81 with the paper's lr


def test_discriminator_learning_rate_multiplier():
    cfg = get_preset("tiny")
    cfg.optim.lr, cfg.optim.dis_lr_mult = 2e-4, 4.0
    trainer = Trainer(cfg)
    assert [g["lr"] for g in trainer.opt_gen.param_groups] == [2e-4]
    assert [g["lr"] for g in trainer.opt_dis.param_groups] == [pytest.approx(8e-4)]


def test_run_time_keeps_counting_across_fit_calls(tmp_path):
    cfg = get_preset("tiny")
    data = torch.rand(8, 3, 16, 16) * 2 - 1
    trainer = Trainer(cfg)
    trainer.fit(data, data, run_dir=tmp_path, steps=2, progress=False)
    trainer.fit(data, data, run_dir=tmp_path, steps=4, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    seconds = [r["seconds"] for r in rows]
    assert seconds == sorted(seconds) and seconds[2] >= seconds[1]


def test_discriminator_step_on_given_translations_equals_recomputing_them():
    """train_step hands the generator step's translations to the discriminator step; given the
    same translations, the discriminator loss is the one it would compute itself."""
    x_a, x_b = random_domains(4)
    t = Trainer(get_preset("tiny"))
    torch.manual_seed(3)
    with torch.no_grad():
        x_ab = t.model.gen_b(t.model.enc_a(x_a))
        x_ba = t.model.gen_a(t.model.enc_b(x_b))
    given = t.dis_step(x_a, x_b, translations=(x_ab, x_ba))["dis"]
    u = Trainer(get_preset("tiny"))
    m, mode = u.model, u.cfg.loss.gan_mode

    expected = u.cfg.loss.gan * (
        losses.discriminator_loss(m.dis_a(x_a), m.dis_a(x_ba), mode)
        + losses.discriminator_loss(m.dis_b(x_b), m.dis_b(x_ab), mode)
    )
    assert given == pytest.approx(expected.item(), rel=1e-5)


def test_train_step_feeds_the_discriminator_this_steps_translations():
    t = Trainer(get_preset("tiny"))
    x_a, x_b = random_domains(4)
    out = t.train_step(x_a, x_b)
    assert {"dis", "gen", "gan"} <= set(out)
    x_ab, x_ba = t.last_translations
    assert x_ab.shape == x_a.shape and not x_ab.requires_grad


def test_evaluate_scores_the_held_out_pairs_without_touching_any_rng():
    from unitlab import metrics
    from unitlab.data.sources import evaluation_pairs
    from unitlab.evaluate import translate_uint8

    cfg = get_preset("tiny")
    trainer = Trainer(cfg)
    rng = torch.get_rng_state()
    score = trainer.evaluate()
    assert torch.equal(rng, torch.get_rng_state())
    sat, maps = evaluation_pairs(cfg)
    assert score == {"accuracy": metrics.pixel_accuracy(translate_uint8(trainer.model, sat), maps)}
    trainer.held_out = (sat[:2], maps[:2])  # any pairs, e.g. the ablation's
    assert trainer.evaluate()["accuracy"] == metrics.pixel_accuracy(
        translate_uint8(trainer.model, sat[:2]), maps[:2]
    )


def test_bf16_autocast_trains_with_fp32_weights_and_losses_close_to_fp32():
    """precision=bf16 runs the forward passes in bfloat16 (here under CPU autocast; CUDA in
    practice): the weights stay fp32, the losses are fp32 and near the fp32 run's."""
    rows = {}
    for precision in ("fp32", "bf16"):
        cfg = get_preset("tiny")
        cfg.precision = precision
        trainer = Trainer(cfg).attach(*random_domains())
        rows[precision] = [trainer.train_step() for _ in range(2)]
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    for fp32, bf16 in zip(rows["fp32"], rows["bf16"], strict=True):
        for name in ("gen", "recon", "kl", "dis"):
            assert bf16[name] == pytest.approx(fp32[name], rel=0.02)
        assert bf16["gen"] != fp32["gen"]  # bf16 really ran
