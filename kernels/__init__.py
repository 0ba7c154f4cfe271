"""Triton kernels for unitlab, installed as ``unitlab.kernels`` (see pyproject.toml).

One module per op, each "kernels + host launcher + autograd.Function" (Liger-Kernel's layout):

- :mod:`.reparam` — fused reparameterisation + KL (noise regenerated in the backward);
- :mod:`.instance_norm` — the residual-block tail: instance norm + activation + residual add;
- :mod:`.reference` — the PyTorch definitions both are tested against (and ``unitlab.ops`` runs
  when the kernels are not used);
- :mod:`.bench`, :mod:`.gpu_check`, :mod:`.compile_check` — benchmark, GPU session, sm_90 check.

Nothing is imported here: Triton decides at ``@triton.jit`` time whether a kernel is compiled or
interpreted (``TRITON_INTERPRET=1``), so the op modules load only when first used.
"""
