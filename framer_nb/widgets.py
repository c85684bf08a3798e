"""The interactive explorer: sliders over layer and timestep, dropdowns for backbone, band mask and image.

`Explorer` keeps all logic and state in plain Python (testable without a browser); `Explorer.ui()`
wraps it in ipywidgets, and `Explorer.set()` moves the widgets too, so they always show the state the figure
was drawn from. Per-layer estimates are cached per (backbone, image, t), so moving the layer slider only
redraws, and moving the timestep runs one forward pass of a tiny model.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import plots  # noqa: F401  (its seaborn theme: the explorer's figure looks the same from the first draw)
from .backbones import Backbone
from .freq import band_masks, spectrum
from .observe import band_similarity, layer_maps, lens_for

TIMESTEPS = tuple(range(50, 1000, 50))


@dataclass
class Model:
    """A backbone ready to observe, with its lens and model-space inputs."""

    backbone: Backbone
    x0: torch.Tensor  # [N, C, H, W] model-space HR images
    lr: torch.Tensor | None
    lens: object = None
    lens_name: str = ""


def model_from(bb: Backbone, images: dict) -> Model:
    """An explorer model from a backbone and observation images (U-Nets get closed-form lens heads)."""
    from .observe import model_inputs
    x0, lr = model_inputs(bb, images)
    lens, name = lens_for(bb, x0, lr)
    return Model(bb, x0, lr, lens, name)


@dataclass
class Explorer:
    """State and computation behind the sliders."""

    models: dict[str, Model]
    image_names: list[str]
    state: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)
    controls: dict = field(default_factory=dict)  # the widgets, once `ui()` made them
    _view: tuple | None = field(default=None, repr=False)  # the widget's figure and its artists

    def __post_init__(self) -> None:
        for m in self.models.values():
            if m.lens is None and not m.lens_name:
                m.lens, m.lens_name = lens_for(m.backbone, m.x0, m.lr)
        first = next(iter(self.models))
        self.state = {"backbone": first, "space": "prediction", "mask": "radial", "image": 0, "t": 300, "layer": 0}
        self.refresh()

    def estimates(self, backbone: str, image: int, t: int, space: str = "prediction"):
        """Cached per-layer maps [L, 1, C, H, W] and final map [1, C, H, W] of one image ('prediction' or 'x0')."""
        key = (backbone, image, t)
        if key not in self._cache:
            m = self.models[backbone]
            lr = m.lr[image:image + 1] if m.lr is not None else None
            self._cache[key] = layer_maps(m.backbone, m.lens, m.x0[image:image + 1], lr, t)
        return self._cache[key][space]

    def set(self, **changes) -> dict:
        """Change any of backbone, mask, image, t, layer; recompute what depends on it; return the state."""
        unknown = set(changes) - set(self.state)
        if unknown:
            raise KeyError(f"unknown explorer control(s) {sorted(unknown)}; known: {sorted(self.state)}")
        self.state.update(changes)
        state = self.refresh()
        self._sync_controls()
        return state

    def refresh(self) -> dict:
        s = self.state
        students, teacher = self.estimates(s["backbone"], s["image"], s["t"], s["space"])
        s["layer"] = int(np.clip(s["layer"], 0, students.shape[0] - 1))
        lf, hf = band_similarity(students, teacher, s["mask"])
        s.update(n_layers=students.shape[0], lf_curve=lf[:, 0].tolist(), hf_curve=hf[:, 0].tolist(),
                 lf_at_layer=float(lf[s["layer"], 0]), hf_at_layer=float(hf[s["layer"], 0]),
                 lens=self.models[s["backbone"]].lens_name)
        return s

    def layer_images(self) -> dict[str, np.ndarray]:
        """The chosen layer's estimate and its LF / HF band images (inverse FFT of the masked spectrum)."""
        s = self.state
        students, teacher = self.estimates(s["backbone"], s["image"], s["t"], s["space"])
        est = students[s["layer"], 0]
        spec = spectrum(est)
        low, high = band_masks(spectrum(teacher[0]).abs()[None], s["mask"])
        out = {s["space"]: est}
        for band, m in (("LF band", low[0]), ("HF band", high[0])):
            out[band] = torch.fft.ifft2(torch.fft.ifftshift(spec * m, dim=(-2, -1))).real
        return {k: _to_rgb(v) for k, v in out.items()}

    def draw(self, fig=None):
        """Draw the curves with the chosen layer marked, and the layer's images, into one figure."""
        fig = fig or plt.figure(figsize=(10, 3.2))
        fig.clear()
        self.update(_layout(fig))
        return fig

    def update(self, artists: dict) -> None:
        """Put the current state into the artists of a figure laid out by `_layout`."""
        s = self.state
        layers = range(len(s["lf_curve"]))
        artists["lf"].set_data(layers, s["lf_curve"])
        artists["hf"].set_data(layers, s["hf_curve"])
        artists["marker"].set_xdata([s["layer"], s["layer"]])
        curves = artists["curves"]
        curves.set_xlim(-0.3, max(len(layers) - 0.7, 0.3))
        curves.set_title(f"{s['backbone']}, {self.image_names[s['image']]}\nt={s['t']}, {s['mask']} bands", fontsize=8)
        for (name, img), im in zip(self.layer_images().items(), artists["images"]):
            im.set_data(img)
            im.set_extent((-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
            im.axes.set_title(f"layer {s['layer']}: {name}", fontsize=8)

    def ui(self):
        """The ipywidgets front end; every control calls `set` and redraws in place."""
        import ipywidgets as W
        s = self.state
        self.controls = {
            "backbone": W.Dropdown(options=list(self.models), value=s["backbone"], description="backbone"),
            "space": W.Dropdown(options=["prediction", "x0"], value=s["space"], description="maps"),
            "mask": W.Dropdown(options=["radial", "quantile"], value=s["mask"], description="bands"),
            "image": W.Dropdown(options=[(n, i) for i, n in enumerate(self.image_names)], value=s["image"],
                                description="image"),
            "t": W.SelectionSlider(options=TIMESTEPS, value=s["t"], description="timestep", continuous_update=False),
            "layer": W.IntSlider(min=0, max=s["n_layers"] - 1, value=s["layer"], description="layer"),
        }
        # the figure goes into an Image widget as PNG bytes, not into an Output widget: papermill's nbclient mimics
        # a front end for Output widgets, sending comm messages on the shell channel while it waits for the cell's
        # reply there, and that reply can then be missed until the cell timeout (jupyter/nbclient#312)
        self._img = W.Image(format="png")
        self._redraw()
        for name, w in self.controls.items():
            w.observe(lambda change, name=name: self._on_widget(name, change["new"]), names="value")
        c = self.controls
        return W.VBox([W.HBox([c["backbone"], c["space"], c["mask"], c["image"]]), W.HBox([c["t"], c["layer"]]),
                       self._img])

    def _on_widget(self, name: str, value) -> None:
        if getattr(self, "_syncing", False) or self.state.get(name) == value:
            return
        self.set(**{name: value})  # moves the other widgets if needed and redraws

    def _sync_controls(self) -> None:
        """Move every widget to the state (after `set` from Python), without triggering their callbacks."""
        if not self.controls:
            return
        self._syncing = True
        try:
            self.controls["layer"].max = self.state["n_layers"] - 1
            for name, w in self.controls.items():
                if w.value != self.state[name]:
                    w.value = self.state[name]
        finally:
            self._syncing = False
        if hasattr(self, "_img"):
            self._redraw()

    def figure(self):
        """The explorer's one figure, updated to the state: made and laid out on first use, then only its data
        change, so a move costs the PNG and not a new figure and the garbage it leaves."""
        if self._view is None:
            fig = plt.figure(figsize=(10, 3.2))
            plt.close(fig)  # shown only through `display`, never a second time by the inline backend
            self._view = fig, _layout(fig)
        fig, artists = self._view
        self.update(artists)
        return fig

    def _redraw(self) -> None:
        buf = io.BytesIO()
        self.figure().savefig(buf, format="png", bbox_inches="tight")
        self._img.value = buf.getvalue()


def _layout(fig) -> dict:
    """The explorer's axes and artists, empty: LF/HF curves with a layer marker, and three image panels."""
    ax = fig.add_subplot(1, 4, 1)
    lf, = ax.plot([], [], "b-o", ms=3, label="LF")
    hf, = ax.plot([], [], "r-o", ms=3, label="HF")
    marker = ax.axvline(0, color="k", lw=0.8)
    ax.set(ylim=(0, 1.02), xlabel="layer", ylabel="cos sim to final")
    ax.legend(fontsize=7, loc="lower right")  # a fixed corner: the legend does not jump as the curves move
    images = []
    for k in range(3):
        a = fig.add_subplot(1, 4, k + 2)
        images.append(a.imshow(np.zeros((2, 2, 3)), interpolation="nearest"))
        a.axis("off")
    return {"curves": ax, "lf": lf, "hf": hf, "marker": marker, "images": images}


def _to_rgb(x: torch.Tensor) -> np.ndarray:
    """[C, H, W] model-space map -> displayable [H, W, 3] in [0, 1] (first 3 channels, min-max scaled)."""
    x = x[:3].float()
    x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    return x.permute(1, 2, 0).numpy()
