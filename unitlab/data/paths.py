"""Where datasets live on disk.

One variable decides it, so notebooks, the CLI and CI agree without passing paths around: CI
points ``UNITLAB_DATA`` at the read-only ``../shared/data``; a laptop leaves it unset and gets a
per-user cache folder that downloads fill.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "UNITLAB_DATA"
CACHE_ENV = "UNITLAB_CACHE"


def _user_cache() -> Path:
    """``$XDG_CACHE_HOME/unitlab``; ``XDG_CACHE_HOME`` defaults to ``~/.cache`` (XDG spec)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "unitlab"


def data_root() -> Path:
    """The data folder: ``$UNITLAB_DATA`` if set, else ``$XDG_CACHE_HOME/unitlab``.

    Not created here: a read-only root (shared data) must stay untouched, and a loader that
    downloads creates what it writes.
    """
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else _user_cache()


def cache_dir() -> Path:
    """Folder for decoded-array caches: ``$UNITLAB_CACHE``, else ``$XDG_CACHE_HOME/unitlab/cache``.

    Deliberately *not* under ``$UNITLAB_DATA``: that may be a shared read-only folder (CI points
    it at ``../shared/data``), and read-only mode bits do not stop root from writing there.
    Callers must cope with an unwritable cache (skip caching).
    """
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else _user_cache() / "cache"
