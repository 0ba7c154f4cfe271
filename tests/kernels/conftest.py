"""Kernel tests run on the GPU when there is one, else on the CPU through the Triton interpreter.

``TRITON_INTERPRET`` must be set before any kernel module is imported: Triton reads it when
``@triton.jit`` runs. pytest imports this file before the test modules of this folder, and
:mod:`unitlab.ops` imports the kernel modules lazily, so setting it here is early enough.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

from unitlab import ops  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def device() -> str:
    """Where the kernels run: ``cuda`` on a GPU machine, else ``cpu`` (interpreter)."""
    return DEVICE


@pytest.fixture(autouse=True)
def _restore_backend():
    """Each test starts from, and leaves, the backend as it found it."""
    previous = ops._backend
    yield
    ops.set_backend(previous)
