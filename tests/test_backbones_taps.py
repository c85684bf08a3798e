import json
import math

import pytest
import torch

from framer_nb import backbones as B
from framer_nb import diffusion as D
from framer_nb import recompute, taps
from framer_nb.adapters import SD3, UNET
from framer_nb.config import FramerConfig
from framer_nb.spaces import PixelSpace, shuffle, unshuffle
from framer_nb.step import training_loss
from framer_nb.toy import make_pipeline

SMALL_DIT = dict(num_layers=3, attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16)


def _inputs(bb, b=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, bb.out_channels, size, size, generator=g)
    lr = torch.randn(b, bb.lr_channels, size, size, generator=g) if bb.lr_channels else None
    return x, D.sample_time(bb.objective, b, g), lr


def test_sd3_lens_last_block_equals_output_and_taps_are_transparent():
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    with torch.no_grad():
        plain = bb.predict(x, t)
        with bb.lens() as tp:
            tapped = bb.predict(x, t)
            per_layer = tp.predictions()
    assert per_layer.shape == (3, 2, 48, 16, 16)
    assert torch.equal(plain, tapped)
    assert torch.allclose(per_layer[-1], plain, atol=1e-5)
    assert not torch.allclose(per_layer[0], plain, atol=1e-3)
    assert bb.num_students == 2 and bb.students(per_layer, x, t).shape[0] == 2  # the last block is the output
    assert all(not blk._forward_hooks for blk in bb.model.transformer_blocks)
    assert not bb.model._forward_pre_hooks and not bb.model.time_text_embed._forward_hooks


def test_sd3_lens_gradients_match_without_checkpointing(monkeypatch):
    # on accelerators the lens recomputes norm_out / proj_out in the backward pass: gradients equal the plain
    # computation's (ON_CPU forces that path here)
    monkeypatch.setattr(recompute, "ON_CPU", True)
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    grads = []
    for checkpointed in (True, False):
        bb.model.zero_grad()
        with bb.lens() as tp:
            bb.predict(x, t)
            maps = tp.predictions() if checkpointed else torch.stack([_plain_head(bb.model, f, tp)
                                                                      for f in tp.features])
        maps.pow(2).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in bb.model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def _plain_head(model, tokens, tp):
    h = model.proj_out(model.norm_out(tokens, tp.temb))
    p, c = model.config.patch_size, model.out_channels
    H, W = tp.size
    h = h.reshape(h.shape[0], H // p, W // p, p, p, c)
    return torch.einsum("nhwpqc->nchpwq", h).reshape(h.shape[0], c, H, W)


def test_unet_lens_shapes_and_hook_removal():
    bb = B.build("tiny-unet")
    heads = bb.make_heads()
    x, t, _ = _inputs(bb)
    with torch.no_grad(), bb.lens(heads) as tp:
        out = bb.predict(x, t)
        per_layer = tp.predictions()
    assert per_layer.shape == (7, 2, 48, 16, 16) and bb.num_students == 7
    with torch.no_grad():
        assert torch.equal(out, bb.predict(x, t))
    assert all(not m._forward_hooks for m in bb.model.up_blocks)
    with pytest.raises(ValueError, match="UNetHeads"), bb.lens(None):
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
        with bb.lens() as tp:
            out = bb.predict(x, t)
            students = bb.students(tp.predictions(), x, t)
        teacher = out.detach() if detach else out
        framer_loss(students, teacher, neg_layers=[1, 0]).distill.backward()
        grads.append(torch.cat([p.grad.flatten() for p in bb.model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0 and torch.equal(grads[0], grads[1])


def test_frozen_head_lens_gives_the_same_maps_and_trains_only_the_blocks():
    # head_grad=False: the students' maps are unchanged, but a loss on them no longer moves the output head
    # (norm_out, proj_out) that the model's own prediction uses; the blocks still learn from it
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    head = [p for n, p in bb.model.named_parameters() if n.startswith(("norm_out.", "proj_out."))]
    maps, grads = [], []
    for head_grad in (True, False):
        bb.model.zero_grad()
        with bb.lens(head_grad=head_grad) as tp:
            bb.predict(x, t)
            per_layer = tp.predictions()
        per_layer[:-1].pow(2).mean().backward()
        maps.append(per_layer.detach())
        grads.append(([p.grad is not None and p.grad.abs().sum() > 0 for p in head],
                      bb.model.transformer_blocks[0].attn.to_q.weight.grad.abs().sum()))
    assert torch.equal(maps[0], maps[1])
    assert all(grads[0][0]) and not any(grads[1][0])
    assert grads[0][1] > 0 and grads[1][1] > 0
    assert training_loss(bb, x, None, FramerConfig(head_grad=False), generator=torch.Generator().manual_seed(0)
                         ).framer.distill.isfinite()


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-unet"])
def test_grown_lr_channels_keep_prior_behaviour(name):
    bb = B.build(name, **(SMALL_DIT if name == "tiny-dit" else {}))
    x, t, _ = _inputs(bb)
    with torch.no_grad():
        before = bb.predict(x, t)
        bb.grow_lr_channels()
        after = bb.predict(x, t, torch.randn_like(x))
    assert bb.lr_channels == 48 and bb.model.config.in_channels == 96
    assert torch.allclose(before, after, atol=1e-6)
    with pytest.raises(ValueError, match="LR"):
        bb.predict(x, t)


def test_lr_condition_adds_the_lr_detail_in_pixels():
    space = PixelSpace(4)
    flat = space.encode(torch.full((2, 3, 64, 64), 0.3))
    assert B.lr_condition(space, flat, 0.0) is flat  # gain 0: the LR alone
    cond = B.lr_condition(space, flat, 16.0)
    assert cond.shape == (2, 96, 16, 16) and torch.equal(cond[:, :48], flat)
    assert cond[:, 48:].abs().max() < 1e-5  # a flat image has no detail
    g = torch.Generator().manual_seed(0)
    px = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    detail = space.decode(B.lr_condition(space, space.encode(px), 16.0)[:, 48:]) / 16.0
    blurred = px - detail  # what the detail leaves is smooth: a much smaller pixel-to-pixel difference
    assert blurred.diff(dim=-1).abs().mean() < 0.1 * px.diff(dim=-1).abs().mean()
    assert torch.allclose(B.lr_condition(space, space.encode(px), 4.0)[:, 48:] * 4,
                          B.lr_condition(space, space.encode(px), 16.0)[:, 48:], atol=1e-5)
    with pytest.raises(ValueError, match="larger than 12 px"):
        B.lr_condition(space, space.encode(torch.rand(1, 3, 12, 12)), 16.0)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0])
def test_separable_gaussian_blur_equals_torchvisions_2d_blur(sigma):
    from torchvision.transforms import functional as TF
    px = torch.rand(2, 3, 40, 52, generator=torch.Generator().manual_seed(1))
    k = 2 * math.ceil(3 * sigma) + 1
    assert torch.allclose(B.gaussian_blur(px, sigma), TF.gaussian_blur(px, [k, k], [sigma, sigma]), atol=1e-6)


def test_lr_detail_channels_grow_zero_initialised_and_must_match():
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    with torch.no_grad():
        before = bb.predict(x, t)
        bb.lr_detail = 16.0
        bb.grow_lr_channels()
        after = bb.predict(x, t, torch.randn_like(x))
    assert bb.lr_channels == 96 and bb.model.config.in_channels == 144
    assert torch.allclose(before, after, atol=1e-6)
    bb.lr_detail = 0.0  # a condition of another width than the channels grown for it: named, not a shape error
    with pytest.raises(ValueError, match="96 LR channels, but its LR condition"):
        bb.predict(x, t, torch.randn_like(x))


def test_lr_detail_needs_a_pixel_space():
    from diffusers import AutoencoderKL

    from framer_nb.spaces import VAESpace
    vae = AutoencoderKL(block_out_channels=(8,), latent_channels=4, norm_num_groups=8)
    with pytest.raises(ValueError, match="need a pixel space"):
        B.lr_condition(VAESpace(vae), torch.zeros(1, 4, 8, 8), 16.0)


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-unet"])
def test_one_training_step_on_cpu(name):
    bb = B.build(name, **(SMALL_DIT if name == "tiny-dit" else {}))
    bb.grow_lr_channels()
    heads = bb.make_heads()
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


def test_pixel_unshuffle_space_is_lossless_and_framer_sees_pixels():
    space = PixelSpace(4)
    x = torch.rand(2, 3, 64, 64)
    z = space.encode(x)
    assert z.shape == (2, 48, 16, 16) and torch.equal(space.decode(z), x)
    layers = torch.stack([z, 2 * z])  # leading layer axes survive the spectral view
    assert torch.equal(space.spectral(layers)[1], 2 * x)


@pytest.mark.parametrize("r", [2, 4])
def test_shuffle_helpers_equal_torch_pixel_shuffle_with_leading_axes(r):
    z = torch.randn(2, 3, 3 * r * r, 5, 6, requires_grad=True)
    ref = torch.nn.functional.pixel_shuffle(z.reshape(6, 3 * r * r, 5, 6), r).reshape(2, 3, 3, 5 * r, 6 * r)
    out = shuffle(z, r)
    assert torch.equal(out, ref)
    w = torch.randn_like(ref)
    (grad,) = torch.autograd.grad((out * w).sum(), z)
    (grad_ref,) = torch.autograd.grad((ref * w).sum(), z)
    assert torch.equal(grad, grad_ref)
    x = torch.randn(2, 3, 5 * r, 6 * r)
    assert torch.equal(unshuffle(x, r), torch.nn.functional.pixel_unshuffle(x, r))
    with pytest.raises(ValueError, match="divisible"):
        unshuffle(torch.randn(1, 3, 5 * r + 1, 6 * r), r)


@pytest.mark.parametrize("name", ["sd35-medium", "sd2-base"])
def test_pipeline_folder_loads_with_its_vae_scheduler_and_text_encoders(tmp_path, name):
    folder = make_pipeline(name, tmp_path / "pipe")
    bb = B.load(name, folder, lr_channels=4, prompt_cache=tmp_path / "prompts")
    assert bb.lr_channels == 4 and bb.space.downscale == 2 and bb.space.channels() == 4
    assert bb.objective == (D.Objective("flow", shift=3.0) if name == "sd35-medium" else
                            D.Objective("ddpm", 0.00085, 0.012, "scaled_linear"))
    # the empty-prompt conditioning comes from the pipeline's text encoders, not zeros; cached on disk
    ctx = bb.context["encoder_hidden_states"]
    assert ctx.shape[0] == 1 and ctx.abs().sum() > 0 and list((tmp_path / "prompts").iterdir())
    captions = B.prompt_context(bb.spec, folder, ["a cat", "a dog"], tmp_path / "prompts")
    assert not torch.equal(captions["encoder_hidden_states"][0], captions["encoder_hidden_states"][1])
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = bb.to_model(images)
        assert z.shape == (1, 4, 8, 8) and bb.to_pixels(z).shape == images.shape
        x, t, lr = _inputs(bb, size=8)
        assert bb.predict(x, t, lr).shape == x.shape
    bb.model.save_pretrained(tmp_path / "ft")  # a fine-tuned model reloads with its LR channels recognised
    again = B.load(name, tmp_path / "ft", with_vae=False)
    assert again.lr_channels == 4 and again.context["encoder_hidden_states"].abs().sum() == 0  # no encoders: zeros


def test_v_prediction_scheduler_gives_a_v_objective(tmp_path):
    folder = make_pipeline("sd2-base", tmp_path / "pipe", text_encoders=False)
    cfg_file = folder / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**cfg, "prediction_type": "v_prediction"}))
    bb = B.load("sd2-base", folder)
    assert bb.objective.prediction == "v"
    x0, noise, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), torch.tensor([100.0, 900.0])
    x_t = D.add_noise(bb.objective, x0, noise, t)
    assert torch.allclose(D.to_x0(bb.objective, D.target(bb.objective, x0, noise, t), x_t, t), x0, atol=1e-5)


@pytest.mark.parametrize("name,students,latent", [("sd35-medium", 23, 16), ("sd2-base", 9, 4)])
def test_real_configs_on_the_meta_device(name, students, latent):
    # the real SD3.5-medium and SD2-base shapes: LR channels, lens outputs and student count, no memory allocated
    bb = B.build(name, device="meta")
    bb.grow_lr_channels(latent)
    assert bb.lr_channels == latent and bb.model.config.in_channels == 2 * latent
    assert B.spec(name).adapter.get_input_conv(bb.model).weight.is_meta
    heads = bb.make_heads()
    heads = heads.to("meta") if heads is not None else None
    x = torch.zeros(1, latent, 64, 64, device="meta")
    bb.context = {k: torch.zeros(v.shape, device="meta") for k, v in bb.context.items()}
    with torch.no_grad(), bb.lens(heads) as tp:
        out = bb.predict(x, torch.full((1,), 500.0, device="meta"), torch.zeros_like(x))
        per_layer = tp.predictions()
    assert out.shape == x.shape and per_layer.shape == (students + (name == "sd35-medium"), 1, latent, 64, 64)
    assert bb.num_students == students


def test_unknown_names_and_folders_are_clear(tmp_path):
    with pytest.raises(KeyError, match="tiny-dit"):
        B.build("sd9")
    with pytest.raises(FileNotFoundError, match="no such"):
        B.load("sd2-base", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a diffusers pipeline"):
        B.load("sd2-base", tmp_path / "empty")
    assert SD3.family == "sd3" and UNET.family == "unet"


def _reference_lens(model, features, temb, size, frozen=False):
    """The lens spelled out: the model's own norm_out(tokens, temb) and proj_out modules, one layer at a time (with
    their parameters detached when `frozen`)."""
    p, c = model.config.patch_size, model.out_channels
    H, W = size

    def call(module, *args):
        params = {n: (q.detach() if frozen else q) for n, q in module.named_parameters()}
        return torch.func.functional_call(module, params, args)
    maps = []
    for tokens in features:
        h = call(model.proj_out, call(model.norm_out, tokens, temb))
        h = h.reshape(tokens.shape[0], H // p, W // p, p, p, c)
        maps.append(torch.einsum("nhwpqc->nchpwq", h).reshape(tokens.shape[0], c, H, W))
    return torch.stack(maps)


@pytest.mark.parametrize("config", [SMALL_DIT, dict(num_layers=5, attention_head_dim=8, num_attention_heads=3,
                                                    caption_projection_dim=24, dual_attention_layers=(0, 1),
                                                    qk_norm="rms_norm")], ids=["tiny", "sd35-shaped"])
@pytest.mark.parametrize("per_call_bytes", [0, 10 ** 9], ids=["one-layer-calls", "all-layers-in-one-call"])
@pytest.mark.parametrize("head_grad", [True, False])
def test_batched_lens_equals_the_per_layer_head_in_values_and_gradients(config, per_call_bytes, head_grad):
    bb = B.build("tiny-dit", **config)
    x, t, _ = _inputs(bb)
    saved = dict(taps.LENS_CHUNK_BYTES)
    taps.set_lens_chunk_bytes(per_call_bytes, device="cpu")
    try:
        results = []
        for lens in ("batched", "reference"):
            bb.model.zero_grad()
            with bb.lens(head_grad=head_grad) as tp:
                bb.predict(x, t)
                if lens == "batched":
                    assert taps.layers_per_call(tp.features[0], len(tp.features)) == \
                        (1 if per_call_bytes == 0 else len(tp.features))
                    maps = tp.predictions()
                else:
                    temb = tp.temb if head_grad else tp.temb.detach()
                    maps = _reference_lens(bb.model, tp.features, temb, tp.size, frozen=not head_grad)
            maps.pow(2).mean().backward()
            results.append((maps.detach(), {n: p.grad.clone() for n, p in bb.model.named_parameters()
                                            if p.grad is not None}))
    finally:
        taps.LENS_CHUNK_BYTES.update(saved)
    (m1, g1), (m2, g2) = results
    if per_call_bytes == 0:
        assert torch.equal(m1, m2)  # one layer per call: bit for bit
    else:
        torch.testing.assert_close(m1, m2, rtol=1e-5, atol=1e-6)
    assert g1.keys() == g2.keys() and len(g1) > 0
    assert head_grad == any(n.startswith(("norm_out.", "proj_out.")) for n in g1)
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], rtol=1e-4, atol=1e-6)


def test_batched_lens_recomputed_in_backward_gives_the_same_gradients():
    bb = B.build("tiny-dit", **SMALL_DIT)
    x, t, _ = _inputs(bb)
    saved = dict(taps.LENS_CHUNK_BYTES)
    taps.set_lens_chunk_bytes(10 ** 9, device="cpu")
    grads = []
    try:
        for on in (False, True):
            recompute.use_on_cpu(on)
            bb.model.zero_grad()
            with bb.lens(head_grad=False) as tp:
                bb.predict(x, t)
                tp.predictions().pow(2).mean().backward()
            grads.append(torch.cat([p.grad.flatten() for p in bb.model.parameters() if p.grad is not None]))
    finally:
        recompute.use_on_cpu(False)
        taps.LENS_CHUNK_BYTES.update(saved)
    torch.testing.assert_close(grads[0], grads[1])
