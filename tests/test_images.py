"""uint8 <-> tensor conversions, image files in and out, sample grids."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch

from unitlab.images import (
    ImageArrayDataset,
    grid,
    load_image,
    save_grid,
    save_image,
    tensor_to_uint8,
    uint8_to_tensor,
)


def test_round_trip_is_exact_for_every_value():
    x = np.arange(256, dtype=np.uint8).reshape(1, 4, 64, 1).repeat(3, axis=-1)
    t = uint8_to_tensor(x)
    assert t.shape == (1, 3, 4, 64) and t.dtype == torch.float32
    assert t.min() == -1 and t.max() == 1
    np.testing.assert_array_equal(tensor_to_uint8(t), x)
    np.testing.assert_array_equal(tensor_to_uint8(uint8_to_tensor(x[0])), x[0])  # unbatched


def test_tensor_to_uint8_clamps_and_rounds():
    t = torch.tensor([-2.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 5)
    assert tensor_to_uint8(t).ravel().tolist() == [0, 0, 128, 255, 255]


def test_conversions_refuse_wrong_inputs():
    with pytest.raises(ValueError, match="uint8"):
        uint8_to_tensor(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="tensor"):
        tensor_to_uint8(np.zeros((3, 4, 4)))


def test_dataset_serves_model_range_items():
    images = np.full((5, 8, 8, 3), 255, np.uint8)
    ds = ImageArrayDataset(images)
    assert len(ds) == 5 and ds[2].shape == (3, 8, 8) and torch.all(ds[2] == 1)


def _write_png(path, image: np.ndarray) -> None:
    kwargs = {"cmap": "gray", "vmin": 0, "vmax": 255} if image.ndim == 2 else {}
    matplotlib.image.imsave(path, image, format="png", **kwargs)


def test_load_rgb_png_resizes_shorter_side_and_centre_crops(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = (255, 0, 0)  # the central square is red, the sides black
    _write_png(tmp_path / "wide.png", image)
    x = load_image(tmp_path / "wide.png", size=10, channels=3)
    assert x.shape == (3, 10, 10)
    np.testing.assert_allclose(x[:, 2:8, 2:8].mean(dim=(1, 2)), [1, -1, -1], atol=1e-3)


def test_load_grey_png_as_grey_and_as_rgb(tmp_path):
    image = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (18, 1))  # a horizontal ramp
    _write_png(tmp_path / "grey.png", image)
    grey = load_image(tmp_path / "grey.png", size=12, channels=1)
    rgb = load_image(tmp_path / "grey.png", size=12, channels=3)
    assert grey.shape == (1, 12, 12) and rgb.shape == (3, 12, 12)
    torch.testing.assert_close(rgb, grey.expand(3, -1, -1), atol=1e-2, rtol=0)
    assert grey[0, 6, -1] > grey[0, 6, 0]  # the ramp survives the crop


def test_load_rgb_as_grey_uses_luma(tmp_path):
    _write_png(tmp_path / "green.png", np.full((8, 8, 3), (0, 255, 0), np.uint8))
    x = load_image(tmp_path / "green.png", size=8, channels=1)
    torch.testing.assert_close(x, torch.full((1, 8, 8), 0.587 * 2 - 1), atol=1e-2, rtol=0)


def test_load_jpeg(tmp_path):
    pytest.importorskip("PIL")
    image = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    matplotlib.image.imsave(tmp_path / "x.jpg", image, format="jpeg")
    x = load_image(tmp_path / "x.jpg", size=8)
    np.testing.assert_allclose(tensor_to_uint8(x)[4, 4], (200, 100, 50), atol=6)


def test_unreadable_file_names_it(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    with pytest.raises(ValueError, match="broken.png"):
        load_image(bad, size=8)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png", size=8)


def test_save_image_round_trips(tmp_path):
    x = torch.rand(3, 6, 9) * 2 - 1
    save_image(x, tmp_path / "out" / "x.png")
    back = load_image(tmp_path / "out" / "x.png", size=6)
    np.testing.assert_array_equal(tensor_to_uint8(back), tensor_to_uint8(x)[:, 1:7])
    save_image(torch.zeros(1, 4, 4), tmp_path / "grey.png")  # one channel is fine
    assert matplotlib.image.imread(tmp_path / "grey.png").shape[:2] == (4, 4)


def test_grid_mixes_tensors_arrays_grey_and_colour(tmp_path):
    rows = [
        torch.zeros(3, 1, 8, 8),  # grey tensors
        np.zeros((2, 10, 10, 3), np.uint8),  # larger colour uint8, fewer columns
    ]
    image = save_grid(rows, tmp_path / "grid.png", pad=2)
    assert image.shape == (2 * 12 + 2, 3 * 12 + 2, 3)
    np.testing.assert_array_equal(
        matplotlib.image.imread(tmp_path / "grid.png")[..., :3] * 255, image
    )
    with pytest.raises(ValueError):
        grid([])
