"""The supervised ceiling trains UNIT's own a->b path with pairs, and only that path."""

import pytest
import torch

from unitlab.ceiling import train_ceiling
from unitlab.cli import main
from unitlab.config import get_preset
from unitlab.models import UNIT


def test_ceiling_learns_and_touches_only_the_translation_path():
    cfg = get_preset("tiny")
    cfg.steps = 40
    torch.manual_seed(cfg.seed)
    untrained = UNIT(cfg.model).state_dict()
    model, curve = train_ceiling(cfg, eval_every=10)
    assert [p["step"] for p in curve] == [10, 20, 30, 40]
    assert all(0.0 <= p["accuracy"] <= 1.0 for p in curve)
    assert curve[-1]["l1"] < curve[0]["l1"]  # it learns from the pairs
    trained = model.state_dict()
    changed = {k for k in trained if not torch.equal(trained[k], untrained[k])}
    assert any(k.startswith("enc_a.") for k in changed)
    assert any(k.startswith("gen_b.") for k in changed)
    assert not [
        k
        for k in changed
        if k.startswith(("enc_b.", "gen_a.", "dis_a.", "dis_b.")) and "shared" not in k
    ]  # tied blocks are part of the a->b path


def test_ceiling_refuses_a_bad_eval_interval():
    with pytest.raises(ValueError, match="eval_every"):
        train_ceiling(get_preset("tiny"), eval_every=0)


def test_ceiling_command(capsys):
    assert main(["ceiling", "--preset", "tiny", "--steps", "4", "--eval-every", "2"]) == 0
    out = capsys.readouterr().out
    assert "supervised ceiling" in out and out.count("pixel accuracy") == 2
