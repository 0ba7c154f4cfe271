"""unitlab: UNIT (Liu, Breuel, Kautz, NIPS 2017) — unsupervised image-to-image translation.

Two VAEs share a latent space through weight-tied high-level layers; two GANs make translations
look real; a cycle stream regularises it. See the notebooks for the course, the README for the CLI.
"""

__version__ = "0.1.0"
