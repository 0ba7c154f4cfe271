"""Pixel accuracy on hand-made cases, and the baselines on small inputs."""

from __future__ import annotations

import numpy as np
import pytest

from unitlab.metrics import (
    colour_lookup_baseline,
    constant_baseline,
    dominant_colours,
    identity_baseline,
    nearest_colour_baseline,
    pixel_accuracy,
    pixel_accuracy_by_class,
    pixel_classifier_baseline,
)


def _image(colour=(10, 20, 30), shape=(2, 4, 4)) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (*shape, 3)).copy()


def test_identical_images_score_one():
    x = np.random.default_rng(0).integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    assert pixel_accuracy(x, x) == 1.0
    assert pixel_accuracy(x[0], x[0]) == 1.0  # a single (H, W, 3) image works too


@pytest.mark.parametrize("delta, expected", [(16, 1.0), (17, 0.0), (-16, 1.0), (-17, 0.0)])
def test_threshold_is_inclusive_on_each_channel(delta, expected):
    truth = _image((100, 100, 100))
    pred = truth.copy()
    pred[..., 1] = 100 + delta  # one channel off: the L-inf distance is |delta|
    assert pixel_accuracy(pred, truth) == expected


def test_channel_differences_do_not_add_up():
    # 16 off on every channel is still "within 16" under the max-over-channels distance.
    assert pixel_accuracy(_image((116, 116, 116)), _image((100, 100, 100))) == 1.0


def test_half_the_pixels_wrong_scores_one_half():
    truth = _image()
    pred = truth.copy()
    pred[:, :, :2] = 255  # the left half of every image
    assert pixel_accuracy(pred, truth) == 0.5


def test_threshold_argument():
    truth, pred = _image((100, 100, 100)), _image((105, 100, 100))
    assert pixel_accuracy(pred, truth, threshold=4) == 0.0
    assert pixel_accuracy(pred, truth, threshold=5) == 1.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 4, 4, 3\).*\(2, 4, 5, 3\)"):
        pixel_accuracy(_image(shape=(2, 4, 4)), _image(shape=(2, 4, 5)))


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_wrong_dtype_is_refused_by_name(dtype):
    truth = _image()
    with pytest.raises(ValueError, match=np.dtype(dtype).name):
        pixel_accuracy(truth.astype(dtype), truth)
    with pytest.raises(ValueError, match="uint8"):
        pixel_accuracy(truth, truth.astype(dtype))


def test_tensors_are_refused():
    torch = pytest.importorskip("torch")
    x = _image()
    with pytest.raises(ValueError, match="tensor_to_uint8|numpy"):
        pixel_accuracy(torch.from_numpy(x), x)


def test_colour_lookup_takes_the_majority_per_colour():
    sat = np.zeros((1, 1, 10, 3), np.uint8)  # one satellite colour ...
    maps = np.zeros((1, 1, 10, 3), np.uint8)
    maps[0, 0, :7] = 255  # ... paired 7 times with white, 3 times with black
    assert colour_lookup_baseline(sat, sat, maps).reshape(-1, 3).tolist() == [[255] * 3] * 10


def test_dominant_colours_skips_near_duplicates():
    maps = _image((200, 200, 200), shape=(1, 10, 10))
    maps[0, :3] = (202, 199, 200)  # a JPEG-like near duplicate of the main colour
    maps[0, 9] = (0, 0, 255)
    assert dominant_colours(maps).tolist() == [[200, 200, 200], [0, 0, 255]]


def _toy_pairs():
    """Satellite colour determines the map colour exactly: per-pixel baselines must be perfect."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (20, 8, 8))
    sat = np.array([(20, 80, 20), (90, 90, 90), (30, 50, 160)], np.uint8)[labels]
    maps = np.array([(200, 230, 180), (255, 255, 255), (170, 210, 230)], np.uint8)[labels]
    return sat, maps


def test_baselines_shapes_and_a_solvable_case():
    sat, maps = _toy_pairs()
    assert identity_baseline(sat).shape == sat.shape
    const = constant_baseline(maps[:10], sat[10:])
    assert const.shape == sat[10:].shape and const.dtype == np.uint8
    assert len(np.unique(const.reshape(-1, 3), axis=0)) == 1
    near = nearest_colour_baseline(sat[10:], sat[:10], maps[:10])
    assert pixel_accuracy(near, maps[10:]) == 1.0
    linear = pixel_classifier_baseline(sat[10:], sat[:10], maps[:10], steps=200)
    assert pixel_accuracy(linear, maps[10:]) == 1.0
    lookup = colour_lookup_baseline(sat[10:], sat[:10], maps[:10])
    assert pixel_accuracy(lookup, maps[10:]) == 1.0


def test_classifier_is_deterministic_for_a_seed():
    sat, maps = _toy_pairs()
    a = pixel_classifier_baseline(sat, sat, maps, steps=20, seed=1, max_pixels=500)
    b = pixel_classifier_baseline(sat, sat, maps, steps=20, seed=1, max_pixels=500)
    np.testing.assert_array_equal(a, b)


def test_baselines_refuse_unpaired_training_data():
    sat, maps = _toy_pairs()
    with pytest.raises(ValueError, match="pixel for pixel"):
        nearest_colour_baseline(sat, sat[:5], maps[:6])


def test_pixel_accuracy_by_class_splits_the_hits_by_true_class():
    truth = np.zeros((1, 2, 3, 3), dtype=np.uint8)
    pred = truth.copy()
    pred[0, 0, 0] = 100  # one pixel of class 0 wrong
    labels = np.array([[[0, 0, 1], [1, 1, 1]]])
    acc = pixel_accuracy_by_class(pred, truth, labels, n_classes=3)
    np.testing.assert_allclose(acc[:2], [0.5, 1.0])
    assert np.isnan(acc[2])  # no pixel of class 2
    total = (acc[0] * 2 + acc[1] * 4) / 6
    assert total == pytest.approx(pixel_accuracy(pred, truth))
    with pytest.raises(ValueError, match="labels shape"):
        pixel_accuracy_by_class(pred, truth, labels[:, :1], n_classes=3)
