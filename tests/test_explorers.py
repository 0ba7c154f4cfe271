import json

import numpy as np
import pytest
import torch

from unitlab import ablation
from unitlab.config import get_preset
from unitlab.explorers import (
    AblationExplorer,
    TranslationExplorer,
    ablation_views,
    generate_layout,
    interpolation_views,
    translation_views,
)
from unitlab.images import tensor_to_uint8, uint8_to_tensor
from unitlab.models import UNIT


@pytest.fixture(scope="module")
def model() -> UNIT:
    torch.manual_seed(0)
    return UNIT(get_preset("tiny").model).eval()


def test_translation_views_are_the_model_streams(model):
    sat, true_map = generate_layout(3, 16)
    views = translation_views(model, sat, true_map)
    x = uint8_to_tensor(sat[None])
    with torch.no_grad():
        mu = model.enc_a(x)
        x_ab = model.gen_b(mu)
        expected = {
            "translation": tensor_to_uint8(x_ab)[0],
            "reconstruction": tensor_to_uint8(model.gen_a(mu))[0],
            "cycle": tensor_to_uint8(model.gen_a(model.enc_b(x_ab)))[0],
        }
    for key, image in expected.items():
        np.testing.assert_array_equal(views[key], image)
    np.testing.assert_array_equal(views["true map"], true_map)


def test_interpolation_ends_decode_each_code(model):
    (s1, _), (_, m2) = generate_layout(1, 16), generate_layout(2, 16)
    with torch.no_grad():
        z1, z2 = model.enc_a(uint8_to_tensor(s1[None])), model.enc_b(uint8_to_tensor(m2[None]))
        for t, z in ((0.0, z1), (1.0, z2)):
            views = interpolation_views(model, s1, m2, t, ("a", "b"))
            np.testing.assert_array_equal(views["as map"], tensor_to_uint8(model.gen_b(z))[0])
            np.testing.assert_array_equal(views["as satellite"], tensor_to_uint8(model.gen_a(z))[0])


def test_translation_explorer_redraws_when_a_slider_moves(model):
    explorer = TranslationExplorer(model)
    before = explorer.image.copy()
    explorer.layout_seed.value = 7  # what a drag in the browser does
    sat, true_map = generate_layout(7, 16)
    assert not np.array_equal(before, explorer.image)
    np.testing.assert_array_equal(explorer.image, translation_views(model, sat)["translation"])
    path_before = explorer.rendered["as map"].copy()
    explorer.t.value = 1.0
    expected = interpolation_views(model, sat, generate_layout(1, 16)[0], 1.0)["as map"]
    np.testing.assert_array_equal(explorer.rendered["as map"], expected)
    assert not np.array_equal(path_before, explorer.rendered["as map"])


@pytest.fixture(scope="module")
def ablation_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    ablation.run_ablation(
        out,
        ["UNIT (1 tied)", "no cycle"],
        seeds=[0],
        preset="tiny",
        steps=4,
        eval_every=2,
        log=lambda _: None,
    )
    return out


def test_ablation_records_curves_and_files(ablation_dir):
    runs = ablation.load_results(ablation_dir)
    assert [r["variant"] for r in runs] == ["UNIT (1 tied)", "no cycle"]
    for run in runs:
        assert [step for step, _ in run["curve"]] == [2, 4]
        assert run["accuracy"] == run["curve"][-1][1]
        assert run["best"] == max(acc for _, acc in run["curve"])
        folder = ablation_dir / run["folder"]
        assert {p.name for p in folder.iterdir()} == {
            "config.json",
            "log.jsonl",
            "curve.jsonl",
            "metrics.json",
            "record.json",
            "samples.png",
            "translations.png",
        }
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["unit"] == run["accuracy"]  # train_run's report of the same run
    no_cycle = ablation_dir / runs[1]["folder"] / "config.json"
    assert '"use_cycle": false' in no_cycle.read_text()
    table = ablation.format_table(runs)
    assert "| no cycle | 1 |" in table and "0.568" in table


def test_ablation_skips_runs_it_already_has(ablation_dir):
    calls = []
    ablation.run_ablation(
        ablation_dir, ["no cycle"], seeds=[0], preset="tiny", steps=4, log=calls.append
    )
    assert calls == []


def test_ablation_refuses_unknown_variants_and_corrupt_results(tmp_path):
    with pytest.raises(ValueError, match="unknown ablation variant 'no tying'"):
        ablation.run_ablation(tmp_path, ["no tying"], preset="tiny")
    (tmp_path / "no-cycle" / "seed0").mkdir(parents=True)
    (tmp_path / "no-cycle" / "seed0" / "record.json").write_text("{not json")
    with pytest.raises(ValueError, match="seed0/record.json is not an ablation record"):
        ablation.load_results(tmp_path)


def test_ablation_explorer_switches_variants(ablation_dir):
    explorer = AblationExplorer(ablation_dir, baseline=0.45)
    first = explorer.rendered["curves"].copy()
    explorer.variant.value = "no cycle"
    expected = ablation_views(ablation_dir, "no cycle", 0, 0.45)
    np.testing.assert_array_equal(explorer.image, expected["translations"])
    assert not np.array_equal(first, explorer.rendered["curves"])
    with pytest.raises(ValueError, match="no run of 'deep D"):
        ablation_views(ablation_dir, "deep D (5 layers)")
