"""Triton kernels for unitlab, installed as ``unitlab.kernels`` (see pyproject.toml)."""
