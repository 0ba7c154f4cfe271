import json

import numpy as np
import pytest
import torch

from unitlab import ablation
from unitlab.config import get_preset
from unitlab.explorers import (
    SAMPLE_ROWS,
    TRANSLATION_ROWS,
    AblationExplorer,
    TranslationExplorer,
    ablation_views,
    generate_layout,
    interpolation_accuracy,
    interpolation_views,
    translation_views,
)
from unitlab.images import tensor_to_uint8, uint8_to_tensor
from unitlab.metrics import pixel_accuracy
from unitlab.models import UNIT
from unitlab.widgets import EXPLORER_CLASS, png_image


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


def test_interpolation_accuracy_scores_the_path_ends(model):
    pairs = [generate_layout(seed, 16) for seed in range(4)]
    sat, maps = np.stack([s for s, _ in pairs]), np.stack([m for _, m in pairs])
    with torch.no_grad():
        translated = tensor_to_uint8(model.gen_b(model.enc_a(uint8_to_tensor(sat))))
        recon = tensor_to_uint8(model.gen_b(model.enc_b(uint8_to_tensor(maps))))
        shifted = np.roll(maps, 1, axis=0)
        other = tensor_to_uint8(model.gen_b(model.enc_b(uint8_to_tensor(shifted))))
    assert interpolation_accuracy(model, sat, maps, 0.0) == pixel_accuracy(translated, maps)
    assert interpolation_accuracy(model, sat, maps, 1.0) == pixel_accuracy(recon, maps)
    assert interpolation_accuracy(model, sat, maps, 1.0, shift=1) == pixel_accuracy(other, maps)


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


def _pictures(explorer) -> dict[str, bytes]:
    return {name: png for name, png in _images(explorer)}


def _images(widget, path=""):
    """(path, PNG bytes) of every Image widget under ``widget``: what a browser shows."""
    import ipywidgets as w

    if isinstance(widget, w.Image):
        yield path, bytes(widget.value)
    for i, child in enumerate(getattr(widget, "children", ())):
        yield from _images(child, f"{path}/{i}")


@pytest.mark.parametrize(
    "move",
    [
        ("layout_seed", 1),  # the first drag of each slider, by one step either way
        ("other", 2),
        ("t", 0.55),
        ("t", 0.45),
        ("source", "b"),  # the first click on the other toggle button
    ],
)
def test_translation_explorer_starts_where_any_first_move_changes_a_picture(model, move):
    """The issue: a demo left t = 1 and "map" selected, so a reader's first drag of t to the
    right, or click on "map", changed nothing. A fresh explorer sits inside every range."""
    explorer = TranslationExplorer(model)
    assert 0 < explorer.t.value < 1 and explorer.source.value == "a"
    assert isinstance(explorer.t.value, float)  # the browser test drags a float slider
    before = _pictures(explorer)
    name, value = move
    getattr(explorer, name).value = value
    after = _pictures(explorer)
    assert before.keys() == after.keys()
    assert any(before[k] != after[k] for k in before), f"moving {name} to {value} changed nothing"


def test_explorers_redraw_into_the_same_widgets_and_reset(model, ablation_dir):
    """A redraw changes pictures, not widgets (new ones would pile up in the kernel and in the
    saved notebook); reset() brings a driven explorer back to its starting pictures."""
    for explorer, moves in (
        (TranslationExplorer(model), [("layout_seed", 5), ("source", "b"), ("t", 1.0)]),
        (AblationExplorer(ablation_dir), [("variant", "no cycle")]),
    ):
        start = _pictures(explorer)
        widgets = [id(x) for x in _widgets(explorer)]
        for name, value in moves:
            getattr(explorer, name).value = value
        assert _pictures(explorer) != start
        assert [id(x) for x in _widgets(explorer)] == widgets
        explorer.reset()
        assert _pictures(explorer) == start


def _widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def test_translation_explorer_shows_both_ends_of_the_path(model):
    explorer = TranslationExplorer(model)
    sat, _ = generate_layout(0, 16)
    other_sat, other_map = generate_layout(1, 16)
    np.testing.assert_array_equal(explorer.rendered["start"], sat)
    np.testing.assert_array_equal(explorer.rendered["end"], other_sat)
    assert "satellite" in explorer.captions()["end"]
    explorer.source.value = "b"
    np.testing.assert_array_equal(explorer.rendered["end"], other_map)
    assert "map" in explorer.captions()["end"]
    captions = [child.children[0].value for child in explorer.path.children]
    assert len(captions) == 4 and "start (t = 0)" in captions[0] and "end (t = 1)" in captions[-1]
    shown = [png_image(child.children[1].value) for child in explorer.path.children]
    np.testing.assert_array_equal(shown[0][::4, ::4], sat)  # drawn 4x, pixels kept sharp
    np.testing.assert_array_equal(shown[-1][::4, ::4], other_map)


def test_translation_explorer_sliders_are_wide_enough(model):
    explorer = TranslationExplorer(model)
    assert EXPLORER_CLASS in explorer._dom_classes
    for slider in (explorer.layout_seed, explorer.other, explorer.t):
        assert slider.layout.width is not None and int(slider.layout.width.rstrip("px")) >= 400
        assert slider.style.description_width


def test_translation_explorer_carries_a_static_picture(model):
    """Without a kernel a viewer shows the best safe MIME type: a PNG of the explorer's state,
    not the widget's repr. With a kernel, the widget view is still in the bundle."""
    explorer = TranslationExplorer(model)
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "text/plain" in bundle
    import base64

    png = base64.b64decode(bundle["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    picture = png_image(png)
    assert picture.shape[0] > 100 and picture.shape[1] > 300
    np.testing.assert_array_equal(png_image(explorer.snapshot_png()), explorer.snapshot())
    explorer.t.value = 0.9  # the picture follows the state
    assert not np.array_equal(png_image(explorer.snapshot_png()), picture)


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


def test_ablation_explorer_labels_every_row_and_stays_compact(ablation_dir):
    explorer = AblationExplorer(ablation_dir, baseline=0.45)
    labels = {
        name: [label.value for label in panel.labels] for name, panel in explorer.panels.items()
    }
    assert [TRANSLATION_ROWS] == [[x.split(">")[1].split("<")[0] for x in labels["translations"]]]
    for side, rows in SAMPLE_ROWS:
        assert [x.split(">")[1].split("<")[0] for x in labels[side]] == rows
    # each labelled row is one strip of the saved grid, in order (shown 2x)
    for name, grid in (("translations", "translations"), ("from satellites", "samples")):
        strips = [png_image(image.value)[::2, ::2] for image in explorer.panels[name].images]
        top = explorer.rendered[grid][: strips[0].shape[0], :, :3]
        np.testing.assert_array_equal(strips[0], top)
    last = png_image(explorer.panels["from maps"].images[-1].value)[::2, ::2]
    np.testing.assert_array_equal(last, explorer.rendered["samples"][-last.shape[0] :, :, :3])
    # one screen: curves, then the translations, then the two sample blocks side by side
    height = (
        png_image(explorer.curves.value).shape[0]
        + sum(png_image(i.value).shape[0] for i in explorer.panels["translations"].images)
        + max(
            sum(png_image(i.value).shape[0] for i in explorer.panels[side].images)
            for side, _ in SAMPLE_ROWS
        )
    )
    assert height < 1000, f"the explorer's pictures stack {height} px tall"
    assert "final accuracy" in explorer.summary.value and "0.568" not in explorer.summary.value
    explorer.variant.value = "no cycle"
    assert "no cycle" in explorer.summary.value and "paper 0.568" in explorer.summary.value


def test_ablation_explorer_carries_a_static_picture(ablation_dir):
    import base64

    explorer = AblationExplorer(ablation_dir)
    bundle = explorer._repr_mimebundle_()
    picture = png_image(base64.b64decode(bundle["image/png"]))
    assert picture.shape[0] > explorer.rendered["curves"].shape[0]
    explorer.variant.value = "no cycle"
    assert not np.array_equal(explorer.snapshot(), picture)
