import numpy as np
import pytest
import torch

from unitlab.alignment import code_alignment, codes
from unitlab.config import get_preset
from unitlab.models import UNIT


@pytest.fixture
def model() -> UNIT:
    torch.manual_seed(0)
    return UNIT(get_preset("tiny").model)


def test_identical_encoders_align_pairs_perfectly(model):
    # Make enc_b the same function as enc_a: then a pair (x, x) has distance 0 and is retrieved.
    model.enc_b.load_state_dict(model.enc_a.state_dict())
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    result = code_alignment(model, x, x)
    assert result.paired == pytest.approx(0.0, abs=1e-10)
    assert result.mismatched > 0
    assert result.ratio == pytest.approx(0.0, abs=1e-8)
    assert result.retrieval == 1.0
    assert result.chance == pytest.approx(1 / 6)


def test_distances_match_a_hand_computation(model):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    result = code_alignment(model, a, b)
    z_a, z_b = codes(model, a, "a").flatten(1), codes(model, b, "b").flatten(1)
    d = ((z_a[:, None] - z_b[None]) ** 2).mean(-1)
    assert result.paired == pytest.approx(float(d.diagonal().mean()), rel=1e-5)
    off = d[~torch.eye(4, dtype=torch.bool)]
    assert result.mismatched == pytest.approx(float(off.mean()), rel=1e-5)
    nearest = (d.argmin(1) == torch.arange(4)).float().mean()
    assert result.retrieval == pytest.approx(float(nearest))


def test_codes_leave_the_training_flag_alone(model):
    model.train()
    codes(model, torch.zeros(2, 3, 16, 16), "a")
    assert model.training


def test_mismatched_batches_are_refused(model):
    with pytest.raises(ValueError, match="equally long"):
        code_alignment(model, torch.zeros(3, 3, 16, 16), torch.zeros(2, 3, 16, 16))
