"""A digit translation explorer: pick source digits, see them translated and read.

Notebook 00 opens the course with it. A slider picks which source digits to show; the rows
are the digits, their translations into the target domain, and the round trip back, each
labelled with what the adapted classifier reads. The logic is :func:`translation_rows` (tensors
in, images and readings out), so tests and static figures use it without a browser; the widget
only wires a slider to it, and like every explorer it carries a PNG of its current state for
viewers without a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as w
import numpy as np
import torch
from torch import Tensor

from ..images import grid
from ..widgets import EXPLORER_CLASS, StaticFallback, labelled_rows, show_rows, slider_layout
from .models import CoupledDigitVAE, DigitDiscriminator

__all__ = ["DigitTranslations", "TranslationExplorer", "translation_rows"]


@dataclass
class DigitTranslations:
    """Digits, their translation and round trip (image rows), and the classifier's readings."""

    rows: list[np.ndarray]
    labels: list[str]

    def image(self) -> np.ndarray:
        """All rows as one uint8 picture (the static fallback)."""
        return np.concatenate(self.rows, axis=0)


@torch.no_grad()
def translation_rows(
    gen: CoupledDigitVAE,
    classifier: DigitDiscriminator,
    images: Tensor,
    labels: Tensor,
    names: tuple[str, str] = ("source", "target"),
) -> DigitTranslations:
    """Source ``images`` (domain a), translated to b and back; the labels give the true digits,
    then what ``classifier`` reads in each translated row (on that row's domain path)."""
    translated = gen.translate(images, "a2b")
    back = gen.translate(translated, "b2a")

    def digits(values: Tensor) -> str:
        return " ".join(map(str, values.tolist()))

    def read(x: Tensor, path: str) -> str:
        return digits(classifier(x, path)[1].argmax(1))

    source, target = names
    row_labels = [
        f"{source} (true digits {digits(labels)})",
        f"-> {target}: read {read(translated, 'b')}",
        f"-> {source} again: read {read(back, 'a')}",
    ]
    rows = [grid([x]) for x in (images, translated, back)]
    return DigitTranslations(rows, row_labels)


class TranslationExplorer(StaticFallback, w.VBox):
    """A slider over the source digits (``count`` at a time) and the three labelled rows of
    :func:`translation_rows`. ``slider``, ``view`` (the rows widget) and ``shown`` (the last
    :class:`DigitTranslations`) are what tests and notebooks use."""

    def __init__(
        self,
        gen: CoupledDigitVAE,
        classifier: DigitDiscriminator,
        images: Tensor,
        labels: Tensor,
        names: tuple[str, str] = ("source", "target"),
        count: int = 8,
        scale: int = 3,
    ) -> None:
        if len(images) != len(labels) or len(images) < count:
            raise ValueError(
                f"need at least count={count} images with one label each, "
                f"got {len(images)} images and {len(labels)} labels"
            )
        self.gen, self.classifier, self.images, self.labels = gen, classifier, images, labels
        self.names, self.count, self.scale = names, count, scale
        self.slider = w.IntSlider(
            value=0,
            min=0,
            max=len(images) - count,
            step=count,
            description="first digit",
            continuous_update=False,
            **slider_layout(),
        )
        self.shown = self._render()
        self.view = labelled_rows(self.shown.rows, self.shown.labels, scale)
        super().__init__([self.slider, self.view])
        self.add_class(EXPLORER_CLASS)
        self.slider.observe(self._update, names="value")

    def _render(self) -> DigitTranslations:
        start = self.slider.value
        pick = slice(start, start + self.count)
        return translation_rows(
            self.gen, self.classifier, self.images[pick], self.labels[pick], self.names
        )

    def _update(self, _change: object = None) -> None:
        self.shown = self._render()
        show_rows(self.view, self.shown.rows, self.scale, self.shown.labels)

    def snapshot(self) -> np.ndarray:
        return self.shown.image()
