import pandas as pd
import pytest

from framer_nb import tables


@pytest.fixture
def results():
    rows = []
    for variant, base in (("baseline", 20.0), ("framer", 21.0), ("l2", 20.5)):
        for seed, shift in ((0, -0.5), (1, 0.5)):
            for img, d in (("a", -1.0), ("b", 1.0)):
                rows.append({"backbone": "tiny-dit", "variant": variant, "seed": seed, "image": img,
                             "psnr": base + shift + d, "niqe": 10 - base / 10, "lpips": float("nan")})
    return pd.DataFrame(rows)


def test_seed_summary_means_images_then_seeds(results):
    s = tables.seed_summary(results, ["variant"])
    fr = s[s["variant"] == "framer"].iloc[0]
    assert fr["psnr_mean"] == pytest.approx(21.0) and fr["psnr_std"] == pytest.approx(2 ** -0.5)  # per-seed means 20.5, 21.5
    assert fr["n_seeds"] == 2


def test_best_marked_per_direction_and_na(results):
    s = tables.seed_summary(results, ["variant"])
    f = tables.formatted(s, ["variant"])
    psnr = dict(zip(f["variant"], f["psnr ↑"]))
    niqe = dict(zip(f["variant"], f["niqe ↓"]))
    assert psnr["framer"].startswith("**") and not psnr["baseline"].startswith("**")
    assert niqe["framer"].startswith("**")  # lower NIQE is better
    assert set(f["lpips ↓"]) == {"n/a"}


def test_write_table_outputs_with_provenance(results, tmp_path):
    t = tables.ablation_table(results, "table2_objective", "tiny-dit")
    assert t["variant"].tolist() == ["baseline", "l2", "framer"]
    paths = tables.write_table(t, ["variant"], "table2_objective", tmp_path, "caption")
    for p in paths:
        assert p.exists() and p.with_name(p.name + ".provenance.json").exists()
    assert "\\textbf{21.00" in paths[2].read_text()
    assert "| variant |" in paths[1].read_text()
    assert tables.ablation_table(results, "table4_bands", "tiny-dit") is None  # only one of its variants ran


def test_relative_change_and_paper_numbers(results):
    s = tables.main_table(results)
    rel = tables.relative_change(s, "psnr")
    assert rel["change_%"].iloc[0] == pytest.approx(5.0)
    paper = tables.paper_relative_change()
    row = paper[(paper["dataset"] == "RealSR") & (paper["metric"] == "PSNR") & (paper["pair"] == "FRAMER_D vs DiT4SR")]
    assert row["change_%"].iloc[0] == pytest.approx(5.9, abs=0.05)  # the paper's reported +5.9%
