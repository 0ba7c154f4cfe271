"""Latent explorer logic, and the widget driven from plain Python (no browser, no kernel)."""

import numpy as np
import pytest
import torch

from unitlab.images import grid
from unitlab.vae import VAE, vae_config
from unitlab.widgets import (
    decode_latent,
    edit_code,
    grid_rows,
    label_directions,
    labelled_rows,
    latent_explorer,
    outline,
    pca_directions,
    png_bytes,
    png_image,
    region_mask,
    traversal,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VAE(vae_config(image_size=16, base_channels=4, n_res_blocks=1).model).eval()


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)


def test_pca_directions_image_and_cell():
    codes = torch.randn(30, 3, 2, 2) * torch.tensor([3.0, 1.0, 0.1])[:, None, None]
    d = pca_directions(codes, 2, over="cell")
    assert d.vectors.shape == (2, 3, 1, 1) and d.mean.shape == (3, 1, 1)
    assert d.explained[0] > 0.8  # channel 0 has most of the variance
    assert abs(d.vectors[0].flatten()[0].abs().item() - 3.0) < 0.6  # scaled by its std
    d = pca_directions(codes, 4, over="image")
    assert d.vectors.shape == (4, 3, 2, 2)
    assert torch.all(d.explained[:-1] >= d.explained[1:])
    with pytest.raises(ValueError):
        pca_directions(codes, 0)
    with pytest.raises(ValueError):
        pca_directions(codes, 2, over="pixel")


def test_edit_code_with_mask():
    base = torch.zeros(3, 4, 4)
    dirs = torch.ones(2, 3, 1, 1)
    mask = region_mask(4, (1, 3), (0, 2))
    z = edit_code(base, dirs, [1.0, 2.0], mask)
    assert torch.all(z[:, 1:3, 0:2] == 3.0) and z.sum() == 3.0 * 3 * 4
    assert torch.equal(edit_code(base, dirs, [0.0, 0.0]), base)
    with pytest.raises(ValueError):
        edit_code(base, dirs, [1.0])
    with pytest.raises(ValueError):
        region_mask(4, (2, 2), (0, 1))


def test_label_directions():
    codes = torch.zeros(2, 2, 2, 2)
    codes[:, 0, 0, :] = 4.0  # the top row of cells is class 1, and has channel 0 = 4
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[:, :4] = 1
    d = label_directions(codes, labels, n_classes=3)
    assert d.vectors.shape == (3, 2, 1, 1)
    assert torch.allclose(d.vectors[1].flatten(), torch.tensor([2.0, 0.0]))
    assert torch.allclose(d.vectors[0].flatten(), torch.tensor([-2.0, 0.0]))
    assert torch.all(d.vectors[2] == 0) and d.explained[2] == 0  # absent class
    picked = d.subset([2, 1])
    assert torch.equal(picked.vectors[1], d.vectors[1]) and len(picked.vectors) == 2


def test_decode_traversal_png_outline(model, data):
    codes = model.codes(data)
    d = pca_directions(codes, 2)
    img = decode_latent(model, codes[0], d.vectors, [0.0, 0.0])
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert np.array_equal(img, model.reconstruct(data[:1])[0])
    rows = traversal(model, codes[0], d.vectors, [-2, 0, 2])
    assert len(rows) == 2 and rows[0].shape == (3, 16, 16, 3)
    assert np.array_equal(rows[0][1], img)
    assert png_bytes(img, 2)[:8] == b"\x89PNG\r\n\x1a\n"
    boxed = outline(data[0], region_mask(4, (1, 2), (1, 3)), 2)
    assert boxed.shape == (32, 32, 3) and tuple(boxed[8, 8]) == (230, 30, 30)


def test_explorer_driven_from_python(model, data):
    codes = model.codes(data)
    ex = latent_explorer(model, codes, k=3, images=data, region=((1, 3), (1, 3)))
    assert len(ex.sliders) == 3 and ex.basis.vectors.shape == (3, 16, 1, 1)
    start = ex.image.copy()
    assert np.array_equal(start, model.reconstruct(data[:1])[0])
    ex.sliders[0].value = 3.0  # fires the callback, as a browser drag would
    assert not np.array_equal(ex.image, start)
    mask = region_mask(4, (1, 3), (1, 3))
    direct = decode_latent(model, codes[0], ex.basis.vectors, [3.0, 0.0, 0.0], mask)
    assert np.array_equal(ex.image, direct)
    ex.base.value = 4
    assert np.array_equal(
        ex.image, decode_latent(model, codes[4], ex.basis.vectors, [3.0, 0.0, 0.0], mask)
    )
    ex.rows.value = (0, 4)
    ex.cols.value = (0, 4)
    assert torch.equal(ex.mask(), torch.ones(4, 4))
    ex.reset_sliders()
    assert ex.coefficients == [0.0, 0.0, 0.0]
    assert np.array_equal(ex.image, model.reconstruct(data[4:5])[0])
    assert ex.views["decoded"].value[:4] == b"\x89PNG"


def test_empty_region_edits_nothing(model, data):
    codes = model.codes(data)
    ex = latent_explorer(model, codes, k=1)
    ex.rows.value = (2, 2)
    ex.sliders[0].value = 4.0
    assert np.array_equal(ex.image, model.reconstruct(data[:1])[0])


def test_explorer_with_several_decoders(model, data):
    codes = model.codes(data)
    flipped = lambda z: model.decode(z).flip(-1)  # any callable from codes to images
    ex = latent_explorer({"vae": model, "flipped": flipped}, codes, k=2, labels=["a", "b"])
    assert [s.description for s in ex.sliders] == ["a", "b"]
    ex.sliders[1].value = -2.0
    assert set(ex.rendered) == {"vae", "flipped"}
    assert np.array_equal(ex.image, ex.rendered["vae"])
    assert np.array_equal(ex.rendered["flipped"], ex.rendered["vae"][:, ::-1])


def test_grid_rows_split_a_grid_back_into_labelled_rows(data):
    rows = [data[0:3], data[3:6], data[6:9]]
    image = grid(rows)
    strips = grid_rows(image, 3)
    assert len(strips) == 3 and all(s.shape == (16 + 4, image.shape[1], 3) for s in strips)
    for strip, row in zip(strips, rows, strict=True):
        np.testing.assert_array_equal(strip[2:18, 2:18], row[0])  # first image, inside the pad
        np.testing.assert_array_equal(strip[2:18, 20:36], row[1])
    with pytest.raises(ValueError, match="not a grid of 4 rows"):
        grid_rows(image, 4)
    box = labelled_rows(strips, ["input", "reconstruction", "translation"], scale=2, title="t")
    assert [label.value.split(">")[1].split("<")[0] for label in box.labels] == [
        "input",
        "reconstruction",
        "translation",
    ]
    np.testing.assert_array_equal(png_image(box.images[1].value)[::2, ::2], strips[1])
    with pytest.raises(ValueError, match="2 labels for 3 rows"):
        labelled_rows(strips, ["a", "b"])


def test_latent_explorer_carries_a_static_picture(model, data):
    """A notebook without a kernel shows an output's best safe MIME type: a PNG of the panels
    as they were drawn, instead of the repr text of the widget."""
    import base64

    ex = latent_explorer(model, model.codes(data), k=2, images=data, scale=2)
    bundle = ex._repr_mimebundle_()
    assert {"image/png", "text/plain", "application/vnd.jupyter.widget-view+json"} <= set(bundle)
    picture = png_image(base64.b64decode(bundle["image/png"]))
    np.testing.assert_array_equal(picture, ex.snapshot())
    assert picture.shape[0] >= 32 and picture.shape[1] >= 2 * 32  # start image + decoded
    ex.sliders[0].value = 3.0
    assert not np.array_equal(ex.snapshot(), picture)
