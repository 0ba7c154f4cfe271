"""The seam between the models and the kernels.

Models call the functions here, never a kernel directly. Each op has one readable PyTorch
definition, :mod:`unitlab.kernels.reference`; on CUDA tensors, when Triton is importable, the
fused Triton kernel from :mod:`unitlab.kernels` is used instead. ``set_backend`` (or the
``use_backend`` context) and the ``UNITLAB_KERNELS`` environment variable (``auto`` | ``torch`` |
``triton``) force either path; ``set_backend`` wins over the variable, which is read at each call.

The Triton modules are imported lazily, on the first call that uses them: Triton decides at
import time whether its kernels are compiled for a GPU or run by the CPU interpreter
(``TRITON_INTERPRET=1``), so importing them early would freeze that choice.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from types import ModuleType

import torch
from torch import Tensor

from .kernels import reference

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "UNITLAB_KERNELS"
_backend: str | None = None  # None: follow the environment variable


def set_backend(name: str | None) -> None:
    """Force the kernel backend: ``auto`` (Triton on CUDA), ``torch`` or ``triton``.

    ``None`` returns to the environment variable (``auto`` when unset).
    """
    global _backend
    if name is not None and name not in BACKENDS:
        raise ValueError(f"kernel backend {name!r} must be one of {', '.join(BACKENDS)}")
    _backend = name


def interpreting() -> bool:
    """Whether Triton kernels would run in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def get_backend() -> str:
    """The backend in force: the one set by :func:`set_backend`, else ``$UNITLAB_KERNELS``."""
    if _backend is not None:
        return _backend
    name = os.environ.get(ENV_VAR, "auto") or "auto"
    if name not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={name!r} must be one of {', '.join(BACKENDS)}")
    return name


@contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Run a block under another backend, restoring the previous setting afterwards."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


@cache
def triton_available() -> bool:
    """Whether Triton imports here (checked once, on the first op that could use it).

    Importing ``triton`` does not yet fix interpreted-or-compiled: only ``@triton.jit`` does.
    """
    try:
        importlib.import_module("triton")
    except Exception:  # not installed, or broken (e.g. no matching driver): fall back to torch
        return False
    return True


def uses_triton(x: Tensor) -> bool:
    """Whether an op on ``x`` runs the Triton kernel under the current backend.

    ``auto`` picks Triton for CUDA tensors when it is installed; ``triton`` insists (and the
    kernel module raises a clear error for CPU tensors outside the interpreter).
    """
    backend = get_backend()
    if backend == "torch":
        return False
    if backend == "auto":
        return x.is_cuda and triton_available()
    if not triton_available():
        raise RuntimeError(
            f"kernel backend 'triton' was requested (set_backend or {ENV_VAR}) "
            "but Triton does not import here; use 'auto' or 'torch'"
        )
    return True


def _kernel_module(name: str) -> ModuleType:
    """Import a kernel module on first use (see the module docstring for why not earlier)."""
    return importlib.import_module(f"unitlab.kernels.{name}")


def reparameterize(
    mu: Tensor, logvar: Tensor | None = None, *, sample: bool = True, noise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Return ``(z, kl)`` for a code ``mu`` (and optionally ``logvar``).

    Reduced VAE (``logvar is None``, UNIT's image translation): the variance is fixed to one,
    ``z = mu + eps`` and ``kl = mean(mu**2)``, computed on ``mu`` *before* the noise.
    Full Gaussian: ``z = mu + exp(logvar / 2) * eps`` and ``kl`` is the batch mean of the closed
    form ``0.5 * sum(mu**2 + exp(logvar) - logvar - 1)``. ``sample=False`` returns ``z = mu``
    (translation at test time is deterministic). Both backends draw ``eps`` from torch's RNG
    state (the Triton one as a Philox seed), so ``torch.manual_seed`` makes either repeat, but
    the two backends draw different noise. A given ``noise`` (``eps``) runs the PyTorch path:
    the kernel draws its own (data-parallel training slices one global draw, see the trainer).
    """
    if noise is not None:
        return reference.reparameterize(mu, logvar, sample=sample, noise=noise)
    if uses_triton(mu):
        return _kernel_module("reparam").reparameterize(mu, logvar, sample=sample)
    return reference.reparameterize(mu, logvar, sample=sample)


def instance_norm_act(
    x: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    activation: str = "relu",
    slope: float = 0.2,
    residual: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """``act(instance_norm(x) * weight + bias) + residual``: the tail of every residual block.

    ``activation`` is ``relu``, ``lrelu`` (negative ``slope``) or ``none``. Statistics are per
    sample and channel over H*W, biased variance, as ``nn.InstanceNorm2d``.
    """
    reference.check_activation(activation)
    args = dict(activation=activation, slope=slope, residual=residual, eps=eps)
    if uses_triton(x):
        if residual is not None and residual.dtype != x.dtype:
            # Mixed precision (bf16 autocast) adds a bf16 block output to an fp32 skip: the
            # reference promotes, the kernel wants one dtype, so promote both first.
            dtype = torch.promote_types(x.dtype, residual.dtype)
            x, args["residual"] = x.to(dtype), residual.to(dtype)
        return _kernel_module("instance_norm").instance_norm_act(x, weight, bias, **args)
    return reference.instance_norm_act(x, weight, bias, **args)
