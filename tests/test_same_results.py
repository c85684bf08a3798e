import importlib.util
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save_file


def _load():
    path = Path(__file__).parents[1] / "benchmarks" / "same_results.py"
    spec = importlib.util.spec_from_file_location("same_results", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_reproduces_are_compared_cell_by_cell_and_weight_by_weight(tmp_path):
    m = _load()
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        pd.DataFrame({"psnr": [25.0, 26.0], "seed": [0, 1]}).to_csv(root / "t1.csv", index=False)
    pd.DataFrame({"psnr": [25.0]}).to_csv(a / "t2.csv", index=False)
    pd.DataFrame({"psnr": [25.000001]}).to_csv(b / "t2.csv", index=False)
    pd.DataFrame({"x": [1]}).to_csv(a / "t3.csv", index=False)
    assert m.compare_csvs(a, b) == {"t1.csv": "same", "t2.csv": "columns differ: psnr",
                                    "t3.csv": "missing in the second"}
    for root, w in ((a, 1.0), (b, 1.0), (a, 2.0), (b, 3.0)):
        name = "baseline" if w == 1.0 else "framer"
        run = root / "runs" / "tiny-dit" / name / "seed0-k"
        (run / "model").mkdir(parents=True)
        (run / "done.json").write_text("{}")
        save_file({"w": torch.full((2,), w)}, str(run / "model" / "diffusion_pytorch_model.safetensors"))
    assert m.compare_runs(a / "runs", b / "runs") == {"tiny-dit/baseline/seed0-k": "same",
                                                      "tiny-dit/framer/seed0-k": "weights differ"}


def test_the_command_writes_its_verdict(tmp_path, monkeypatch, capsys):
    import json
    import sys
    m = _load()
    for root in ("a", "b"):
        (tmp_path / root).mkdir()
        pd.DataFrame({"psnr": [25.0]}).to_csv(tmp_path / root / "t.csv", index=False)
    monkeypatch.setattr(m, "OUT", tmp_path / "same.json")
    monkeypatch.setattr(sys, "argv", ["same_results.py", str(tmp_path / "a"), str(tmp_path / "b"),
                                      "--runs", str(tmp_path / "a"), str(tmp_path / "b"), "--note", "two"])
    m.main()
    doc = json.loads((tmp_path / "same.json").read_text())
    assert doc["same"] and doc["compared"] == 1 and doc["note"] == "two" and "git_commit" in doc
    assert "differing: none" in capsys.readouterr().out
