import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from framer_nb import metrics as M
from framer_nb.data import test_images as held_out_images


@pytest.fixture(scope="module")
def pair():
    hr = torch.stack([img for _, img in held_out_images(2, 96)])
    g = torch.Generator().manual_seed(0)
    sr = (hr + 0.04 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    return sr, hr


def _y(img):  # ITU-R BT.601 luma on the 16-235 scale, as MATLAB's rgb2ycbcr, in [0, 1]
    r, g, b = img.double().numpy()
    return (65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0


def _yiq_y(img):  # luma of YIQ, pyiqa's default colour space for its Y-channel metrics
    r, g, b = img.double().numpy()
    return 0.299 * r + 0.587 * g + 0.114 * b


def test_framer_protocol_psnr_ssim_against_independent_values(pair):
    sr, hr = pair
    values, reasons = M.evaluate_images(sr, hr, "framer")
    for i in range(2):
        mse = np.mean((sr[i].double().numpy() - hr[i].double().numpy()) ** 2)
        assert values["psnr"][i].item() == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
        ssim = structural_similarity(_yiq_y(sr[i]), _yiq_y(hr[i]), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
        assert values["ssim"][i].item() == pytest.approx(ssim, abs=5e-3)
    assert values["niqe"] is not None and torch.isfinite(values["niqe"]).all()
    assert set(M.PROTOCOLS["framer"]) <= set(values)


def test_osediff_protocol_uses_luma_psnr(pair):
    sr, hr = pair
    values, _ = M.evaluate_images(sr, hr, "osediff")
    mse = np.mean((_y(sr[0]) - _y(hr[0])) ** 2)
    assert values["psnr_y"][0].item() == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
    ssim = structural_similarity(_y(sr[0]), _y(hr[0]), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    assert values["ssim_y"][0].item() == pytest.approx(ssim, abs=5e-3)


def test_niqe_prefers_a_clean_photo_to_noise(pair):
    _, hr = pair
    niqe = M.build("niqe")
    clean, _ = M.score(niqe, hr[:1], None)
    noisy, _ = M.score(niqe, (hr[:1] + 0.3 * torch.randn(hr[:1].shape, generator=torch.Generator().manual_seed(1)))
                       .clamp(0, 1), None)
    assert clean.item() < noisy.item()
    small, reason = M.score(niqe, hr[:1, :, :64, :64], None)
    assert small is None and "96" in reason
    ms = M.build("ms_ssim")
    tiny, reason = M.score(ms, hr[:1], hr[:1])  # 96 px: five scales of an 11-tap window need 176 px
    assert tiny is None and "176" in reason


def test_band_psnr_splits_the_error_exactly(pair):
    sr, hr = pair
    bands = M.band_psnr(sr, hr, radius=0.25)
    mse = (sr.double() - hr.double()).pow(2).flatten(1).mean(1)
    recombined = 10 ** (-bands["psnr_lf"].double() / 10) + 10 ** (-bands["psnr_hf"].double() / 10)
    assert torch.allclose(recombined, mse, rtol=1e-4)
    blurred = torch.nn.functional.avg_pool2d(hr, 3, 1, 1, count_include_pad=False)
    b2 = M.band_psnr(blurred, hr)
    assert (b2["psnr_lf"] > b2["psnr_hf"]).all()  # blur errs in HF, not LF


def test_offline_protocol_has_every_weight_free_metric_with_its_direction(pair):
    sr, hr = pair
    values, reasons = M.evaluate_images(sr, hr, "offline")
    for name in ("psnr", "ssim", "fsim", "vif", "gmsd", "niqe", "psnr_lf", "psnr_hf", "spec_lf", "spec_hf"):
        assert values[name] is not None and torch.isfinite(values[name]).all(), name
    assert set(reasons) == {"ms_ssim"}  # 96-px crops
    perfect, _ = M.evaluate_images(hr, hr, "offline")
    assert perfect["fsim"].min() > 0.999 and perfect["vif"].min() > 0.999 and perfect["gmsd"].max() < 1e-6
    assert (values["fsim"] < perfect["fsim"]).all() and (values["gmsd"] > perfect["gmsd"]).all()
    assert not M.HIGHER_BETTER["gmsd"] and not M.HIGHER_BETTER["spec_hf"] and M.HIGHER_BETTER["vif"]


def test_spectral_distance_golden_values(pair):
    _, hr = pair
    assert torch.allclose(M.spectral_distance(hr, hr)["spec_hf"], torch.zeros(2))
    half = M.spectral_distance(hr * 0.5, hr)  # power / 4 at every frequency: 20 log10(2) = 6.0206 dB everywhere
    assert torch.allclose(half["spec_lf"], torch.full((2,), 6.0206), atol=1e-3)
    assert torch.allclose(half["spec_hf"], torch.full((2,), 6.0206), atol=1e-3)
    blurred = torch.nn.functional.avg_pool2d(hr, 5, 1, 2, count_include_pad=False)
    d = M.spectral_distance(blurred, hr)
    assert (d["spec_hf"] > 3 * d["spec_lf"]).all()  # blur removes HF power, barely touches LF


def test_building_a_metric_never_waits_on_the_network(monkeypatch, tmp_path):
    # whatever HF_HUB_OFFLINE says, building a learned metric makes no connection attempt (it used to retry ~50 s)
    import socket

    import huggingface_hub.constants as hc
    import pyiqa.utils.download_util as du
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(du, "DEFAULT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    M.REFUSED.clear()
    M.build.cache_clear()
    try:
        m = M.build("maniqa")
        assert m.fn is None and "n/a" in m.reason and M.REFUSED == []  # offline mode: not even a lookup
        assert hc.HF_HUB_OFFLINE is False and socket.getaddrinfo.__name__ == "getaddrinfo"  # restored
    finally:
        M.build.cache_clear()


def test_learned_metric_without_weights_is_na(tmp_path, monkeypatch):
    import pyiqa.utils.download_util as du
    monkeypatch.setattr(du, "DEFAULT_CACHE_DIR", str(tmp_path))  # an empty weight cache
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    M.build.cache_clear()
    try:
        m = M.build("musiq")
        assert m.fn is None and m.reason.startswith("n/a: musiq weights not available offline")
        values, reasons = M.evaluate_images(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), "framer")
        assert values["musiq"] is None and "musiq" in reasons and values["psnr"] is not None
    finally:
        M.build.cache_clear()


def test_no_network_blocks_sockets():
    import socket
    with M.no_network(), pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_unknown_protocol():
    with pytest.raises(KeyError, match="framer"):
        M.evaluate_images(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), "nope")


def test_mean_psnr_db_is_the_rounded_mean_of_per_image_psnr():
    hr = torch.zeros(2, 3, 8, 8)
    sr = hr.clone()
    sr[0] += 0.1  # MSE 0.01 -> 20 dB
    sr[1] += 0.01  # MSE 1e-4 -> 40 dB
    assert M.mean_psnr_db(sr, hr) == 30.0
    assert M.mean_psnr_db(sr[:1], hr[:1]) == 20.0
