"""Datasets: the embedded procedural map world and real digit loaders (MNIST, USPS)."""
