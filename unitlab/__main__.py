"""``python -m unitlab`` is the ``unitlab`` command (``torchrun -m unitlab train`` uses it)."""

from .cli import main

raise SystemExit(main())
