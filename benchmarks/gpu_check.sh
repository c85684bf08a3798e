#!/usr/bin/env bash
# The prepared GPU check: one command, one GPU, under 8 minutes. Writes JSON with provenance to benchmarks/results/:
#   gpu_tests.log                      the `gpu`-marked tests (tests/test_slow_gpu.py)
#   overhead_sd35-medium_cuda.json     FRAMER vs baseline step time and peak memory on the SD3.5-medium-shaped
#                                      transformer (random init, bf16, batch 16, 64x64 latents, 333 text tokens, AdamW)
#   latent_train_cuda.json             50-step latent training runs (the README's paper-profile command) on
#                                      random-init SD3.5-medium- and SD2-base-shaped pipelines, then decoding
#   gpu_check.json                     what passed, with the commit
# With FRAMER_PRETRAIN_MINUTES=M it also pretrains the tiny priors (`python -m framer_nb pretrain`, M minutes each,
# both at once) in the background once the overhead benchmark is done, into build/priors/<backbone>/.
# On a machine without the project's packages, wheels in .whl/ are installed to /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RES=benchmarks/results
mkdir -p "$RES" build
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import diffusers" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
start=$(date +%s)
declare -A rc
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$RES/gpu_check_device.txt" 2>&1

$PY -m pytest -q -m gpu -p no:cacheprovider tests/test_slow_gpu.py 2>&1 | tee "$RES/gpu_tests.log"
rc[tests]=${PIPESTATUS[0]}
$PY benchmarks/overhead.py --backbone sd35-medium --device cuda --batch 16 --size 64 --dtype bf16 \
  --context-tokens 333 --steps 10 --warmup 3
rc[overhead]=$?
if [ -n "${FRAMER_PRETRAIN_MINUTES:-}" ]; then
  for b in tiny-dit tiny-unet; do
    $PY -m framer_nb pretrain --backbone "$b" --minutes "$FRAMER_PRETRAIN_MINUTES" --batch-size 256 --num-workers 3 \
      --eval-every 1000 --runs build/pretrain-runs --out "build/priors/$b" > "build/pretrain_$b.log" 2>&1 &
    pids="${pids:-} $!"
  done
fi
$PY benchmarks/latent_check.py --steps 50 --image-size 256 --batch-size 4
rc[latent]=$?
rc[pretrain]=skipped
for p in ${pids:-}; do wait "$p"; rc[pretrain]="${rc[pretrain]/skipped/} $?"; done
$PY - "$start" "${rc[tests]}" "${rc[overhead]}" "${rc[latent]}" "${rc[pretrain]}" <<'EOF'
import json, sys, time
from framer_nb.provenance import provenance
start, tests, overhead, latent, pretrain = sys.argv[1:]
out = provenance(check="gpu_check", wall_s=round(time.time() - int(start)), returncodes={
    "gpu_tests": int(tests), "overhead": int(overhead), "latent_check": int(latent), "pretrain": pretrain.strip()})
open("benchmarks/results/gpu_check.json", "w").write(json.dumps(out, indent=2))
print(json.dumps(out["returncodes"]), f"{out['wall_s']} s")
EOF
[ "${rc[tests]}" = 0 ] && [ "${rc[overhead]}" = 0 ] && [ "${rc[latent]}" = 0 ]
