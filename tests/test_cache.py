"""Pairs encoded once (framer_nb.cache): the latent path trains on them, resumes exactly and shares them."""

import pytest
import torch
from safetensors.torch import load_file

from framer_nb import cache as C
from framer_nb import train as T
from framer_nb.__main__ import main
from framer_nb.config import TrainConfig
from framer_nb.pairs import builtin_source


@pytest.fixture(scope="module")
def sd3_pipe(tmp_path_factory):
    from framer_nb.toy import make_pipeline
    return make_pipeline("sd35-medium", tmp_path_factory.mktemp("pipe") / "pipe")


def _cfg(pipe, **kw) -> TrainConfig:
    base = dict(backbone="sd35-medium", pretrained=str(pipe), prior="none", target="image", image_size=32,
                batch_size=2, sr_steps=3, ckpt_every=1, log_every=1, lr=5e-5, ema_decay=0.0, cache_pairs=5)
    return TrainConfig(**{**base, **kw})


def test_cached_pairs_are_latents_shared_by_seeds_and_resume_exactly(tmp_path, sd3_pipe):
    cfg = _cfg(sd3_pipe)
    full = T.train_sr(cfg, "framer", tmp_path / "a", progress=False)
    path = C.cache_path(cfg, builtin_source().fingerprint, tmp_path / "a")
    pairs = C.load(path)
    # the toy VAE: 4 latent channels, 2x down
    assert len(pairs) == 5 and pairs.hr.shape == (5, 4, 16, 16) and pairs.lr.shape == pairs.hr.shape
    assert len(set(pairs.names)) >= 1 and not torch.equal(pairs.hr, pairs.lr)
    stamp = path.stat().st_mtime_ns
    T.train_sr(_cfg(sd3_pipe, seed=1), "framer", tmp_path / "a", progress=False)
    assert path.stat().st_mtime_ns == stamp and len(list((tmp_path / "a" / "latents").iterdir())) == 1

    T.train_sr(cfg, "framer", tmp_path / "b", progress=False, stop_after=1)
    resumed = T.train_sr(cfg, "framer", tmp_path / "b", progress=False)
    a, b = load_file(str(full.checkpoint)), load_file(str(resumed.checkpoint))
    assert all(torch.equal(a[k], b[k]) for k in a)

    fresh = T.train_sr(_cfg(sd3_pipe, cache_pairs=0), "framer", tmp_path / "a", progress=False)
    assert fresh.path != full.path  # the cache is part of the run's key
    c = load_file(str(fresh.checkpoint))
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("model."))


def test_a_damaged_cache_names_its_file(tmp_path, sd3_pipe):
    cfg = _cfg(sd3_pipe, sr_steps=1)
    T.train_sr(cfg, "baseline", tmp_path, progress=False)
    path = C.cache_path(cfg, builtin_source().fingerprint, tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeError, match=f"{path.name}: unreadable pair cache.*delete it"):
        C.load(path)


def test_cli_cache_pairs(tmp_path, sd3_pipe, capsys):
    args = ["train", "--profile", "smoke", "--backbone", "sd35-medium", "--pretrained", str(sd3_pipe),
            "--image-size", "32", "--steps", "2", "--batch-size", "2", "--seed", "0", "--variant", "baseline",
            "--runs", str(tmp_path)]
    assert main([*args, "--cache-pairs", "0"]) != 0
    assert "--cache-pairs must be >= 1" in capsys.readouterr().err
    assert main([*args, "--cache-pairs", "3"]) == 0
    assert len(C.load(next((tmp_path / "latents").iterdir()))) == 3
