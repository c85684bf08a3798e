"""benchmarks/recipe.py: the widened patch embedding keeps the prior's function at step 0; probe rows keep their knobs."""

import importlib.util
from pathlib import Path

import pytest
import torch

import framer_nb.backbones as B
from framer_nb.adapters import widen

_spec = importlib.util.spec_from_file_location("recipe", Path(__file__).parents[1] / "benchmarks" / "recipe.py")
R = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(R)


def test_widened_embedding_is_the_same_function_at_step_0():
    stock = B.build("tiny-dit", seed=0)
    stock.grow_lr_channels()
    torch.nn.init.normal_(stock.adapter.get_input_conv(stock.model).weight)  # LR taps that are not zero
    wide = B.build("tiny-dit", seed=0)
    wide.grow_lr_channels()
    wide.model.load_state_dict(stock.model.state_dict())
    wide.adapter.set_input_conv(wide.model, widen(wide.adapter.get_input_conv(wide.model), 4))
    conv = wide.adapter.get_input_conv(wide.model)
    assert conv.kernel_size == (4, 4) and conv.stride == (2, 2) and conv.padding == (1, 1)
    x, lr, t = torch.randn(2, 48, 16, 16), torch.randn(2, 48, 16, 16), torch.full((2,), 500.0)
    with torch.no_grad():
        assert torch.allclose(wide.predict(x, t, lr), stock.predict(x, t, lr), atol=1e-5)


def test_widened_embedding_grows_wide_and_restores():
    stock_grow = B.Backbone.grow_lr_channels
    with R.widened_embedding(4):
        bb = B.build("tiny-dit", seed=0)
        bb.grow_lr_channels()
    assert B.Backbone.grow_lr_channels is stock_grow
    conv = bb.adapter.get_input_conv(bb.model)
    assert conv.kernel_size == (4, 4) and conv.in_channels == 96
    assert torch.count_nonzero(conv.weight[:, :, 0]) == 0 and torch.count_nonzero(conv.weight[:, :, :, 3]) == 0


def test_widen_rejects_odd_growth():
    with pytest.raises(ValueError, match="even amount"):
        widen(torch.nn.Conv2d(4, 8, 2, 2), 3)


def test_architecture_probes_keep_their_own_recipe_key():
    """A row of an architecture probe must not replace the row of the same TrainConfig without it."""
    base = {"backbone": "tiny-dit", "variant": "baseline", "recipe": {"lr": 2e-3}}
    wide = {**base, "recipe": {"lr": 2e-3, "embed_kernel": 4}}
    assert len(R.merged([base], [wide])) == 2


def test_rows_of_another_tiled_sampler_stay_beside_todays():
    from framer_nb.evaluate import TILING
    old = {"backbone": "tiny-dit", "variant": "baseline", "recipe": {"lr": 2e-3}, "gain_1step": 0.5}
    now = {**old, "tiling": TILING, "gain_1step": 0.6}
    assert R.merged([old], [now]) == [old, now]
    assert R.merged([old, now], [{**now, "gain_1step": 0.7}]) == [old, {**now, "gain_1step": 0.7}]


def test_ema_decay_is_capped_by_the_step_count():
    """docs/method.md §5: at step 900 every ema_decay from 0.99 up is 0.990 (diffusers' EMAModel)."""
    from diffusers.training_utils import EMAModel
    params = [torch.nn.Parameter(torch.zeros(1))]
    decays = {d: EMAModel(params, decay=d).get_decay(900) for d in (0.99, 0.995, 0.999)}
    assert decays[0.995] == decays[0.999] == 900 / 909 and abs(decays[0.99] - 900 / 909) < 2e-4
    assert EMAModel(params, decay=0.9).get_decay(900) == 0.9  # below the cap the decay is the one asked for


def test_probe_rows_record_every_knob_they_set():
    """A probe of a knob that framer_nb.config.recipe does not list must not share the current recipe's key."""
    from framer_nb.config import profile, recipe, variant, with_overrides
    train = profile("small").train
    cfg = with_overrides(train, ema_decay=0.0)
    now = recipe(train, variant("baseline"))
    assert "ema_decay" not in now  # else this test does not test the extra knobs
    row = R.row_recipe(cfg, variant("baseline"), {"ema_decay": 0.0})
    assert row == {**now, "ema_decay": 0.0}
    assert R.row_recipe(train, variant("baseline"), {"embed_kernel": 4}) == {**now, "embed_kernel": 4}
    assert R.row_recipe(with_overrides(train, lr=1e-3), variant("baseline"), {"lr": 1e-3})["lr"] == 1e-3
    rows = [{"backbone": "tiny-dit", "variant": "baseline", "recipe": r} for r in (now, row)]
    assert len(R.merged(rows[:1], rows[1:])) == 2
