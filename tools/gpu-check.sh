#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no network, torch and Lightning already there):
# the CUDA tests of the learning side and the training throughput of `small` and
# `gm-notes` in mixed precision, the figures issue 4 asks for. From the repository root:
#   OUT=/some/folder bash tools/gpu-check.sh [STEPS]
# Writes OUT/summary.txt, OUT/tests.txt and one JSON per benchmark. Without CUDA it runs
# the same on CPU (the gpu tests then skip), which is how it is checked here.
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

$PY -m pytest -q -p no:cacheprovider -m gpu tests/test_train.py tests/test_descriptors.py \
    > "$OUT/tests.txt" 2>&1
echo "gpu tests: exit $? ($(tail -1 "$OUT/tests.txt"))" >> "$OUT/summary.txt"

for config in small gm-notes; do
    $PY benchmarks/bench_train.py --config "$config" --steps "$STEPS" --warmup "$WARMUP" --json \
        > "$OUT/train-$config.json" 2>> "$OUT/summary.txt"
    echo "bench_train $config: exit $?" >> "$OUT/summary.txt"
done
cat "$OUT/summary.txt"
