#!/bin/sh
# Install the Debian/Ubuntu packages named as arguments, if any are missing.
# Root runs apt-get, others go through sudo; without either, say what to install.
set -e
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "neurorave: please install these system packages with your package manager:$missing" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "neurorave: not root and no sudo; as root run: apt-get install$missing" >&2
    exit 1
fi
echo "neurorave: installing system packages:$missing"
# jackd2 asks whether to enable real-time scheduling: answer it up front.
echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
