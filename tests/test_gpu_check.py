"""benchmarks/gpu_check.sh runs end to end: its CPU dry run (tiny configs, every part, each under its limit)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_on_the_cpu_writes_every_result(tmp_path):
    env = {**os.environ, "GPU_CHECK_RESULTS": str(tmp_path / "results"), "GPU_CHECK_WORK": str(tmp_path / "work"),
           "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = tmp_path / "results"
    summary = json.loads((res / "gpu_check.json").read_text())
    assert summary["returncodes"] == {"overhead_per_layer": 0, "overhead_batched": 0, "overhead_compiled": 0,
                                      "gpu_tests": 0, "latent_check": 0}
    assert sum(summary["seconds"].values()) == summary["wall_s"]
    assert json.loads((res / "overhead_tiny-dit_cpu_batched-compiled.json").read_text())["args"]["compile"]
    per_layer = json.loads((res / "overhead_tiny-dit_cpu_per-layer.json").read_text())
    batched = json.loads((res / "overhead_tiny-dit_cpu_batched.json").read_text())
    assert per_layer["lens_chunk_bytes"]["accelerator"] == 0 and batched["lens_chunk_bytes"]["accelerator"] > 0
    assert per_layer["time_ratio"] > 0 and batched["memory_ratio"] > 0
    latent = json.loads((res / "latent_train_cpu.json").read_text())["results"]
    assert {k: v["returncode"] for k, v in latent.items()} == {"sd35-medium": 0, "sd2-base": 0}
    assert "test_slow_gpu.py" in (res / "gpu_tests.log").read_text()  # the gpu tests collect
    assert not (ROOT / "benchmarks" / "results" / "overhead_tiny-dit_cpu_per-layer.json").exists()  # nothing committed moved
