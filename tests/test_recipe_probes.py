"""research/recipe.py: probe rows keep every knob they set, so rows stay comparable as defaults change."""

import importlib.util
from pathlib import Path

import torch

from framer_nb.config import profile, variant, with_overrides

_spec = importlib.util.spec_from_file_location("recipe", Path(__file__).parents[1] / "research" / "recipe.py")
R = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(R)


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
    """A probe of a knob that `recipe` does not list must not share the current recipe's key."""
    train = profile("small").train
    now = R.recipe(train, variant("baseline"))
    assert "ema_decay" not in now and now["head_grad"] is None  # the baseline has no FRAMER head to freeze
    row = R.row_recipe(with_overrides(train, ema_decay=0.0), variant("baseline"), {"ema_decay": 0.0})
    assert row == {**now, "ema_decay": 0.0}
    assert R.row_recipe(with_overrides(train, lr=1e-3), variant("baseline"), {"lr": 1e-3})["lr"] == 1e-3
    assert R.recipe(train.__class__(backbone="tiny-dit"), variant("framer"))["head_grad"] is False
    rows = [{"backbone": "tiny-dit", "variant": "baseline", "recipe": r} for r in (now, row)]
    assert len(R.merged(rows[:1], rows[1:])) == 2


def test_committed_recipe_rows_are_all_scored_with_todays_tiling():
    import json

    from framer_nb.evaluate import TILING
    rows = json.loads((Path(__file__).parents[1] / "research" / "results" / "recipe.json").read_text())["results"]
    assert rows and {r["tiling"] for r in rows} == {TILING}
