"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# Tests never reach the internet: loaders that would download raise instead.
os.environ["UNITLAB_OFFLINE"] = "1"
# Test tensors are tiny: one thread is as fast as two, and immune to the oversubscription
# slow-downs (5-10x, measured) when another process (a notebook kernel, a build) shares the cores.
torch.set_num_threads(1)

# ../shared/data relative to the repository root: where CI and the dev machines keep real data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder ``../shared/data``; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture(scope="module")
def offline_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``../shared/data`` as ``$UNITLAB_DATA``, offline, with a cache private to the module
    (each dataset is parsed once per module, never read from a developer's own cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITLAB_OFFLINE", "1")
        mp.setenv("UNITLAB_DATA", str(shared_data))
        mp.setenv("UNITLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield shared_data
