"""Recipe sweeps: parsing, one record per (recipe, seed), resuming an interrupted sweep."""

import json

import pytest

from unitlab.sweep import main, parse_recipes, sweep


def test_parse_recipes_and_its_errors():
    text = "# a comment\nbase:\nlsgan: loss.gan_mode=lsgan  optim.lr=1e-3 # why\n\n"
    assert parse_recipes(text) == {"base": [], "lsgan": ["loss.gan_mode=lsgan", "optim.lr=1e-3"]}
    with pytest.raises(ValueError, match="line 1"):
        parse_recipes("no colon here")
    with pytest.raises(ValueError, match="used twice"):
        parse_recipes("a: x=1\na: y=2")
    with pytest.raises(ValueError, match="no recipes"):
        parse_recipes("# nothing\n")


def test_sweep_records_curves_and_skips_what_is_done(tmp_path, capsys):
    recipes = {"base": [], "lsgan": ["loss.gan_mode=lsgan"]}
    out = tmp_path / "sweep.jsonl"
    records = sweep(recipes, out, preset="tiny", seeds=(0,), steps=4, eval_every=2)
    assert {r["recipe"] for r in records} == {"base", "lsgan"}
    for r in records:
        assert [step for step, _ in r["curve"]] == [2, 4]
        assert 0 <= r["final"] <= r["best"] <= 1
    assert sweep(recipes, out, preset="tiny", seeds=(0,), steps=4, eval_every=2) == []
    assert len(out.read_text().splitlines()) == 2
    with pytest.raises(ValueError, match="recipe 'bad'"):
        sweep({"bad": ["model.n_sharde=1"]}, out, preset="tiny")


def test_sweep_command_line(tmp_path, capsys):
    (tmp_path / "r.txt").write_text("base:\n")
    out = tmp_path / "s.jsonl"
    argv = [
        str(tmp_path / "r.txt"),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--eval-every",
        "1",
        "--seeds",
        "0",
        "1",
    ]
    assert main(argv) == 0
    assert sorted(json.loads(line)["seed"] for line in out.read_text().splitlines()) == [0, 1]
    assert "base" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
