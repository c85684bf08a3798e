import pytest
import torch
from diffusers import AutoencoderKL

from framer_nb import backbones as B
from framer_nb import diffusion as D
from framer_nb import taps
from framer_nb.config import FramerConfig
from framer_nb.step import training_loss

SMALL_DIT = dict(num_layers=3, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16,
                 dual_attention_layers=(0,))


def _inputs(bb, b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, bb.out_channels, size, size, generator=g)
    lr = torch.randn(b, bb.lr_channels, size, size, generator=g) if bb.lr_channels else None
    return x, D.sample_time(bb.objective, b, g), lr


def _heads(bb):
    return taps.UNetHeads(taps.unet_block_channels(bb.model), bb.out_channels) if bb.spec.kind == "unet" else None


def test_sd3_lens_last_block_equals_output_and_taps_are_transparent():
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    with torch.no_grad():
        plain = B.predict(bb, x, t)
        with taps.tap(bb.model) as tp:
            tapped = B.predict(bb, x, t)
            per_layer = tp.predictions()
    assert per_layer.shape == (3, 2, 3, 16, 16)
    assert torch.equal(plain, tapped)
    assert torch.allclose(per_layer[-1], plain, atol=1e-6)
    assert not torch.allclose(per_layer[0], plain, atol=1e-3)
    assert all(not blk._forward_hooks for blk in bb.model.transformer_blocks)
    assert not bb.model._forward_pre_hooks and not bb.model.time_text_embed._forward_hooks


def test_unet_lens_shapes_and_hook_removal():
    bb = B.build("tiny-unet")
    heads = _heads(bb)
    x, t, _ = _inputs(bb)
    with torch.no_grad(), taps.tap(bb.model, heads) as tp:
        out = B.predict(bb, x, t)
        per_layer = tp.predictions()
    assert per_layer.shape == (taps.num_layers(bb.model), 2, 3, 16, 16) == (7, 2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(out, B.predict(bb, x, t))
    assert all(not m._forward_hooks for m in bb.model.up_blocks)
    with pytest.raises(ValueError, match="UNetHeads"), taps.tap(bb.model):
        pass


def test_fit_unet_heads_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(3, 4, 4, 4, generator=g), torch.randn(3, 2, 8, 8, generator=g)]
    true = taps.UNetHeads([4, 2], 3)
    with torch.no_grad():
        target = true([feats[0]], (8, 8))[0]
    fitted = taps.fit_unet_heads(taps.UNetHeads([4, 2], 3), feats, target, ridge=1e-8)
    assert torch.allclose(fitted.convs[0].weight, true.convs[0].weight, atol=1e-4)
    assert torch.allclose(fitted.convs[0].bias, true.convs[0].bias, atol=1e-4)


def test_gradient_reaches_model_only_through_students():
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    from framer_nb.losses import framer_loss
    grads = []
    for detach in (False, True):
        bb.model.zero_grad()
        with taps.tap(bb.model) as tp:
            out = B.predict(bb, x, t)
            students = tp.predictions()[:-1]
        teacher = out.detach() if detach else out
        framer_loss(students, teacher, neg_layers=[1, 0]).distill.backward()
        grads.append(torch.cat([p.grad.flatten() for p in bb.model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-unet"])
def test_grown_lr_channels_keep_prior_behaviour(name):
    bb = B.build(name, **(SMALL_DIT if name == "tiny-dit" else {}))
    x, t, _ = _inputs(bb)
    with torch.no_grad():
        before = B.predict(bb, x, t)
        B.grow_input_channels(bb, 3)
        after = B.predict(bb, x, t, torch.randn_like(x))
    assert bb.lr_channels == 3 and bb.model.config.in_channels == 6
    assert torch.allclose(before, after, atol=1e-6)
    with pytest.raises(ValueError, match="LR"):
        B.predict(bb, x, t)


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-unet"])
def test_one_training_step_on_cpu(name):
    bb = B.build(name, **(SMALL_DIT if name == "tiny-dit" else {}))
    B.grow_input_channels(bb, 3)
    heads = _heads(bb)
    params = list(bb.model.parameters()) + (list(heads.parameters()) if heads else [])
    opt = torch.optim.AdamW(params, lr=1e-3)
    before = [p.detach().clone() for p in params]
    x0, _, lr = _inputs(bb, b=3)
    step = training_loss(bb, x0, lr, FramerConfig(), heads, torch.Generator().manual_seed(0))
    step.total.backward()
    opt.step()
    assert torch.isfinite(step.total) and step.framer.distill > 0
    assert step.total.item() == pytest.approx(step.objective.item() + 0.1 * step.framer.distill.item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before, params))


def _tiny_vae():
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         norm_num_groups=4, layers_per_block=1)


def test_sd35_loading_path_round_trip(tmp_path):
    cfg = dict(B.SD35_MEDIUM, num_layers=2, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16,
               joint_attention_dim=16, pooled_projection_dim=8, in_channels=4, out_channels=4, sample_size=8,
               pos_embed_max_size=16, dual_attention_layers=(0,))
    saved = B.build("sd35-medium", **cfg)
    saved.model.save_pretrained(tmp_path / "transformer")
    _tiny_vae().save_pretrained(tmp_path / "vae")
    loaded = B.load("sd35-medium", str(tmp_path), lr_channels=4)
    assert loaded.vae is not None and loaded.lr_channels == 4
    x, t, _ = _inputs(saved, size=8)
    with torch.no_grad():
        ref = B.predict(saved, x, t)
        assert torch.allclose(B.predict(loaded, x, t, torch.randn_like(x)), ref, atol=1e-5)
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = B.to_model_space(loaded, images)
        assert z.shape == (1, 4, 8, 8) and B.to_pixels(loaded, z).shape == images.shape
    # a fine-tuned model with grown channels reloads with its LR channels recognised
    loaded.model.save_pretrained(tmp_path / "ft")
    again = B.load("sd35-medium", str(tmp_path / "ft"), with_vae=False)
    assert again.lr_channels == 4


def test_sd2_loading_path_round_trip(tmp_path):
    cfg = dict(B.SD2_BASE, block_out_channels=(8, 16, 16, 16), cross_attention_dim=8, attention_head_dim=(2, 2, 2, 2),
               norm_num_groups=4, layers_per_block=1, sample_size=8)
    saved = B.build("sd2-base", **cfg)
    saved.model.save_pretrained(tmp_path)  # bare model folder, no pipeline layout
    loaded = B.load("sd2-base", str(tmp_path), with_vae=False)
    x, t, _ = _inputs(saved, size=16)
    with torch.no_grad():
        assert torch.allclose(B.predict(loaded, x, t), B.predict(saved, x, t), atol=1e-5)
    assert loaded.objective.schedule == "scaled_linear"


def test_unknown_names_are_clear():
    with pytest.raises(KeyError, match="tiny-dit"):
        B.build("sd9")
