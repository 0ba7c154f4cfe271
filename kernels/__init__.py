"""Triton kernels for unitlab, installed as ``unitlab.kernels`` (see pyproject.toml).

One module per op, each "kernels + host launcher + autograd.Function" (Liger-Kernel's layout):

- :mod:`.reparam` — fused reparameterisation + KL (noise regenerated in the backward);
- :mod:`.instance_norm` — the residual-block tail: instance norm + activation + residual add;
- :mod:`.reference` — the PyTorch definitions both are tested against (and ``unitlab.ops`` runs
  when the kernels are not used);
- :mod:`.compile_check` — every kernel variant compiled for an sm_90 GPU, without one.

The benchmarks live outside the package, in the repository's ``benchmarks/``; nothing here
imports anything of unitlab's above :mod:`.reference`.

Nothing is imported here: Triton decides at ``@triton.jit`` time whether a kernel is compiled or
interpreted (``TRITON_INTERPRET=1``), so the op modules load only when first used.
"""
