"""The explorers of notebook 06: a translation explorer and an ablation explorer.

As in :mod:`unitlab.widgets`, the logic is plain functions that return uint8 images
(:func:`translation_views`, :func:`interpolation_views`, :func:`ablation_views`), and the widgets
only wire sliders and menus to them. Each widget keeps what it last drew in ``.rendered`` (a dict
of images) and ``.image`` (the main one), and setting a control's ``value`` from Python redraws
it exactly as a drag in the browser would.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np
import torch

from .alignment import codes as encode
from .config import DataConfig
from .data import mapworld
from .images import tensor_to_uint8
from .models import UNIT
from .widgets import EXPLORER_CLASS, png_bytes

# ---------------------------------------------------------------- translation


def generate_layout(
    seed: int, size: int, zoom: int = 1, look: str = "photo"
) -> tuple[np.ndarray, np.ndarray]:
    """A fresh held-out (satellite, map) pair of the map world, deterministic from ``seed``;
    ``zoom`` and ``look`` as the model's training data (``cfg.data``)."""
    sat, maps, _ = mapworld.paired(
        1, size, seed=seed, split="eval", cache=False, zoom=zoom, look=look
    )
    return sat[0], maps[0]


@torch.no_grad()
def translation_views(
    model: UNIT, satellite: np.ndarray, true_map: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every stream of UNIT for one satellite image (deterministic codes, ``z = mu``).

    Keys: ``satellite``, ``translation`` (G_b(E_a(x))), ``true map`` (if given),
    ``reconstruction`` (G_a(E_a(x))) and ``cycle`` (G_a(E_b(translation))).
    """
    mu = encode(model, satellite[None], "a")
    translation = model.gen_b(mu)
    views = {"satellite": satellite, "translation": tensor_to_uint8(translation)[0]}
    if true_map is not None:
        views["true map"] = true_map
    views["reconstruction"] = tensor_to_uint8(model.gen_a(mu))[0]
    views["cycle"] = tensor_to_uint8(model.gen_a(model.enc_b(translation)))[0]
    return views


@torch.no_grad()
def interpolation_views(
    model: UNIT, start: np.ndarray, end: np.ndarray, t: float, domains: tuple[str, str] = ("a", "a")
) -> dict[str, np.ndarray]:
    """Decode ``(1 - t) E(start) + t E(end)`` into *both* domains (one shared latent space).

    ``domains`` says which encoder reads ``start`` and ``end`` (``"a"`` satellite, ``"b"`` map):
    with ``("a", "b")`` the path runs from a satellite's code to a map's code.
    """
    z = (1 - t) * encode(model, start[None], domains[0]) + t * encode(model, end[None], domains[1])
    return {
        "as satellite": tensor_to_uint8(model.gen_a(z))[0],
        "as map": tensor_to_uint8(model.gen_b(z))[0],
    }


def _strip(images: dict[str, np.ndarray], scale: int) -> w.HBox:
    boxes = []
    for name, image in images.items():
        view = w.Image(value=png_bytes(image, scale), format="png")
        boxes.append(w.VBox([w.HTML(f"<b>{name}</b>"), view]))
    return w.HBox(boxes)


class TranslationExplorer(w.VBox):
    """Pick a layout, see all of UNIT's streams; interpolate between two layouts' codes.

    Controls: ``layout`` and ``other`` (seeds of generated held-out layouts), ``t`` (the
    interpolation weight) and ``source`` (whether ``other`` enters as a satellite or as a map).
    ``rendered`` holds every image drawn; ``image`` is the current translation.
    """

    def __init__(
        self,
        model: UNIT,
        size: int | None = None,
        scale: int = 5,
        data: DataConfig | None = None,
    ) -> None:
        super().__init__()
        self.add_class(EXPLORER_CLASS)
        self.model, self.scale = model, scale
        self.size = size or model.cfg.image_size
        self.view = {"zoom": data.zoom, "look": data.look} if data is not None else {}
        style = {"description_width": "110px"}
        self.layout_seed = w.IntSlider(0, 0, 999, description="layout", style=style)
        self.other = w.IntSlider(1, 0, 999, description="second layout", style=style)
        self.t = w.FloatSlider(0.5, min=0.0, max=1.0, step=0.05, description="t", style=style)
        self.source = w.ToggleButtons(
            options=[("satellite", "a"), ("map", "b")], description="second as", style=style
        )
        self.streams = w.HBox()
        self.path = w.HBox()
        for control in (self.layout_seed, self.other, self.t, self.source):
            control.observe(lambda _: self.render(), names="value")
        self.children = (
            w.HTML("<b>UNIT on one layout</b>"),
            self.layout_seed,
            self.streams,
            w.HTML("<b>the shared latent: (1 - t) z(layout) + t z(second layout)</b>"),
            w.HBox([self.other, self.source]),
            self.t,
            self.path,
        )
        self.rendered: dict[str, np.ndarray] = {}
        self.render()

    def render(self) -> np.ndarray:
        sat, true_map = generate_layout(self.layout_seed.value, self.size, **self.view)
        other_sat, other_map = generate_layout(self.other.value, self.size, **self.view)
        other = other_sat if self.source.value == "a" else other_map
        streams = translation_views(self.model, sat, true_map)
        path = interpolation_views(self.model, sat, other, self.t.value, ("a", self.source.value))
        self.streams.children = _strip(streams, self.scale).children
        self.path.children = _strip(path, self.scale).children
        self.rendered = {**streams, **path}
        self.image = streams["translation"]
        return self.image


# ---------------------------------------------------------------- ablation


def _figure_png(fig) -> np.ndarray:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    buffer.seek(0)
    return (plt.imread(buffer)[..., :3] * 255).round().astype(np.uint8)


def _read_png(path: Path) -> np.ndarray:
    import matplotlib.pyplot as plt

    return (plt.imread(path)[..., :3] * 255).round().astype(np.uint8)


def ablation_views(
    results_dir: str | Path, variant: str, seed: int = 0, baseline: float | None = None
) -> dict[str, np.ndarray]:
    """One ablation run's curves (accuracy, losses) and image grids, as uint8 images."""
    import matplotlib.pyplot as plt

    from .ablation import load_results, read_log

    root = Path(results_dir)
    runs = [r for r in load_results(root) if r["variant"] == variant and r["seed"] == seed]
    if not runs:
        raise ValueError(f"no run of {variant!r} with seed {seed} in {root}")
    run = runs[0]
    folder = root / run["folder"]
    log = read_log(root, run)
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(8, 2.8))
    steps, values = zip(*run["curve"], strict=True)
    acc.plot(steps, values, marker="o", label=variant)
    if baseline is not None:
        acc.axhline(baseline, color="grey", ls="--", label="constant baseline")
    acc.set(title="held-out pixel accuracy", xlabel="step", ylim=(0, 1))
    acc.legend(fontsize=7)
    for key in ("recon", "cycle", "gan", "dis"):
        if key in log[0]:
            loss.plot([r["step"] for r in log], [r[key] for r in log], label=key)
    loss.set(title="losses", xlabel="step", yscale="log")
    loss.legend(fontsize=7)
    fig.tight_layout()
    return {
        "curves": _figure_png(fig),
        "translations": _read_png(folder / "translations.png"),
        "samples": _read_png(folder / "samples.png"),
    }


class AblationExplorer(w.VBox):
    """Pick a variant (and seed) of the ablation; see its curves and its samples.

    ``results_dir`` defaults to the ablation shipped with the package (:data:`ablation.SHIPPED`).
    """

    def __init__(
        self, results_dir: str | Path | None = None, baseline: float | None = None, scale: int = 3
    ) -> None:
        super().__init__()
        self.add_class(EXPLORER_CLASS)
        from .ablation import SHIPPED, load_results

        results_dir = SHIPPED if results_dir is None else results_dir
        self.results_dir, self.baseline, self.scale = Path(results_dir), baseline, scale
        runs = load_results(self.results_dir)
        if not runs:
            raise ValueError(f"no ablation results in {self.results_dir}")
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        seeds = sorted({r["seed"] for r in runs})
        self.variant = w.Dropdown(options=variants, description="variant")
        self.seed = w.Dropdown(options=seeds, description="seed")
        self.curves = w.Image(format="png")
        self.translations = w.Image(format="png")
        self.samples = w.Image(format="png")
        for control in (self.variant, self.seed):
            control.observe(lambda _: self.render(), names="value")
        self.children = (
            w.HBox([self.variant, self.seed]),
            self.curves,
            w.HTML("<b>held-out satellites | translation | true map</b>"),
            self.translations,
            w.HTML(
                "<b>training samples: satellite, reconstruction, translation, cycle; "
                "then the same for maps</b>"
            ),
            self.samples,
        )
        self.rendered: dict[str, Any] = {}
        self.render()

    def render(self) -> np.ndarray:
        self.rendered = ablation_views(
            self.results_dir, self.variant.value, self.seed.value, self.baseline
        )
        self.curves.value = png_bytes(self.rendered["curves"])
        self.translations.value = png_bytes(self.rendered["translations"], self.scale)
        self.samples.value = png_bytes(self.rendered["samples"], 2)
        self.image = self.rendered["translations"]
        return self.image
