#!/bin/sh
# Copy this checkout to a Jetson (or any Debian/Ubuntu machine) over ssh and install it
# there as the systemd service (systemd/install.sh). Used by `make deploy HOST=...`.
#
#   tools/deploy.sh HOST [--python python3.8] [--ort-wheel PATH|URL] [--dry-run]
#
# HOST is anything ssh accepts (user@jetson.local, an alias from ~/.ssh/config). The
# remote user needs sudo. The files that travel are git's tracked and untracked-but-not-
# ignored files (no .venv, no datasets, no runs); they land in ~/neurorave-src there.
# --ort-wheel: NVIDIA's onnxruntime-gpu wheel for the module's JetPack, installed in
# place of the CPU-only one (a local file travels along; a URL is fetched there).
set -eu

usage() { echo "usage: tools/deploy.sh HOST [--python PYTHON] [--ort-wheel PATH|URL] [--dry-run]" >&2; exit 2; }
[ $# -ge 1 ] || usage
HOST=$1; shift
case "$HOST" in -*|"") usage ;; esac
PYTHON_ARG=""
WHEEL=""
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || usage; PYTHON_ARG="--python $2"; shift 2 ;;
        --ort-wheel) [ $# -ge 2 ] || usage; WHEEL=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        *) echo "deploy.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
SSH=${SSH:-ssh}
REMOTE_DIR=neurorave-src
case "$WHEEL" in
    "") ;;
    http://*|https://*) ;;
    *) [ -f "$WHEEL" ] || { echo "deploy.sh: --ort-wheel $WHEEL: no such file" >&2; exit 2; }
       WHEEL=$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL") ;;
esac
cd "$(dirname "$0")/.."
command -v "$SSH" >/dev/null 2>&1 || { echo "deploy.sh: '$SSH' not found; install openssh-client" >&2; exit 1; }

echo "deploy: copying $(git ls-files --cached --others --exclude-standard -- . ":(exclude)carried-runs" | wc -l) files to $HOST:$REMOTE_DIR"
if [ "$DRY" -eq 1 ]; then
    echo "+ git ls-files ... | tar -c | $SSH $HOST 'rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -x -C $REMOTE_DIR'"
    [ -n "$WHEEL" ] && echo "+ the wheel: --ort-wheel $WHEEL"
    echo "+ $SSH -t $HOST sudo sh $REMOTE_DIR/systemd/install.sh $PYTHON_ARG${WHEEL:+ --ort-wheel ...}"
    exit 0
fi
git ls-files -z --cached --others --exclude-standard -- . ":(exclude)carried-runs" \
    | tar -c --null -T - -f - \
    | "$SSH" "$HOST" "rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -x -C $REMOTE_DIR"
WHEEL_ARG=""
case "$WHEEL" in
    "") ;;
    http://*|https://*) WHEEL_ARG="--ort-wheel $WHEEL" ;;
    *)  # the file keeps its name: pip reads the version and platform from it
        name=$(basename "$WHEEL")
        "$SSH" "$HOST" "mkdir -p $REMOTE_DIR/wheels && cat > $REMOTE_DIR/wheels/$name" < "$WHEEL"
        WHEEL_ARG="--ort-wheel $REMOTE_DIR/wheels/$name" ;;
esac
# shellcheck disable=SC2086
"$SSH" -t "$HOST" "sudo sh $REMOTE_DIR/systemd/install.sh $PYTHON_ARG $WHEEL_ARG"
echo "deploy: done; on $HOST: systemctl status neurorave, journalctl -u neurorave -f"
