import pandas as pd
import pytest

from framer_nb import tables


@pytest.fixture
def results():
    rows = []
    for variant, base in (("baseline", 20.0), ("framer", 21.0), ("l2", 20.5)):
        for seed, shift in ((0, -0.5), (1, 0.5)):
            for img, d in (("a", -1.0), ("b", 1.0)):
                rows.append({"task": "bicubic", "backbone": "tiny-dit", "variant": variant, "seed": seed, "image": img,
                             "psnr": base + shift + d, "niqe": 10 - base / 10, "lpips": float("nan")})
    return pd.DataFrame(rows)


def test_seed_summary_means_images_then_seeds(results):
    s = tables.seed_summary(results, ["variant"])
    fr = s[s["variant"] == "framer"].iloc[0]
    assert fr["psnr_mean"] == pytest.approx(21.0) and fr["psnr_std"] == pytest.approx(2 ** -0.5)  # per-seed means 20.5, 21.5
    assert fr["n_seeds"] == 2


def test_best_marked_only_beyond_noise_and_in_its_direction(results):
    s = tables.seed_summary(results, ["variant"])
    f = tables.formatted(s, ["variant"])
    psnr = dict(zip(f["variant"], f["psnr ↑"]))
    # framer's PSNR is higher than l2's on both seeds by the same 0.5 dB: a paired t-test cannot reject noise with
    # zero spread, so nothing is bold; NIQE (constant per variant) likewise
    assert not any(c.startswith("**") for c in psnr.values())
    assert "lpips ↓" not in f  # never measured: no column
    noisy = results.copy()
    noisy.loc[(noisy["variant"] == "framer"), "psnr"] += noisy["seed"] * 0.1  # framer ahead by 0.5-0.6 dB, varying
    noisy = pd.concat([noisy, noisy[noisy["seed"] == 1].assign(seed=2, psnr=lambda d: d["psnr"] + 0.05)])
    s2 = tables.seed_summary(noisy, ["variant"])
    f2 = dict(zip(tables.formatted(s2, ["variant"])["variant"], tables.formatted(s2, ["variant"])["psnr ↑"]))
    assert f2["framer"].startswith("**") and not f2["l2"].startswith("**")
    assert not s2["niqe_best"].any()  # NIQE differs by a constant per seed: zero spread, no test, no bold


def test_write_table_outputs_with_provenance(results, tmp_path):
    t = tables.ablation_table(results, "table2_objective", "tiny-dit")
    assert t["variant"].tolist() == ["baseline", "l2", "framer"]
    paths = tables.write_table(t, ["variant"], "table2_objective", tmp_path, "caption")
    for p in paths:
        assert p.exists() and p.with_name(p.name + ".provenance.json").exists()
    assert "\\textbf" not in paths[2].read_text()  # no row is beyond noise here
    assert "| variant |" in paths[1].read_text()
    assert tables.ablation_table(results, "table4_bands", "tiny-dit") is None  # only one of its variants ran


def test_relative_change_paired_comparison_and_paper_numbers(results):
    s = tables.main_table(results)
    assert s["variant"].tolist() == ["baseline", "framer"]
    rel = tables.relative_change(s, "psnr")
    assert rel["change_%"].iloc[0] == pytest.approx(5.0)
    cmp = tables.framer_vs_baseline(results, None, metrics=("psnr",))
    row = cmp.iloc[0]
    assert row["framer_minus_baseline"] == pytest.approx(1.0) and row["seeds"] == 2 and row["change_%"] == pytest.approx(5.0)
    paper = tables.paper_relative_change()
    row = paper[(paper["dataset"] == "RealSR") & (paper["metric"] == "PSNR") & (paper["pair"] == "FRAMER_D vs DiT4SR")]
    assert row["change_%"].iloc[0] == pytest.approx(5.9, abs=0.05)  # the paper's reported +5.9%


def test_every_mean_carries_its_interval_and_one_seed_rows_borrow_a_pooled_spread(results):
    s = tables.seed_summary(results, ["variant"])
    fr = s[s["variant"] == "framer"].iloc[0]
    assert fr["psnr_ci"] == pytest.approx(12.706205 * (2 ** -0.5) / 2 ** 0.5, rel=1e-5)  # t_0.975(1) * sd / sqrt(2)
    assert "± 6.35" in tables.formatted(s, ["variant"]).set_index("variant").loc["framer", "psnr ↑"]
    mixed = pd.concat([results, results[results["variant"] == "framer"].assign(variant="l2", seed=0)
                       .query("seed == 0")])
    mixed = mixed[~((mixed["variant"] == "l2") & (mixed["seed"] == 1))]  # l2 now has seed 0 only
    t = tables.ablation_table(mixed, "table2_objective", "tiny-dit")
    assert set(t["n_seeds"]) == {1}  # every row on the seeds all rows share
    assert t["psnr_ci"].isna().all() and "no interval" in tables.seed_note(t, None)
    pooled = tables.pooled_spread(results[results["variant"].isin(["baseline", "framer"])], ["variant"])
    assert pooled["psnr"] == (pytest.approx(2 ** -0.5), 2)
    t = tables.ablation_table(mixed, "table2_objective", "tiny-dit", pooled)
    assert t["psnr_ci"].to_numpy() == pytest.approx([4.302653 * 2 ** -0.5] * 3, rel=1e-5)  # t_0.975(2) * sd
    assert "pooled (2 df)" in tables.seed_note(t, pooled)


def test_stored_scores_are_read_and_copied_with_a_clear_error_when_missing(tmp_path):
    from framer_nb.config import profile
    from framer_nb.notebooks import Session
    stored, figures = tmp_path / "stored", tmp_path / "figures"
    stored.mkdir(), figures.mkdir()
    s = Session("03_evaluate_tables", profile("small"), tmp_path, tmp_path, figures, 0)
    for name, value in (("results_per_image.csv", 25.0), ("results_per_image_1step.csv", 24.0)):
        pd.DataFrame({"image": ["a_0"], "psnr": [value]}).to_csv(stored / name, index=False)
    got = s.stored_scores(stored)
    assert got["results_per_image_1step.csv"]["psnr"].iloc[0] == 24.0
    assert (figures / "results_per_image.csv").exists()  # copied beside the tables built from it
    (stored / "results_per_image_1step.csv").unlink()
    with pytest.raises(FileNotFoundError, match="results_per_image_1step.csv"):
        s.stored_scores(stored)


def test_comparisons_name_their_output(results):
    both = tables.comparisons({"1 step": results, "10 steps": results}, None, metrics=("psnr",))
    assert list(both.columns[:2]) == ["output", "task"] and list(both["output"]) == ["1 step", "10 steps"]
    assert (both["framer_minus_baseline"] == 1.0).all() and both["mde"].notna().all()
