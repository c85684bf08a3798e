import numpy as np
import pytest
import torch

from framer_nb import backbones as B
from framer_nb.config import profile
from framer_nb.observe import band_similarity, layer_maps, observation_images
from framer_nb.widgets import Explorer, model_from


@pytest.fixture(scope="module")
def explorer():
    images = observation_images(profile("smoke"), size=64)
    dit = B.build("tiny-dit", num_layers=3, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16)
    unet = B.build("tiny-unet")
    models = {"dit": model_from(dit, images), "unet": model_from(unet, images)}
    return Explorer(models, images["names"])


def test_sliders_drive_the_displayed_state(explorer):
    s = explorer.set(backbone="dit", layer=1, t=700, mask="radial", image=2, space="x0")
    assert s["n_layers"] == 3 and s["layer"] == 1 and s["lens"] == "shared output head"
    m = explorer.models["dit"]
    students, teacher = layer_maps(m.backbone, None, m.x0[2:3], None, 700)["x0"]
    assert students.shape[-1] == 64  # the explorer shows the spectral view: pixels, not the unshuffled space
    lf, hf = band_similarity(students, teacher, "radial")
    assert s["lf_at_layer"] == pytest.approx(lf[1, 0].item(), abs=1e-6)
    assert s["hf_curve"] == pytest.approx(hf[:, 0].tolist(), abs=1e-6)
    assert s["lf_curve"][-1] == pytest.approx(1.0, abs=1e-5)  # the last block's lens is the final output


def test_switching_backbone_and_mask(explorer):
    s = explorer.set(backbone="unet", layer=99, mask="quantile")
    assert s["n_layers"] == 7 and s["layer"] == 6 and s["lens"] == "closed-form 1x1 heads"
    imgs = explorer.layer_images()
    assert set(imgs) == {"x0", "LF band", "HF band"} and imgs["x0"].shape == (64, 64, 3)
    with pytest.raises(KeyError, match="unknown explorer control"):
        explorer.set(colour="red")


def test_layer_moves_hit_the_cache(explorer):
    explorer.set(backbone="dit", t=300, image=0)
    n = len(explorer._cache)
    for layer in range(3):
        explorer.set(layer=layer)
    assert len(explorer._cache) == n  # only the timestep/image/backbone trigger a forward pass
    fig = explorer.draw()
    assert len(fig.axes) == 4


def test_ui_builds_and_reacts_and_python_moves_the_widgets():
    images = observation_images(profile("smoke"), size=64)
    dit = B.build("tiny-dit", num_layers=2, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16)
    ex = Explorer({"dit": model_from(dit, images)}, images["names"])
    box = ex.ui()
    ex.controls["layer"].value = 1
    ex.controls["t"].value = 800
    assert ex.state["layer"] == 1 and ex.state["t"] == 800 and box is not None
    ex.controls["space"].value = "x0"
    assert ex.state["space"] == "x0" and torch.is_tensor(ex.estimates("dit", 0, 800, "x0")[0])
    ex.set(t=700, mask="quantile", layer=0)  # from Python after ui(): the widgets follow (they used not to)
    assert ex.controls["t"].value == 700 and ex.controls["mask"].value == "quantile" and ex.controls["layer"].value == 0
    ex.controls["mask"].value = "radial"  # and a widget change after that still takes effect
    assert ex.state["mask"] == "radial"


def test_the_widget_figure_is_updated_in_place_and_shows_the_state():
    images = observation_images(profile("smoke"), size=64)
    dit = B.build("tiny-dit", num_layers=3, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16)
    ex = Explorer({"dit": model_from(dit, images)}, images["names"])
    ex.ui()
    fig, artists = ex._view
    assert ex.figure() is fig
    snapshot = ex.draw()  # a separate figure (the notebook's saved snapshot) leaves the widget's alone
    ex.controls["layer"].value = 2
    ex.controls["t"].value = 800
    assert ex._view[0] is fig and snapshot is not fig
    assert list(artists["marker"].get_xdata()) == [2, 2] and "t=800" in artists["curves"].get_title()
    shown = [im.get_array() for im in artists["images"]]
    for want, got in zip(ex.layer_images().values(), shown):
        assert np.array_equal(np.asarray(got), want)
    assert np.allclose(artists["hf"].get_ydata(), ex.state["hf_curve"])


def test_the_widget_shows_the_figure_as_png_without_an_output_widget():
    """An Output widget makes papermill's nbclient send on the shell channel while it waits there for the cell's
    reply, which it can then miss until the cell timeout (jupyter/nbclient#312): the explorer uses an Image."""
    import ipywidgets as W
    images = observation_images(profile("smoke"), size=64)
    dit = B.build("tiny-dit", num_layers=3, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16)
    ex = Explorer({"dit": model_from(dit, images)}, images["names"])
    box = ex.ui()

    def leaves(w):
        return [x for c in getattr(w, "children", ()) for x in leaves(c)] or [w]
    assert not any(isinstance(w, W.Output) for w in leaves(box))
    (img,) = [w for w in leaves(box) if isinstance(w, W.Image)]
    first = img.value
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    ex.controls["layer"].value = 2
    assert img.value[:8] == b"\x89PNG\r\n\x1a\n" and img.value != first  # the move redrew it
