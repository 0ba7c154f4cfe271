"""UNIT's digit domain adaptation (SVHN/USPS/printed digits -> MNIST, MNIST -> USPS).

One module per job:

- :mod:`.models` — the coupled VAE (generator) with its optional per-domain frames, the shared
  discriminator-classifier and the per-domain style critics;
- :mod:`.config` — :class:`AdaptConfig` and its presets (``paper``, ``svhn-mnist``,
  ``cpu``, ``cpu-translate``, ``cpu-frames``, ``tiny``);
- :mod:`.trainer` — :class:`AdaptTrainer` (the two alternating steps) and its run;
- :mod:`.baseline` — the source-only classifier every adaptation number must beat;
- :mod:`.report` — a whole run as one call (:func:`adapt_run`: baseline, adaptation, the
  oracle's reading of its translations, ``result.json``) and the results tables (``python -m
  unitlab.adapt.report RUN...``).

The data (splits that keep target labels out of training) is :mod:`unitlab.data.adaptation`.
"""

from .baseline import accuracy, train_source_only
from .config import ADAPT_PRESETS, PAPER, AdaptConfig, adapt_preset
from .models import CoupledDigitVAE, DigitDiscriminator, DomainFrame, StyleCritic
from .report import adapt_run
from .trainer import AdaptTrainer, config_split, load_trainer, run_adaptation

__all__ = [
    "ADAPT_PRESETS",
    "PAPER",
    "AdaptConfig",
    "AdaptTrainer",
    "CoupledDigitVAE",
    "DigitDiscriminator",
    "DomainFrame",
    "StyleCritic",
    "accuracy",
    "adapt_preset",
    "adapt_run",
    "config_split",
    "load_trainer",
    "run_adaptation",
    "train_source_only",
]
