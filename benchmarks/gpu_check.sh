#!/usr/bin/env bash
# The prepared GPU check: one GPU with nothing else on it, under 6 minutes, the most important result first. Each
# part has its own time limit; models are built directly on the GPU. Writes to $GPU_CHECK_RESULTS (default
# benchmarks/results), each JSON with provenance:
#   overhead_sd35-medium_cuda_per-layer.json  FRAMER vs baseline step time and peak memory on the SD3.5-medium-shaped
#   overhead_sd35-medium_cuda_batched.json    transformer (random init, bf16, batch 16, 64x64 latents, 333 text
#   ..._batched-compiled.json                 tokens, AdamW), with the lens one layer per call / batched (1 GiB) /
#                                             batched with the FRAMER term through torch.compile
#   gpu_tests.log                             the `gpu`-marked tests (tests/test_slow_gpu.py)
#   latent_train_cuda.json                    20-step latent training runs (the README's paper-profile command) on
#                                             random-init SD3.5-medium- and SD2-base-shaped pipelines, then decoding
#   gpu_check.json                            each part's exit code and seconds, the commit
# `--device cpu` runs every part with tiny configs on the CPU (a dry run of the script itself; the tests run it).
# On a machine without the project's packages, wheels in .whl/ are installed to /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=cuda
[ "${1:-}" = "--device" ] && DEVICE=${2:-cuda}
RES=${GPU_CHECK_RESULTS:-benchmarks/results}
mkdir -p "$RES"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import diffusers" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ "$DEVICE" = cpu ]; then
  OVERHEAD=(--backbone tiny-dit --device cpu --batch 2 --size 16 --steps 2 --warmup 1)
  LATENT=(--tiny --steps 2 --image-size 64 --batch-size 2)
  TESTS=(--collect-only)
else
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$RES/gpu_check_device.txt" 2>&1
  OVERHEAD=(--backbone sd35-medium --device cuda --batch 16 --size 64 --dtype bf16 --context-tokens 333 --steps 8
            --warmup 2)
  LATENT=(--steps 20 --image-size 256 --batch-size 4)
  TESTS=()
fi
declare -A rc secs
part() {  # part NAME LIMIT_S COMMAND...: run under its own time limit, record exit code and seconds
  local name=$1 limit=$2 t0=$SECONDS
  shift 2
  echo "[gpu_check] $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@"
  rc[$name]=$?
  secs[$name]=$((SECONDS - t0))
}
part overhead_per_layer 70 $PY benchmarks/overhead.py "${OVERHEAD[@]}" --lens-chunk-bytes 0 \
  --out "$RES/overhead_${OVERHEAD[1]}_${DEVICE}_per-layer.json"
part overhead_batched 70 $PY benchmarks/overhead.py "${OVERHEAD[@]}" \
  --out "$RES/overhead_${OVERHEAD[1]}_${DEVICE}_batched.json"
part overhead_compiled 90 $PY benchmarks/overhead.py "${OVERHEAD[@]}" --compile --skip-memory \
  --out "$RES/overhead_${OVERHEAD[1]}_${DEVICE}_batched-compiled.json"
part gpu_tests 30 bash -c "$PY -m pytest -q -m gpu -p no:cacheprovider ${TESTS[*]} tests/test_slow_gpu.py > '$RES/gpu_tests.log' 2>&1"
part latent_check 100 $PY benchmarks/latent_check.py "${LATENT[@]}" --work "${GPU_CHECK_WORK:-/tmp/framer_latent_check}" \
  --out "$RES/latent_train_${DEVICE}.json"
summary=""
for k in overhead_per_layer overhead_batched overhead_compiled gpu_tests latent_check; do summary="$summary $k=${rc[$k]}:${secs[$k]}"; done
$PY - "$RES" "$DEVICE" $summary <<'PYEOF'
import json, sys
from framer_nb.provenance import provenance
res, device, parts = sys.argv[1], sys.argv[2], dict(p.split("=") for p in sys.argv[3:])
out = provenance(check="gpu_check", device=device, returncodes={k: int(v.split(":")[0]) for k, v in parts.items()},
                 seconds={k: int(v.split(":")[1]) for k, v in parts.items()})
out["wall_s"] = sum(out["seconds"].values())
open(f"{res}/gpu_check.json", "w").write(json.dumps(out, indent=2))
print(json.dumps(out["returncodes"]), f"{out['wall_s']} s")
sys.exit(0 if all(v == 0 for v in out["returncodes"].values()) else 1)
PYEOF
