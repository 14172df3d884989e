#!/bin/sh
# Install NeuroRave as an appliance on a Jetson (JetPack 4.6 with python3.8, or later)
# or any Debian/Ubuntu machine: a dedicated user, a virtual environment in
# /opt/neurorave, the systemd unit and the udev rules. Run as root from a checkout:
#
#   sudo systemd/install.sh [--python python3.8] [--no-start] [--dry-run]
#        [--ort-wheel PATH|URL] [--system-trt|--no-system-trt] [--gpu-buffers PKG]
#
# Options for the daemon (board, models folder, audio device) go in
# /etc/default/neurorave as NEURORAVE_ARGS; it is written once and never overwritten.
# GPU engines: PyPI's onnxruntime is CPU-only on a Jetson; --ort-wheel installs NVIDIA's
# JetPack onnxruntime-gpu wheel (a file or a URL) in its place. On a Jetson the venv sees
# the system's TensorRT bindings (JetPack's python3-libnvinfer; --system-site-packages,
# default there, --no-system-trt to leave them out) and gets a GPU memory library for
# the native engine (--gpu-buffers cuda-python|pycuda|none; pycuda on JetPack 4's CUDA
# 10.2). `neurorave doctor` then says which engines run, and why not.
set -eu

SOURCE=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/neurorave
# The unit hard-codes this folder; NEURORAVE_INSTALL_STATE moves it for the tests only.
STATE=${NEURORAVE_INSTALL_STATE:-/var/lib/neurorave}
PYTHON=${PYTHON:-python3}
START=1
DRY=0
USER_NAME=neurorave
EXTRAS=${NEURORAVE_EXTRAS:-jetson}
ORT_WHEEL=""
# A Jetson (L4T) has TensorRT in its system Python: the venv reaches it by default.
if [ -e "${NEURORAVE_TEGRA_RELEASE:-/etc/nv_tegra_release}" ]; then SYSTEM_TRT=1; else SYSTEM_TRT=0; fi
GPU_BUFFERS=auto

while [ $# -gt 0 ]; do
    case "$1" in
        --python) PYTHON=$2; shift 2 ;;
        --no-start) START=0; shift ;;
        --dry-run) DRY=1; shift ;;
        --ort-wheel) [ $# -ge 2 ] || { echo "install.sh: --ort-wheel needs a path or URL" >&2; exit 2; }
            ORT_WHEEL=$2; shift 2 ;;
        --system-trt) SYSTEM_TRT=1; shift ;;
        --no-system-trt) SYSTEM_TRT=0; shift ;;
        --gpu-buffers) GPU_BUFFERS=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

run() {
    echo "+ $*"
    [ "$DRY" -eq 1 ] || "$@"
}

if [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 1
fi
case "$ORT_WHEEL" in
    "") ;;
    http://*.whl|https://*.whl) ;;
    *.whl) [ "$DRY" -eq 1 ] || [ -f "$ORT_WHEEL" ] || { echo "install.sh: --ort-wheel $ORT_WHEEL: no such file" >&2; exit 2; } ;;
    *) echo "install.sh: --ort-wheel wants a .whl file or URL (NVIDIA's onnxruntime-gpu for your JetPack), not $ORT_WHEEL" >&2; exit 2 ;;
esac
case "$GPU_BUFFERS" in
    auto|cuda-python|pycuda|none) ;;
    *) echo "install.sh: --gpu-buffers is cuda-python, pycuda or none, not $GPU_BUFFERS" >&2; exit 2 ;;
esac
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)' 2>/dev/null; then
    echo "install.sh: $PYTHON is missing or older than 3.8; on JetPack 4.6: apt install python3.8 python3.8-venv, then --python python3.8" >&2
    exit 1
fi

# The user and the groups that reach the panel and the sound card.
for group in gpio i2c audio; do
    getent group "$group" >/dev/null || run groupadd --system "$group"
done
if ! getent passwd "$USER_NAME" >/dev/null; then
    getent group "$USER_NAME" >/dev/null || run groupadd --system "$USER_NAME"
    run useradd --system --gid "$USER_NAME" --home-dir "$STATE" --no-create-home \
        --shell /usr/sbin/nologin --comment "NeuroRave synthesizer" "$USER_NAME"
fi
run usermod -a -G gpio,i2c,audio "$USER_NAME"

# The system libraries the daemon loads (PortAudio for sound, libsndfile for WAVs).
run "$SOURCE/tools/ensure-apt-packages.sh" libportaudio2 libsndfile1

# The code: a virtual environment owned by root, read-only to the service.
if [ "$SYSTEM_TRT" -eq 1 ]; then
    # JetPack's TensorRT bindings live in the system's dist-packages; the venv's own
    # packages still come first on the path.
    run "$PYTHON" -m venv --system-site-packages "$PREFIX/venv"
else
    run "$PYTHON" -m venv "$PREFIX/venv"
fi
run "$PREFIX/venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
run "$PREFIX/venv/bin/python" -m pip install -q "$SOURCE[$EXTRAS]"
if [ -n "$ORT_WHEEL" ]; then
    # Both install the `onnxruntime` package: the CPU one goes, the GPU one takes its place.
    run "$PREFIX/venv/bin/python" -m pip uninstall -q -y onnxruntime
    run "$PREFIX/venv/bin/python" -m pip install -q "$ORT_WHEEL"
fi
if [ "$SYSTEM_TRT" -eq 1 ] && [ "$GPU_BUFFERS" != none ]; then
    if [ "$GPU_BUFFERS" = auto ]; then
        # JetPack 4 (CUDA 10.2) has no cuda-python; PyCUDA builds against it.
        if [ -e /usr/local/cuda-10.2 ]; then GPU_BUFFERS=pycuda; else GPU_BUFFERS=cuda-python; fi
    fi
    # The native TensorRT engine's GPU memory; without it ort-gpu still runs.
    run env PATH="/usr/local/cuda/bin:$PATH" "$PREFIX/venv/bin/python" -m pip install -q "$GPU_BUFFERS" \
        || echo "install.sh: $GPU_BUFFERS did not install: the native TensorRT engine will not run (ort-gpu still does)"
fi
run install -m 0644 "$SOURCE/README.md" "$PREFIX/README.md"
# `neurorave hwtest`, `neurorave bench` and the rest on the PATH.
run ln -sf "$PREFIX/venv/bin/neurorave" /usr/local/bin/neurorave

# State (settings, calibration, models) belongs to the service user.
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE" "$STATE/models"
# The bundled models: copied where the player has none of the same name, and refreshed
# where the copy is one this script put there and nobody changed since (its .bundled
# holds the sha256 of its model.json, which names every graph's sha256). A player's
# own bundle, or a bundled one changed by hand, is never touched.
sha() { sha256sum < "$1" | cut -d' ' -f1; }
for bundle in "$SOURCE"/models/pretrained/*/; do
    [ -f "${bundle}model.json" ] || continue
    dest="$STATE/models/$(basename "$bundle")"
    if [ -e "$dest" ]; then
        cmp -s "${bundle}model.json" "$dest/model.json" && continue   # already this one
        if ! [ -f "$dest/.bundled" ] || ! [ -f "$dest/model.json" ] \
                || [ "$(sha "$dest/model.json")" != "$(cat "$dest/.bundled")" ]; then
            echo "install.sh: kept $dest (yours, or changed since installed); remove it to get the bundled one"
            continue
        fi
        run rm -rf "$dest"
    fi
    run cp -r "$bundle" "$dest"
    [ "$DRY" -eq 1 ] || sha "$dest/model.json" > "$dest/.bundled"
done
[ "$DRY" -eq 1 ] || chown -R "$USER_NAME:$USER_NAME" "$STATE/models"

# Per-module options, written once.
if [ ! -e /etc/default/neurorave ]; then
    if [ "$DRY" -eq 1 ]; then
        echo "+ write /etc/default/neurorave"
    else
        cat > /etc/default/neurorave <<CONF
# Options for 'neurorave run' (see: neurorave run --help).
NEURORAVE_ARGS="--board jetson-nano --models $STATE/models"
CONF
    fi
fi

run install -m 0644 "$SOURCE/systemd/99-neurorave.rules" /etc/udev/rules.d/99-neurorave.rules
run install -m 0644 "$SOURCE/systemd/neurorave.service" /etc/systemd/system/neurorave.service
if command -v udevadm >/dev/null 2>&1; then
    run udevadm control --reload-rules
    run udevadm trigger --subsystem-match=i2c-dev --subsystem-match=gpio
fi
run systemctl daemon-reload
if [ "$START" -eq 1 ]; then
    run systemctl enable --now neurorave.service
else
    run systemctl enable neurorave.service
fi
# Which engines this machine runs, and why not (one line each).
run "$PREFIX/venv/bin/neurorave" doctor || true
echo "neurorave installed: journalctl -u neurorave -f to follow it"
