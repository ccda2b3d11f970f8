#!/usr/bin/env bash
# Installs the Debian packages the full test suite needs, if they are missing:
#   - postgresql: the state-DB tests start a throwaway server on loopback
#   - chromium:   the browser tests drive a real JupyterLab
#   - default-jre-headless: the Spark parity tests (skipped if java is already there)
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "system-deps: missing ${need[*]}; run 'sudo make system-deps' (needs apt)" >&2
    exit 1
fi
echo "==> apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
