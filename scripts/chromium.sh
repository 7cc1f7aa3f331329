#!/usr/bin/env bash
# Headless Chromium for the tests that look at a page as a person would
# (tests/server_delay.rs: the cancel page). Installs Debian's `chromium`
# when it is missing (as root, with apt-get), then prints its path.
set -euo pipefail
for c in chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then
        command -v "$c"
        exit 0
    fi
done
if [ "$(id -u)" != 0 ]; then
    echo "chromium is missing: install Debian's chromium package (as root: apt-get install chromium)" >&2
    exit 1
fi
echo "--> installing chromium (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
command -v chromium
