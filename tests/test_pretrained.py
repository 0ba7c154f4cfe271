import pytest
import torch

from unitlab import pretrained
from unitlab.config import get_preset
from unitlab.inference import load_model
from unitlab.trainer import Trainer


@pytest.fixture
def tiny_recipe(monkeypatch, tmp_path):
    """A 2-step 'tiny' recipe, a package folder without files and a private cache."""
    monkeypatch.setitem(pretrained.RECIPES, "tiny", pretrained.Recipe("tiny", steps=2))
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "package")
    monkeypatch.setenv("UNITLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_export_keeps_weights_in_half_precision_and_no_optimiser(tmp_path):
    trainer = Trainer(get_preset("tiny"))
    run = trainer.save(tmp_path / "run" / "checkpoint.pt")
    out = pretrained.export(run, tmp_path / "small.pt")
    state = torch.load(out, weights_only=True)
    assert "opt_gen" not in state and "rng_torch" not in state
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())
    model, cfg = load_model(out)
    assert cfg.preset == "tiny"
    for name, p in model.state_dict().items():
        torch.testing.assert_close(p, trainer.model.state_dict()[name].half().float())


def test_load_pretrained_trains_once_into_the_cache(tiny_recipe):
    with pytest.raises(FileNotFoundError, match="python -m unitlab.pretrained tiny"):
        pretrained.load_pretrained("tiny", train_if_missing=False)
    model, cfg = pretrained.load_pretrained("tiny")
    cached = tiny_recipe / "cache" / "pretrained" / "tiny.pt"
    assert cached.is_file() and cfg.steps == 2
    metrics = pretrained.pretrained_metrics("tiny")  # what `unitlab train` printed, kept
    assert set(metrics) >= {"unit", "constant", "identity"}
    mtime = cached.stat().st_mtime_ns
    again, _ = pretrained.load_pretrained("tiny")  # no second training run
    assert cached.stat().st_mtime_ns == mtime
    for (name, p), q in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def test_shipped_file_wins_over_the_cache(tiny_recipe):
    shipped = pretrained.main(
        ["tiny", "--out", str(tiny_recipe / "package"), "--runs", str(tiny_recipe / "runs")]
    )
    assert shipped == 0
    model, _ = pretrained.load_pretrained("tiny", train_if_missing=False)
    assert not (tiny_recipe / "cache" / "pretrained").exists()
    assert model.cfg.image_size == get_preset("tiny").model.image_size


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'"):
        pretrained.load_pretrained("nope")
