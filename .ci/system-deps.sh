#!/usr/bin/env bash
# Installs the Debian packages the full test suite needs, if they are missing:
#   - postgresql: the state-DB tests start a throwaway server on loopback
#                 (tests/servers.py; as root it runs as the `postgres` OS user)
#   - chromium:   the browser tests drive a real JupyterLab (tests/e2e)
#   - default-jre-headless: the Spark parity tests (skipped if java is already there)
#   - openssl:    the SMTP STARTTLS/TLS tests make a throwaway certificate with it
# Idempotent: does nothing when everything is present.
set -euo pipefail

have_postgres() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
have_chromium() { command -v chromium >/dev/null 2>&1; }
have_java() { command -v java >/dev/null 2>&1; }
have_openssl() { command -v openssl >/dev/null 2>&1; }

need=()
have_postgres || need+=(postgresql)
have_chromium || need+=(chromium)
have_java || need+=(default-jre-headless)
have_openssl || need+=(openssl)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "system-deps: missing ${need[*]}; run 'sudo make system-deps' (needs apt)" >&2
    exit 1
fi
echo "==> apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# One retry: a fresh CI machine sometimes races another apt run or hits a mirror hiccup.
apt_quiet() { apt-get -q -o Dpkg::Use-Pty=0 "$@" >/dev/null; }
apt_quiet update || { sleep 5; apt_quiet update; }
apt_quiet install -y --no-install-recommends "${need[@]}" \
    || { sleep 5; apt_quiet install -y --no-install-recommends "${need[@]}"; }

missing=()
have_postgres || missing+=("postgresql (no /usr/lib/postgresql/*/bin/initdb)")
have_openssl || missing+=("openssl")
have_chromium || missing+=("chromium (not on PATH)")
have_java || missing+=("java (not on PATH)")
if [ ${#missing[@]} -ne 0 ]; then
    echo "system-deps: still missing after apt-get install: ${missing[*]}" >&2
    exit 1
fi
