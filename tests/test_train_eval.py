import dataclasses
import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from framer_nb import checkpoint as ckpt
from framer_nb import evaluate as E
from framer_nb import loop as L
from framer_nb import pairs
from framer_nb import train as T
from framer_nb.__main__ import build_parser, main
from framer_nb.captions import Captions
from framer_nb.config import TrainConfig
from framer_nb.degrade import load_preset
from framer_nb.runs import Evaluation, Run

TINY = dict(batch_size=2, sr_steps=3, log_every=1, diag_every=1, ckpt_every=1, sample_steps=2)


def _set_checkpoint_seconds(path, seconds: float) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(path), "pt") as f:
        state = json.loads(f.metadata()["state"])
    save_file(load_file(str(path)), str(path), metadata={"state": json.dumps({**state, "trained_s": seconds})})


@pytest.mark.parametrize("backbone", ["tiny-dit", "tiny-unet"])
def test_train_resume_evaluate_round_trip(tmp_path, backbone):
    cfg = TrainConfig(backbone=backbone, **TINY)
    full = T.train_sr(cfg, "framer", tmp_path / "a", progress=False)
    part = T.train_sr(cfg, "framer", tmp_path / "b", progress=False, stop_after=1)  # interrupted after step 1
    assert not part.done and part.checkpoint.exists()
    assert ckpt.trained_seconds(part.checkpoint) > 0  # the interrupted process's training time
    _set_checkpoint_seconds(part.checkpoint, 1000.0)  # as if it had trained for 1000 s
    resumed = T.train_sr(cfg, "framer", tmp_path / "b", progress=False)
    a, b = load_file(str(full.checkpoint)), load_file(str(resumed.checkpoint))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    log = pd.read_csv(resumed.log_file)
    assert log["step"].tolist() == [1, 2, 3] and log["distill"].gt(0).all()
    assert log.filter(like="fam_hf_").notna().all().all()
    done = resumed.done_record()
    assert done["variant"] == "framer" and done["resumed_from"] == 1 and "git_commit" in done
    assert done["wall_s"] > 1000.0  # the processes before the resume count
    assert done["prior"]["kind"] == "shipped" and done["data"] == "builtin:train photos" and done["data_fingerprint"]
    assert (full.model_dir / "config.json").exists()
    assert full.heads_file.exists() == (backbone == "tiny-unet")  # heads never inside the model

    bb, heads = T.load_trained(full)
    assert bb.lr_channels == 96 and bb.residual_scale == cfg.residual_scale == 4.0 and bb.lr_detail == 16.0
    assert (heads is not None) == (backbone == "tiny-unet")
    test = E.make_test_set(2, 64, "bicubic")
    out = Evaluation(tmp_path / "eval")
    df = E.evaluate_run(bb, test, out, {"backbone": backbone}, steps=2, seed=0, tile=64)
    assert len(df) == 2 and df["psnr"].notna().all() and df["niqe"].isna().all()  # 64 px: NIQE n/a
    summary = out.summary()
    assert "niqe" in summary["na_reasons"] and summary["protocol"] == "offline" and summary["test_key"] == test.key
    assert (tmp_path / "eval" / "per_image.csv.provenance.json").exists() and out.done
    assert out.crop_images("sr") == sorted(test.names) and out.crop(test.names[0]).exists()
    again = E.evaluate_run(bb, test, Evaluation(tmp_path / "eval2"), {"backbone": backbone}, steps=2, seed=0, tile=64)
    assert torch.equal(torch.stack(torch.load(out.sr_file)), torch.stack(torch.load(tmp_path / "eval2" / "sr.pt")))
    assert again["psnr"].tolist() == df["psnr"].tolist()


def test_a_callback_sees_the_weights_that_will_be_saved(tmp_path):
    seen = []

    def look(step, bb):
        seen.append((step, {k: v.clone() for k, v in bb.model.state_dict().items()}))

    run = T.probe_sr(TrainConfig(**TINY), "baseline", tmp_path, look, 2)
    assert [step for step, _ in seen] == [2, 3]  # every 2 steps, and the last
    saved = T.load_trained(run)[0].model.state_dict()
    assert all(torch.equal(seen[-1][1][k], saved[k]) for k in saved)  # the EMA weights, as saved
    assert not all(torch.equal(seen[0][1][k], saved[k]) for k in saved)
    assert T.train_sr(TrainConfig(**TINY), "baseline", tmp_path, progress=False) == run  # the same run


def test_done_runs_are_skipped_and_a_prior_trained_here_is_shared(tmp_path):
    cfg = TrainConfig(prior="train", prior_steps=2, prior_batch_size=2, **TINY)
    run = T.train_sr(cfg, "baseline", tmp_path, progress=False)
    stamp = run.done_file.stat().st_mtime_ns
    assert T.train_sr(cfg, "baseline", tmp_path, progress=False) == run
    assert run.done_file.stat().st_mtime_ns == stamp
    T.train_sr(cfg, "l2", tmp_path, progress=False)
    T.train_sr(TrainConfig(prior="train", prior_steps=2, prior_batch_size=2, **{**TINY, "sr_steps": 4}), "l2",
               tmp_path, progress=False)  # another SR length: the prior does not depend on it
    assert len(list((tmp_path / "prior").iterdir())) == 1
    assert run.done_record()["prior"]["kind"] == "trained"


def test_tiling_covers_and_averages():
    assert E.tile_starts(96, 32, 8) == [0, 24, 48, 64] and E.tile_starts(32, 32, 8) == [0]
    fn = E.tiled(lambda x, t, lr: x * 2, tile=16, overlap=4)
    x = torch.randn(2, 3, 40, 40)
    assert torch.allclose(fn(x, torch.zeros(2), None), 2 * x)


def test_tile_stride_is_an_odd_third_of_the_tile():
    # 16 positions (a 64-px crop, unshuffled x4): 5 positions, 20 px; an SD latent tile of 64: 21
    assert [E.tile_stride(n) for n in (1, 2, 6, 8, 16, 64)] == [1, 1, 1, 3, 5, 21]
    assert E.tile_stride_px(64, 4) == 20 and E.tile_stride_px(512, 8) == 168
    starts = E.tile_starts(32, 16, 16 - E.tile_stride(16))
    assert starts == [0, 5, 10, 15, 16]  # 128-px test crops: five tiles a side, neighbours 5 positions apart


def test_cli_help_documents_every_option(capsys):
    parser = build_parser()
    for cmd in ("train", "evaluate", "observe", "pretrain", "reproduce"):
        sub = parser._subparsers._group_actions[0].choices[cmd]
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{cmd} --{action.dest} has no help text"
    assert main(["train", "--list-variants"]) == 0
    assert "no-random-neg" in capsys.readouterr().out


def test_cli_evaluate_refuses_untrained(tmp_path, capsys):
    rc = main(["evaluate", "--profile", "smoke", "--runs", str(tmp_path), "--results", str(tmp_path / "r"),
               "--variant", "framer"])
    err = capsys.readouterr().err
    assert rc == 2 and "not trained yet" in err and len(err.strip().splitlines()) == 1


def test_residual_round_trip_and_run_keys(monkeypatch, tmp_path):
    from framer_nb import backbones as B
    cfg = TrainConfig(image_size=16)
    hr = torch.rand(2, 3, 16, 16)
    hr_px, lr_px = pairs.sr_pair(hr, load_preset("bicubic"), cfg, torch.Generator().manual_seed(0))
    bb = B.build("tiny-dit")
    bb.residual_scale = 4.0
    hr_m, lr_m = bb.to_model(hr_px), bb.to_model(lr_px)
    x0 = bb.sr_target(hr_m, lr_m)
    assert torch.allclose(x0, (bb.to_model(hr * 2 - 1) - lr_m) * 4.0, atol=1e-6)
    assert torch.allclose(bb.to_pixels(bb.sr_image(x0, lr_m)), hr * 2 - 1, atol=1e-6)
    # a run folder's key covers the training config, the data source and the backbone's objective ...
    before = T.sr_run(cfg, "framer", tmp_path)
    assert T.sr_run(TrainConfig(image_size=16, residual_scale=2.0), "framer", tmp_path) != before
    assert T.sr_run(TrainConfig(image_size=16, log_every=3, num_workers=2), "framer", tmp_path) == before  # not these
    assert T.sr_run(TrainConfig(image_size=16, lr_detail=4.0), "framer", tmp_path) != before
    spec = B.REGISTRY["tiny-dit"]
    monkeypatch.setitem(B.REGISTRY, "tiny-dit", dataclasses.replace(spec, objective=B.Objective("flow")))
    assert T.sr_run(cfg, "framer", tmp_path) != before


def test_heldout_objective_is_fixed_across_calls_and_models():
    from framer_nb import backbones as B
    cfg = TrainConfig()
    bb = B.build("tiny-dit")
    bb.grow_lr_channels()
    bb.residual_scale = 1.0
    a = L.heldout_objective(bb, cfg, batches=2, batch_size=4)
    assert a == L.heldout_objective(bb, cfg, batches=2, batch_size=4) and a > 0
    with torch.no_grad():
        bb.model.proj_out.weight.mul_(0.5)
    assert L.heldout_objective(bb, cfg, batches=2, batch_size=4) != a


def test_ema_and_cosine_schedule_resume_exactly_and_ema_is_saved(tmp_path):
    cfg = TrainConfig(backbone="tiny-dit", ema_decay=0.9, lr_schedule="cosine", **TINY)
    full = T.train_sr(cfg, "framer", tmp_path / "a", progress=False)
    T.train_sr(cfg, "framer", tmp_path / "b", progress=False, stop_after=2)
    resumed = T.train_sr(cfg, "framer", tmp_path / "b", progress=False)
    a, b = load_file(str(full.checkpoint)), load_file(str(resumed.checkpoint))
    assert any(k.startswith("ema.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    bb, _ = T.load_trained(full)
    saved = dict(bb.model.named_parameters())
    assert all(torch.equal(saved[k[4:]], v) for k, v in a.items() if k.startswith("ema."))  # the EMA is the model
    assert not all(torch.equal(a[f"model.{k[4:]}"], v) for k, v in a.items() if k.startswith("ema."))


def _lrs(schedule: str, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched, lrs = L.lr_scheduler(opt, schedule, steps), []
    for _ in range(steps):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return lrs


def test_lr_scheduler_warms_up_then_holds_or_decays_to_zero():
    const, cos = _lrs("constant", 100), _lrs("cosine", 100)
    assert const[0] == cos[0] == 0.0 and const[10] == cos[10] == 1.0 and const[20] == cos[20] == 2.0
    assert const[99] == 2.0 and cos[99] < 1e-3 and cos[60] < cos[40] < 2.0
    with pytest.raises(ValueError, match="lr_schedule"):
        L.lr_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), "linear", 100)


def test_scores_are_keyed_by_run_config_and_test_set(tmp_path):
    from framer_nb import pipeline as P
    from framer_nb.config import profile
    a = P.run_specs(profile("smoke"))[0]
    b = dataclasses.replace(a, train=dataclasses.replace(a.train, lr=a.train.lr * 2))  # same label, new config
    assert P.run_of(a, tmp_path) != P.run_of(b, tmp_path)
    assert P.find_spec(profile("smoke"), a.backbone, a.variant, a.seed) == a
    with pytest.raises(KeyError, match="no run"):
        P.find_spec(profile("smoke"), "tiny-dit", "framer", 99)
    builtin = E.make_test_set(2, 64, "bicubic")
    other = E.make_test_set(2, 64, "bicubic", seed=5)
    run = P.run_of(a, tmp_path)
    assert builtin.key == E.make_test_set(2, 64, "bicubic").key != other.key
    assert run.evaluation(builtin.key, 10) != run.evaluation(other.key, 10) != run.evaluation(builtin.key, 1)


def test_per_backbone_fields_change_only_their_backbone():
    from framer_nb import pipeline as P
    from framer_nb.config import profile
    p = dataclasses.replace(profile("smoke"), per_backbone={"tiny-dit": {"sr_steps": 6}})
    steps = {(s.backbone, s.train.sr_steps) for s in P.run_specs(p)}
    assert steps == {("tiny-unet", 4), ("tiny-dit", 6)}
    assert p.train_for("tiny-dit", sr_steps=None).sr_steps == 6 and p.train_for("tiny-dit", sr_steps=8).sr_steps == 8
    assert p.train_for("tiny-unet").backbone == "tiny-unet" and p.train_for("tiny-unet").sr_steps == 4


def test_runs_are_trained_longest_first(tmp_path, monkeypatch):
    """train_all hands the pool the longest runs first (FRAMER before baselines, more steps first), so that no worker
    is left with a long run at the end."""
    from framer_nb import pipeline as P
    from framer_nb.config import profile
    p = profile("small")
    seen = []
    monkeypatch.setattr(P, "parallel", lambda fn, args, *a, **k: seen.extend(args))
    monkeypatch.setattr(P.T, "train_sr", lambda *a, **k: None)
    P.train_all(p, tmp_path)
    variants = [v for _, v, _ in seen]
    assert len(seen) == len(P.run_specs(p)) and set(variants) >= {"baseline", "framer", "l2"}
    costs = [P.expected_cost(P.RunSpec(cfg.backbone, v, cfg.seed, cfg)) for cfg, v, _ in seen]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    assert variants[-1] == "baseline" and variants[0] != "baseline"
    specs = {(s.variant, s.seed, s.backbone): P.expected_cost(s) for s in P.run_specs(p)}
    assert specs[("framer", 0, "tiny-dit")] > specs[("baseline", 0, "tiny-dit")]


def test_train_config_names_bad_values():
    with pytest.raises(ValueError, match=r"TrainConfig.lr_schedule='linear' is not one of"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
    for field, value in (("batch_size", 0), ("sr_steps", 0), ("grad_accum", 0), ("seed", 10**20), ("image_size", 66)):
        with pytest.raises(ValueError, match=field if field != "image_size" else "divisible"):
            TrainConfig(**{field: value})


def test_run_folder_lock_refuses_a_second_trainer(tmp_path):
    from framer_nb.runs import RunLockedError
    run = Run(tmp_path / "r")
    with run.lock():
        with pytest.raises(RunLockedError, match="another process"):
            with Run(tmp_path / "r").lock():
                pass
    with run.lock():  # released on exit
        pass


@pytest.mark.parametrize("backbone", ["sd35-medium", "sd2-base"])
def test_latent_path_trains_resumes_exactly_and_evaluates_with_decoding(tmp_path, backbone):
    from framer_nb.toy import make_pipeline
    pipe = make_pipeline(backbone, tmp_path / "pipe")
    cfg = TrainConfig(backbone=backbone, pretrained=str(pipe), prior="none", target="image", image_size=32,
                      batch_size=2, sr_steps=3, ckpt_every=1, log_every=1, lr=5e-5, ema_decay=0.0)
    full = T.train_sr(cfg, "framer", tmp_path / "a", progress=False)
    T.train_sr(cfg, "framer", tmp_path / "b", progress=False, stop_after=1)
    resumed = T.train_sr(cfg, "framer", tmp_path / "b", progress=False)
    a, b = load_file(str(full.checkpoint)), load_file(str(resumed.checkpoint))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.done_record()["prior"]["kind"] == "pretrained"
    bb, _ = T.load_trained(full)
    assert bb.lr_channels == 4 and bb.space.downscale == 2 and bb.context["encoder_hidden_states"].abs().sum() > 0
    test = E.make_test_set(2, 64, "bicubic")
    df = E.evaluate_run(bb, test, Evaluation(tmp_path / "eval"), {"backbone": backbone}, steps=2, seed=0, tile=32)
    assert df["psnr"].notna().all()  # decoded by the pipeline's VAE and scored in pixels


def test_captions_give_per_image_prompts(tmp_path):
    from PIL import Image as PILImage

    from framer_nb.toy import make_pipeline
    pipe = make_pipeline("sd2-base", tmp_path / "pipe")
    hr = tmp_path / "hr"
    hr.mkdir()
    for name in ("cat", "dog"):
        PILImage.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(hr / f"{name}.png")
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"cat": "a cat on a sofa"}))  # the dog has none: the null prompt
    cfg = TrainConfig(backbone="sd2-base", pretrained=str(pipe), prior="none", target="image", image_size=32,
                      batch_size=2, sr_steps=2, captions=str(captions))
    src = pairs.folder_source(hr, 32)
    bb = T.starting_point(cfg, tmp_path / "runs")
    table = Captions.load(captions, bb, str(pipe), tmp_path / "runs")
    ctx = table.context(["cat", "dog", "cat"])["encoder_hidden_states"]
    assert ctx.shape[0] == 3 and torch.equal(ctx[0], ctx[2]) and torch.equal(ctx[1], bb.context["encoder_hidden_states"][0])
    assert not torch.equal(ctx[0], ctx[1])
    run = T.train_sr(cfg, "baseline", tmp_path / "runs", progress=False, source=src)
    assert run.done and run.done_record()["config"]["captions"] == str(captions)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json.*captions must be a JSON object"):
        Captions.load(bad, bb, str(pipe), tmp_path / "runs")


def test_pretrain_stopped_early_exports_the_checkpoint_ema_and_says_so(tmp_path):
    # a prior cut short with stop_after ships the EMA weights of that checkpoint; the card names both step counts
    from safetensors.torch import load_file

    from framer_nb.priors import Pretraining, pretrain, shipped_prior, weights_file
    how = Pretraining(steps=4, stop_after=2, batch_size=2, residual_scale=3.0, eval_every=1)
    card = pretrain("tiny-unet", how, tmp_path / "priors" / "tiny-unet", runs=tmp_path / "runs", progress=False)
    assert (card["steps"], card["schedule_steps"]) == (2, 4)
    assert [p["step"] for p in card["heldout_curve"]] == [1, 2] and "--stop-after 2" in card["command"]
    assert card["residual_scale"] == 3.0 and "--residual-scale 3" in card["command"]  # the scale it learned
    assert shipped_prior("tiny-unet", tmp_path / "priors")["weights_sha256"] == card["weights_sha256"]
    ckpt = load_file(str(next((tmp_path / "runs" / "prior").iterdir()) / "checkpoint.safetensors"))
    shipped = load_file(str(weights_file(tmp_path / "priors" / "tiny-unet")))
    k = next(k for k in shipped if k.endswith("weight"))
    assert torch.equal(shipped[k], ckpt["ema." + k]) and not torch.equal(shipped[k], ckpt["model." + k])


def test_image_priors_live_beside_the_residual_ones_and_are_found_by_the_target(tmp_path, monkeypatch):
    from framer_nb import priors as P
    root = tmp_path / "priors"
    how = P.Pretraining(steps=2, batch_size=2, eval_every=1, target="image")
    card = P.pretrain("tiny-dit", how, P.prior_folder("tiny-dit", "image", root), runs=tmp_path / "runs",
                      progress=False)
    assert (card["target_kind"], card["residual_scale"], card["target"]) == ("image", None, "the HR image")
    assert "--target image" in card["command"]
    assert P.prior_folder("tiny-dit", "image", root) == root / "tiny-dit-image"
    assert P.prior_folder("tiny-dit", "residual", root) == root / "tiny-dit"
    monkeypatch.setattr(P, "PRIOR_ROOT", root)
    cfg = TrainConfig(backbone="tiny-dit", target="image")
    assert T.prior_identity(cfg, tmp_path)["sha256"] == card["weights_sha256"]
    assert T.starting_point(cfg, tmp_path, progress=False).residual_scale == 0.0  # diffuses the image
    with pytest.raises(FileNotFoundError, match="--target residual"):  # no residual prior was written there
        P.shipped_prior("tiny-dit", root)


def test_priors_are_observed_on_their_own_residual_scale_and_fine_tuned_on_the_profiles(tmp_path, monkeypatch):
    import json

    from framer_nb import observe as O
    from framer_nb import priors as P
    from framer_nb.config import profile
    p = profile("small-residual")
    root = tmp_path / "priors"
    for b in p.backbones:  # copies of the shipped priors whose cards say they learned a scale the SR stage does not use
        (root / b).mkdir(parents=True)
        for f in (P.PRIOR_ROOT / b).iterdir():
            (root / b / f.name).write_bytes(f.read_bytes())
        card = json.loads((root / b / "model_card.json").read_text())
        (root / b / "model_card.json").write_text(json.dumps({**card, "residual_scale": 2.5}))
    monkeypatch.setattr(P, "PRIOR_ROOT", root)
    assert p.train.residual_scale != 2.5  # else this test shows nothing
    assert T.starting_point(p.train, tmp_path).residual_scale == p.train.residual_scale
    assert {b.residual_scale for b in O.load_priors(p, tmp_path, progress=False).values()} == {2.5}
    with pytest.raises(ValueError, match="no residual_scale"):
        P.residual_scale_of({"backbone": "tiny-dit"})


def test_pretrain_minutes_are_sized_from_timed_steps_here():
    # `pretrain --minutes`: the step count comes from the speed of 20 real training steps (batch 2 here: far
    # more than the floor of 100 fit in 20 minutes)
    from framer_nb.priors import steps_for_minutes
    assert steps_for_minutes("tiny-unet", 20.0, batch_size=2, lr=1e-3, num_workers=0) > 100


def test_head_grad_enters_a_run_key_only_where_it_changes_what_is_trained(tmp_path):
    # the switch exists for the SD3 lens (its head is the model's output head); U-Net lens heads and the baseline
    # are unaffected by it
    from framer_nb.config import FramerConfig
    trained = FramerConfig(head_grad=True)
    cfg = TrainConfig(image_size=16, prior="none")
    for backbone, changes in (("tiny-dit", True), ("tiny-unet", False)):
        c = dataclasses.replace(cfg, backbone=backbone)
        assert (T.sr_run(c, "framer", tmp_path, framer=trained) != T.sr_run(c, "framer", tmp_path)) == changes
    assert T.framer_key(trained, "tiny-dit")["head_grad"] is True
    assert "head_grad" not in T.framer_key(FramerConfig(objective="none", head_grad=False), "tiny-dit")
    assert "head_grad" not in T.framer_key(trained, "tiny-unet")


def test_run_config_round_trips_and_runs_know_their_root(tmp_path):
    cfg = TrainConfig(backbone="tiny-unet", crop_scale=(0.5, 0.5), **TINY)
    run = T.sr_run(cfg, "baseline", tmp_path / "runs")
    run.start({"config": dataclasses.asdict(cfg)})
    assert run.config() == cfg and run.root == tmp_path / "runs"
    assert Run(tmp_path / "runs" / "prior" / "tiny-unet-abc").root == tmp_path / "runs"
    run.info_file.write_text(json.dumps({"config": {**dataclasses.asdict(cfg), "nonsense": 1}}))
    with pytest.raises(ValueError, match="run.json.*nonsense"):
        run.config()


def test_sampler_noise_is_common_to_every_run_and_keyed_by_crop():
    from framer_nb.backbones import build
    bb = build("tiny-dit")
    bb.grow_lr_channels()
    up = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    together = E.super_resolve(bb, up, steps=2, seed=0, tile=64)
    alone = torch.cat([E.super_resolve(bb, up[i:i + 1], steps=2, seed=0, tile=64, keys=[i]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)  # a crop's sample does not depend on its batch
    swapped = E.super_resolve(bb, up[[1, 0]], steps=2, seed=0, tile=64, keys=[1, 0])
    assert torch.allclose(swapped, together[[1, 0]], atol=1e-5)
    assert not torch.equal(E.crop_noise((4, 8, 8), 0, 0), E.crop_noise((4, 8, 8), 0, 1))
    assert not torch.equal(E.super_resolve(bb, up[:1], steps=2, seed=1, tile=64), together[:1])
    # every run is scored from the same noise: the evaluation folder says so, and no training seed enters it
    assert E.NOISE in E.eval_key(E.make_test_set(2, 64, "bicubic"), "offline")


def test_the_grid_covers_every_test_photo_in_named_crops():
    from framer_nb.data import TEST_PHOTOS, photo
    from framer_nb.stats import photo_of
    grid = E.grid_test_set(64, "bicubic")
    expected = {name: (photo(name).shape[1] // 64) * (photo(name).shape[2] // 64) for name in TEST_PHOTOS}
    assert pd.Series([photo_of(n) for n in grid.names]).value_counts().to_dict() == expected  # crops keep their photo
    assert len(set(grid.names)) == len(grid.names) == sum(expected.values())
    img = photo(TEST_PHOTOS[0])
    cols = img.shape[2] // 64
    assert torch.equal(grid.hr[cols + 1], img[:, 64:128, 64:128])  # row by row from the top left, not overlapping
    assert all(h.shape == (3, 64, 64) and lr.shape == (3, 16, 16) for h, lr in zip(grid.hr, grid.lr))
    assert grid.key == E.grid_test_set(64, "bicubic").key != E.grid_test_set(32, "bicubic").key
    assert grid.key != E.grid_test_set(64, "light").key
    with pytest.raises(ValueError, match="smaller than the 4096-px grid"):
        E.grid_test_set(4096, "bicubic")
