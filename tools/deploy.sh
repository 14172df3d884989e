#!/bin/sh
# Copy this checkout to a Jetson (or any Debian/Ubuntu machine) over ssh and install it
# there as the systemd service (systemd/install.sh). Used by `make deploy HOST=...`.
#
#   tools/deploy.sh HOST [--python python3.8] [--dry-run]
#
# HOST is anything ssh accepts (user@jetson.local, an alias from ~/.ssh/config). The
# remote user needs sudo. The files that travel are git's tracked and untracked-but-not-
# ignored files (no .venv, no datasets, no runs); they land in ~/neurorave-src there.
set -eu

usage() { echo "usage: tools/deploy.sh HOST [--python PYTHON] [--dry-run]" >&2; exit 2; }
[ $# -ge 1 ] || usage
HOST=$1; shift
case "$HOST" in -*|"") usage ;; esac
PYTHON_ARG=""
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || usage; PYTHON_ARG="--python $2"; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        *) echo "deploy.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
SSH=${SSH:-ssh}
REMOTE_DIR=neurorave-src
cd "$(dirname "$0")/.."
command -v "$SSH" >/dev/null 2>&1 || { echo "deploy.sh: '$SSH' not found; install openssh-client" >&2; exit 1; }

echo "deploy: copying $(git ls-files --cached --others --exclude-standard | wc -l) files to $HOST:$REMOTE_DIR"
if [ "$DRY" -eq 1 ]; then
    echo "+ git ls-files ... | tar -c | $SSH $HOST 'rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -x -C $REMOTE_DIR'"
    echo "+ $SSH -t $HOST sudo sh $REMOTE_DIR/systemd/install.sh $PYTHON_ARG"
    exit 0
fi
git ls-files -z --cached --others --exclude-standard \
    | tar -c --null -T - -f - \
    | "$SSH" "$HOST" "rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -x -C $REMOTE_DIR"
# shellcheck disable=SC2086
"$SSH" -t "$HOST" "sudo sh $REMOTE_DIR/systemd/install.sh $PYTHON_ARG"
echo "deploy: done; on $HOST: systemctl status neurorave, journalctl -u neurorave -f"
