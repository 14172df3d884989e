#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no network, torch and Lightning already there)
# or on the module itself (a Jetson, no torch):
# - with torch: the CUDA tests of the learning side and the training throughput of
#   `small` and `gm-notes` in mixed precision, the figures issue 4 asks for;
# - always: the inference engines (issue 23, tools/engine_check.py): trt and ort-gpu
#   built in FP16 and FP32, parity against ONNX Runtime's CPU engine over ENGINE_SECONDS
#   (10) of streaming (SNR dB, max error; goal SNR >= 40 dB), p50/p99 per frame, first
#   start (build) vs cached start, for the 16 kHz gm-notes bundle and, where torch can
#   export it, the 48 kHz RAVE-v1-sized reference. OUT/engines.json.
# From the repository root (on the module: PYTHON=/opt/neurorave/venv/bin/python):
#   OUT=/some/folder bash tools/gpu-check.sh [STEPS]
# Writes OUT/summary.txt, OUT/tests.txt, OUT/engines.json and one JSON per benchmark.
# Without CUDA it runs the same on CPU (the gpu tests skip, only ort-cpu runs, against
# itself), which is how it is checked here.
set -uo pipefail
OUT=${OUT:-build/gpu-check}
STEPS=${1:-30}
WARMUP=${WARMUP:-5}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}

{
    date -u
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
} > "$OUT/summary.txt" 2>&1

# This checkout as neurorave.*, without fetching dependencies (the machine cannot).
if ! $PY -c 'import neurorave.models' 2>/dev/null; then
    $PY -m pip install -q --no-deps --no-build-isolation -e . >> "$OUT/summary.txt" 2>&1 \
        || { echo "gpu-check: cannot install this checkout" | tee -a "$OUT/summary.txt"; exit 1; }
fi

if $PY -c 'import torch' 2>/dev/null; then
    $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_train.py tests/test_descriptors.py \
        > "$OUT/tests.txt" 2>&1
    echo "gpu tests: exit $? ($(tail -1 "$OUT/tests.txt"))" >> "$OUT/summary.txt"

    for config in small gm-notes; do
        $PY benchmarks/bench_train.py --config "$config" --steps "$STEPS" --warmup "$WARMUP" --json \
            > "$OUT/train-$config.json" 2>> "$OUT/summary.txt"
        echo "bench_train $config: exit $?" >> "$OUT/summary.txt"
    done
else
    echo "no torch here (the module): training checks skipped" >> "$OUT/summary.txt"
fi

# The inference engines (issue 23).
BUNDLES="models/pretrained/gm-notes"
REF="$OUT/reference-rave-v1"
if [ ! -f "$REF/model.json" ] && $PY -c 'import torch' 2>/dev/null; then
    $PY -m neurorave.firmware.cli export --reference rave-v1 --out "$REF" >> "$OUT/summary.txt" 2>&1 \
        || echo "could not export the 48 kHz reference bundle" >> "$OUT/summary.txt"
fi
[ -f "$REF/model.json" ] && BUNDLES="$BUNDLES $REF"
# shellcheck disable=SC2086
$PY tools/engine_check.py $BUNDLES --seconds "${ENGINE_SECONDS:-10}" --out "$OUT/engines.json" \
    >> "$OUT/summary.txt" 2>&1
echo "engine check: exit $?" >> "$OUT/summary.txt"
$PY -m neurorave.firmware.cli doctor >> "$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt"
