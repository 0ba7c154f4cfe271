"""The explorers of notebook 06: a translation explorer and an ablation explorer.

As in :mod:`unitlab.widgets`, the logic is plain functions that return uint8 images
(:func:`translation_views`, :func:`interpolation_views`, :func:`ablation_views`), and the widgets
only wire sliders and menus to them. Each widget keeps what it last drew in ``.rendered`` (a dict
of images) and ``.image`` (the main one), and setting a control's ``value`` from Python redraws
it exactly as a drag in the browser would. Each also draws its current state as one labelled
picture (``.snapshot()``), which the cell's output carries as a PNG: a notebook opened without
a kernel shows that picture where it cannot show the widget.
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
from .widgets import (
    EXPLORER_CLASS,
    StaticFallback,
    grid_rows,
    labelled_rows,
    png_bytes,
    show_rows,
    slider_layout,
    stack_images,
)

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


@torch.no_grad()
def interpolation_accuracy(
    model: UNIT, satellites: np.ndarray, maps: np.ndarray, t: float, shift: int = 0
) -> float:
    """Pixel accuracy against ``maps`` of ``G_b((1 - t) E_a(satellite) + t E_b(map'))``.

    ``map'`` is each satellite's own map (``shift=0``) or the map ``shift`` places further in
    the batch (a mismatched pair). ``t = 0`` scores the translation; ``t = 1, shift = 0`` the
    map VAE's reconstruction: if the latent space were shared, both would score alike.
    """
    from .metrics import pixel_accuracy

    z_a = encode(model, satellites, "a")
    z_b = encode(model, np.roll(maps, shift, axis=0), "b")
    return pixel_accuracy(tensor_to_uint8(model.gen_b((1 - t) * z_a + t * z_b)), maps)


def _show_strip(box: w.HBox, images: dict[str, np.ndarray], scale: int, captions: dict[str, str]):
    """Show captioned ``images`` side by side in ``box``, reusing its widgets where they fit (a
    widget made per redraw would stay alive in the kernel, and in the saved notebook's state)."""
    if len(box.children) != len(images):
        box.children = [
            w.VBox(
                [w.HTML(layout=w.Layout(width="auto")), w.Image(format="png")],
                layout=w.Layout(margin="0 6px 0 0"),
            )
            for _ in images
        ]
    for panel, (name, image) in zip(box.children, images.items(), strict=True):
        caption, view = panel.children
        caption.value = f"<b>{captions.get(name, name)}</b>"
        view.value = png_bytes(image, scale)


def _panels_png(sections: list[tuple[str, dict[str, np.ndarray], dict[str, str]]], title: str):
    """Rows of captioned images (one row per section) as one uint8 picture."""
    import matplotlib.pyplot as plt

    cols = max(len(images) for _, images, _ in sections)
    fig, axes = plt.subplots(
        len(sections), cols, figsize=(1.9 * cols, 2.25 * len(sections)), squeeze=False
    )
    for row, (heading, images, captions) in zip(axes, sections, strict=True):
        for ax in row:
            ax.axis("off")
        for ax, (name, image) in zip(row, images.items(), strict=False):
            ax.imshow(image, interpolation="nearest")
            ax.set_title(captions.get(name, name), fontsize=8)
        row[0].text(
            -0.08,
            0.5,
            heading,
            transform=row[0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _figure_png(fig)


class _Resettable:
    """Explorer controls that remember where they started: ``reset()`` puts every one back
    with a single redraw (the notebooks' demo cells drive an explorer from Python, then leave
    it where a reader should find it). Subclasses set ``start`` ({control: value}) and
    ``_quiet`` (True silences the controls' redraw callbacks), and define ``render()``."""

    start: dict[w.ValueWidget, Any]
    _quiet: bool

    def render(self) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> np.ndarray:
        """Every control back to where the explorer started; one redraw."""
        self._quiet = True
        try:
            for control, value in self.start.items():
                control.value = value
        finally:
            self._quiet = False
        return self.render()


class TranslationExplorer(_Resettable, StaticFallback, w.VBox):
    """Pick a layout, see all of UNIT's streams; interpolate between two layouts' codes.

    Controls: ``layout_seed`` and ``other`` (seeds of generated held-out layouts), ``t`` (the
    interpolation weight) and ``source`` (whether ``other`` enters as a satellite or as a map).
    ``rendered`` holds every image drawn, including both ends of the path (``"start"``: this
    layout's satellite, ``"end"``: the second layout's satellite or map); ``image`` is the
    current translation. It starts half-way along the path (``t = 0.5``) from a satellite to
    another satellite, so that the first move of *any* control changes a picture.
    """

    def __init__(
        self,
        model: UNIT,
        size: int | None = None,
        scale: int = 4,
        data: DataConfig | None = None,
    ) -> None:
        super().__init__()
        self.add_class(EXPLORER_CLASS)
        self.model, self.scale = model, scale
        self.size = size or model.cfg.image_size
        self.view = {"zoom": data.zoom, "look": data.look} if data is not None else {}
        self.layout_seed = w.IntSlider(0, 0, 999, description="layout", **slider_layout())
        self.other = w.IntSlider(1, 0, 999, description="second layout", **slider_layout())
        self.t = w.FloatSlider(
            0.5, min=0.0, max=1.0, step=0.05, description="t (0 → 1)", **slider_layout()
        )
        self.source = w.ToggleButtons(
            options=[("satellite", "a"), ("map", "b")],
            description="second as",
            style={"description_width": "120px"},
        )
        self.streams = w.HBox()
        self.path = w.HBox()
        self.controls = (self.layout_seed, self.other, self.t, self.source)
        self.start = {control: control.value for control in self.controls}
        self._quiet = False
        for control in self.controls:
            control.observe(lambda _: self._quiet or self.render(), names="value")
        self.children = (
            w.HTML("<b>1. UNIT on one held-out layout</b> (drag <i>layout</i>)"),
            self.layout_seed,
            self.streams,
            w.HTML(
                "<b>2. The shared latent: z(t) = (1 - t) E<sub>a</sub>(start) + t E(end)</b>, "
                "decoded into both domains (drag <i>t</i>; pick the end)"
            ),
            self.other,
            self.source,
            self.t,
            self.path,
        )
        self.rendered: dict[str, np.ndarray] = {}
        self.render()

    def captions(self) -> dict[str, str]:
        """What each picture is, as its caption says (keys of ``rendered``)."""
        end = "satellite" if self.source.value == "a" else "map"
        t = self.t.value
        return {
            "start": f"start (t = 0): layout {self.layout_seed.value}'s satellite",
            "as satellite": f"z({t:.2f}) as satellite",
            "as map": f"z({t:.2f}) as map",
            "end": f"end (t = 1): layout {self.other.value}'s {end}",
        }

    def render(self) -> np.ndarray:
        sat, true_map = generate_layout(self.layout_seed.value, self.size, **self.view)
        other_sat, other_map = generate_layout(self.other.value, self.size, **self.view)
        other = other_sat if self.source.value == "a" else other_map
        streams = translation_views(self.model, sat, true_map)
        path = {
            "start": sat,
            **interpolation_views(self.model, sat, other, self.t.value, ("a", self.source.value)),
            "end": other,
        }
        captions = self.captions()
        _show_strip(self.streams, streams, self.scale, {})
        _show_strip(self.path, path, self.scale, captions)
        self.rendered = {**streams, **path}
        self._drawn = (streams, path)
        self.image = streams["translation"]
        return self.image

    def snapshot(self) -> np.ndarray:
        """Both rows as drawn now, captioned, in one picture (the cell's static fallback)."""
        streams, path = self._drawn
        state = (
            f"layout {self.layout_seed.value}; path to layout {self.other.value}'s "
            f"{'satellite' if self.source.value == 'a' else 'map'} at t = {self.t.value:.2f}"
        )
        return _panels_png(
            [("UNIT's streams", streams, {}), ("latent path", path, self.captions())],
            f"translation explorer (static picture; run the cell for the live widget): {state}",
        )


# ---------------------------------------------------------------- ablation


def _figure_png(fig, tight: bool = False) -> np.ndarray:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight" if tight else None)
    plt.close(fig)
    buffer.seek(0)
    return (plt.imread(buffer)[..., :3] * 255).round().astype(np.uint8)


def _read_png(path: Path) -> np.ndarray:
    import matplotlib.pyplot as plt

    return (plt.imread(path)[..., :3] * 255).round().astype(np.uint8)


# Rows of the two grids an ablation run keeps (see ablation.run_variant and
# UNITTrainer.sample_rows): held-out translations, and the training sample grid, whose first four
# rows start from satellites and last four from maps.
TRANSLATION_ROWS = ["held-out satellite", "translation", "true map"]
SAMPLE_ROWS = [
    ("from satellites", ["satellite", "reconstruction", "translation → map", "cycle"]),
    ("from maps", ["map", "reconstruction", "translation → satellite", "cycle"]),
]

PANEL_TITLES = {
    "translations": "held-out satellites, one per column",
    "from satellites": "training batch, from satellites",
    "from maps": "training batch, from maps",
}


def ablation_views(
    results_dir: str | Path, variant: str, seed: int = 0, baseline: float | None = None
) -> dict[str, np.ndarray]:
    """One ablation run's curves (accuracy, losses) and image grids, as uint8 images."""
    from .ablation import load_results

    root = Path(results_dir)
    return _run_views(root, _find_run(load_results(root), variant, seed, root), baseline)


def _run_views(root: Path, run: dict[str, Any], baseline: float | None) -> dict[str, np.ndarray]:
    """:func:`ablation_views` of a run record already read from ``root``'s results."""
    import matplotlib.pyplot as plt

    from .ablation import read_log

    folder = root / run["folder"]
    log = read_log(root, run)
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(8, 2.4))
    steps, values = zip(*run["curve"], strict=True)
    acc.plot(steps, values, marker="o", label=run["variant"])
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


def _find_run(runs: list[dict[str, Any]], variant: str, seed: int, root: Path) -> dict[str, Any]:
    """The record of ``variant`` and ``seed`` among ``runs`` (read from ``root``)."""
    found = [r for r in runs if r["variant"] == variant and r["seed"] == seed]
    if not found:
        raise ValueError(f"no run of {variant!r} with seed {seed} in {root}")
    return found[0]


def labelled_grids(views: dict[str, np.ndarray]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The rows of an ablation run's grids with what each shows: ``{"translations": [(label,
    row), ...], "from satellites": [...], "from maps": [...]}``."""
    out = {
        "translations": list(
            zip(TRANSLATION_ROWS, grid_rows(views["translations"], 3), strict=True)
        )
    }
    samples = grid_rows(views["samples"], sum(len(labels) for _, labels in SAMPLE_ROWS))
    for name, labels in SAMPLE_ROWS:
        out[name], samples = list(zip(labels, samples, strict=False)), samples[len(labels) :]
    return out


def _labelled_png(rows: list[tuple[str, np.ndarray]], title: str, scale: int = 2) -> np.ndarray:
    """Grid rows stacked, each labelled on the left, as one picture (``scale`` px per pixel)."""
    import matplotlib.pyplot as plt

    image = np.concatenate([row for _, row in rows])
    height, width = image.shape[:2]
    fig, ax = plt.subplots(figsize=(width * scale / 80, height * scale / 80))
    ax.imshow(image, interpolation="nearest")
    step = height / len(rows)
    ax.set_yticks([(i + 0.5) * step for i in range(len(rows))], [label for label, _ in rows])
    ax.set_xticks([])
    ax.tick_params(length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    return _figure_png(fig, tight=True)


class AblationExplorer(_Resettable, StaticFallback, w.VBox):
    """Pick a variant (and seed) of the ablation; see its curves and its samples.

    One screen tall: a line of numbers under the menus, the curves, then the held-out
    translations and the training samples with every row labelled. ``results_dir`` defaults to
    the ablation shipped with the package (:data:`ablation.SHIPPED`).
    """

    def __init__(
        self, results_dir: str | Path | None = None, baseline: float | None = None, scale: int = 2
    ) -> None:
        super().__init__()
        self.add_class(EXPLORER_CLASS)
        from .ablation import PAPER, SHIPPED, load_results

        results_dir = SHIPPED if results_dir is None else results_dir
        self.results_dir, self.baseline, self.scale = Path(results_dir), baseline, scale
        self.paper = PAPER
        self.runs = runs = load_results(self.results_dir)  # read once, not per redraw
        if not runs:
            raise ValueError(f"no ablation results in {self.results_dir}")
        variants = list(dict.fromkeys(r["variant"] for r in runs))
        seeds = sorted({r["seed"] for r in runs})
        self.variant = w.Dropdown(
            options=variants, description="variant", layout=w.Layout(width="320px")
        )
        self.seed = w.Dropdown(options=seeds, description="seed", layout=w.Layout(width="160px"))
        self.summary = w.HTML()
        self.curves = w.Image(format="png")
        self.grids = w.VBox()
        self.panels: dict[str, w.VBox] = {}
        self.start = {self.variant: self.variant.value, self.seed: self.seed.value}
        self._quiet = False
        for control in (self.variant, self.seed):
            control.observe(lambda _: self._quiet or self.render(), names="value")
        self.children = (
            w.HBox([self.variant, self.seed]),
            self.summary,
            self.curves,
            self.grids,
        )
        self.rendered: dict[str, Any] = {}
        self.render()

    def render(self) -> np.ndarray:
        run = _find_run(self.runs, self.variant.value, self.seed.value, self.results_dir)
        self.rendered = _run_views(self.results_dir, run, self.baseline)
        self.rows = labelled_grids(self.rendered)
        self.summary.value = self._summary(run)
        self.curves.value = png_bytes(self.rendered["curves"])
        if not self.panels:  # built once, then only their pictures change
            self.panels = {
                name: labelled_rows(
                    [r for _, r in rows],
                    [label for label, _ in rows],
                    self.scale,
                    PANEL_TITLES[name],
                )
                for name, rows in self.rows.items()
            }
            sides = [
                w.VBox([self.panels[name]], layout=w.Layout(margin="0 24px 0 0"))
                for name in ("from satellites", "from maps")
            ]
            self.grids.children = [self.panels["translations"], w.HBox(sides)]
        for name, rows in self.rows.items():
            show_rows(self.panels[name], [row for _, row in rows], self.scale)
        self.image = self.rendered["translations"]
        return self.image

    def _summary(self, run: dict[str, Any]) -> str:
        parts = [
            f"final accuracy <b>{run['accuracy']:.3f}</b>",
            f"best during training {run['best']:.3f}",
        ]
        if self.baseline is not None:
            parts.append(f"constant map {self.baseline:.3f}")
        if run["variant"] in self.paper:
            parts.append(f"paper {self.paper[run['variant']]:.3f}")
        return f"{run['variant']}, seed {run['seed']}, {run['steps']} steps: " + "; ".join(parts)

    def snapshot(self) -> np.ndarray:
        """The curves and the labelled grids as drawn now (the cell's static fallback)."""
        import html
        import re

        summary = html.unescape(re.sub("<[^>]+>", "", self.summary.value))
        grids = {name: _labelled_png(rows, PANEL_TITLES[name]) for name, rows in self.rows.items()}
        samples = stack_images([grids["from satellites"], grids["from maps"]], axis=1)
        title = _text_png(
            "ablation explorer (static picture; run the cell for the live widget)\n" + summary
        )
        return stack_images(
            [title, self.rendered["curves"], grids["translations"], samples], axis=0
        )


def _text_png(text: str) -> np.ndarray:
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8, 0.5))
    fig.text(0.01, 0.5, text, va="center", fontsize=9)
    return _figure_png(fig, tight=True)
