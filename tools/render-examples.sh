#!/bin/sh
# Render every example patch (examples/patches/*.toml) to build/examples/NAME.wav.
# Each patch names its bundle in [settings] model; render finds it in the models folder.
# Usage: tools/render-examples.sh [OUT_DIR]   (NEURORAVE, MODELS: override the defaults)
set -eu
cd "$(dirname "$0")/.."
NEURORAVE=${NEURORAVE:-.venv/bin/neurorave}
MODELS=${MODELS:-models/pretrained}
OUT=${1:-build/examples}
mkdir -p "$OUT"
for patch in examples/patches/*.toml; do
	name=$(basename "$patch" .toml)
	"$NEURORAVE" render "$MODELS" --patch "$patch" --out "$OUT/$name.wav"
done
