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
from .trainer import AdaptTrainer, config_split, load_trainer, run_adaptation


def __getattr__(name: str):
    """``adapt_run`` is imported from :mod:`.report` on first use: importing that module here
    would load it before ``python -m unitlab.adapt.report`` runs it as ``__main__`` (runpy
    then warns that the module is imported twice)."""
    if name == "adapt_run":
        from .report import adapt_run

        return adapt_run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
