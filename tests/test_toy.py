"""The toy domains of notebook 01: renderers, their inverses, couplings and 1-D pairings."""

import numpy as np
import pytest

from unitlab import toy


def test_renderers_shapes_and_ranges():
    z = toy.sample_latents(5, seed=0)
    dots, bars = toy.render_dots(z, 16), toy.render_bars(z, 16)
    assert dots.shape == (5, 16, 16, 1) and dots.dtype == np.uint8
    assert bars.shape == (5, 16, 16, 3) and bars.dtype == np.uint8
    assert dots.max() > 200 and bars.max() > 200  # something is drawn
    assert np.array_equal(toy.sample_latents(5, seed=0), z)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_encoders_invert_renderers(size):
    z = toy.sample_latents(300, seed=1)
    assert np.abs(toy.encode_dots(toy.render_dots(z, size)) - z).max() < 0.005
    assert np.abs(toy.encode_bars(toy.render_bars(z, size)) - z).max() < 0.01


def test_extreme_codes_round_trip():
    corners = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    assert np.abs(toy.encode_bars(toy.render_bars(corners)) - corners).max() < 0.01
    assert np.abs(toy.encode_dots(toy.render_dots(corners)) - corners).max() < 0.005


def test_cycle_through_the_other_domain_returns_the_image():
    x1 = toy.render_dots(toy.sample_latents(50, seed=2))
    x12 = toy.render_bars(toy.encode_dots(x1))
    x121 = toy.render_dots(toy.encode_bars(x12))
    assert np.abs(x121.astype(int) - x1).max() <= 8


def test_latent_grid_layout():
    g = toy.latent_grid(4)
    assert g.shape == (16, 2)
    assert np.allclose(g[0], [0.125, 0.875])  # top-left: small u, large v
    assert np.allclose(g[-1], [0.875, 0.125])


@pytest.mark.parametrize("name", list(toy.COUPLINGS))
def test_couplings_permute_the_grid(name):
    g = toy.latent_grid(6)
    moved = toy.couple(g, name)
    key = lambda a: sorted(map(tuple, np.round(a, 9)))
    assert key(moved) == key(g)
    # so the translated images are the same set as the true ones, only paired differently
    imgs = lambda a: sorted(x.tobytes() for x in toy.render_bars(a))
    assert imgs(moved) == imgs(g)


def test_wrong_couplings_pair_differently():
    g = toy.latent_grid(6)
    for name in ("mirrored", "swapped", "shifted"):
        assert not np.allclose(toy.couple(g, name), g)
    with pytest.raises(ValueError, match="unknown coupling"):
        toy.couple(g, "nope")


def test_pair_1d_keeps_both_marginals():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.exponential(size=200)
    for kind in ("monotone", "antitone", "random"):
        pa, pb = toy.pair_1d(a, b, kind)
        assert np.array_equal(np.sort(pa), np.sort(a)) and np.array_equal(np.sort(pb), np.sort(b))
    corr = lambda kind: np.corrcoef(*toy.pair_1d(a, b, kind))[0, 1]
    assert corr("monotone") > 0.8 and corr("antitone") < -0.8 and abs(corr("random")) < 0.2
    with pytest.raises(ValueError):
        toy.pair_1d(a, b[:10], "monotone")


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        toy.render_dots(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="unit square"):
        toy.render_bars(np.full((1, 2), 1.5))
    with pytest.raises(ValueError, match="dot images"):
        toy.encode_dots(np.zeros((2, 8, 8, 3), np.uint8))


def test_atlas_lays_images_out_by_code():
    picture = toy.atlas(toy.render_dots, k=3, size=8)
    assert picture.shape == (3 * 10 + 2, 3 * 10 + 2, 3) and picture.dtype == np.uint8
    top_left = picture[2:10, 2:10, 0].astype(float)  # code (1/6, 5/6): dot up and to the left
    ys, xs = np.nonzero(top_left == top_left.max())
    assert ys.mean() < 4 and xs.mean() < 4
