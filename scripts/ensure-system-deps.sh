#!/usr/bin/env bash
# Make sure the system tools the tests, `make demo` and `bench/` need are installed:
#   mosquitto + mosquitto_passwd (private throwaway brokers), socat (serial ptys), openssl (test PKI).
# Quiet and idempotent when everything is present. When something is missing: as root with
# apt-get, install it; otherwise say exactly what to install and exit 1.
#
# The tests never use the Debian package's own broker service (port 1883): every test starts
# private brokers on free ports (gateway/devkit/broker.py). So when this script installs the
# package it keeps the service from being started by the install (policy-rc.d), and it never
# stops or reconfigures a broker service that is already there: it may belong to someone else.
set -euo pipefail

PACKAGES=(mosquitto socat openssl)
# Debian installs the broker in /usr/sbin, which is not on a normal user's PATH.
SEARCH_PATH="${PATH}:/usr/sbin:/usr/local/sbin:/sbin"

have() { PATH="${SEARCH_PATH}" command -v "$1" >/dev/null 2>&1; }

missing_packages() {
    local missing=()
    have mosquitto && have mosquitto_passwd || missing+=(mosquitto)
    have socat || missing+=(socat)
    have openssl || missing+=(openssl)
    echo "${missing[@]:-}"
}

read -r -a MISSING <<<"$(missing_packages)"
if [[ ${#MISSING[@]} -eq 0 ]]; then
    exit 0
fi

if [[ ${EUID} -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    {
        echo "attendance-gateway: missing system packages: ${MISSING[*]}"
        echo "  they provide: mosquitto + mosquitto_passwd (test/demo broker), socat, openssl"
        if command -v apt-get >/dev/null 2>&1; then
            echo "  install them with:"
            echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}"
            echo "  (or run \`make test\` / \`make demo\` as root, which installs them)"
        else
            echo "  install them with your system's package manager, e.g."
            echo "    dnf install ${PACKAGES[*]}    |    apk add ${PACKAGES[*]}    |    brew install ${PACKAGES[*]}"
        fi
        echo "  the tests do not use the package's broker service: they start private brokers."
    } >&2
    exit 1
fi

echo "attendance-gateway: installing ${MISSING[*]} with apt-get" >&2

# Keep the freshly installed mosquitto.service from starting (it would take port 1883 for
# nothing). policy-rc.d is Debian's standard hook for this; only add one if none exists, and
# remove only our own.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [[ ! -e ${POLICY} ]]; then
    printf '#!/bin/sh\n# attendance-gateway ensure-system-deps: no service starts during install\nexit 101\n' >"${POLICY}"
    chmod 0755 "${POLICY}"
    OWN_POLICY=1
fi
cleanup() { if [[ ${OWN_POLICY} -eq 1 ]]; then rm -f "${POLICY}"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

read -r -a STILL <<<"$(missing_packages)"
if [[ ${#STILL[@]} -ne 0 ]]; then
    echo "attendance-gateway: still missing after apt-get install: ${STILL[*]}" >&2
    exit 1
fi
echo "attendance-gateway: system packages ready (tests start their own brokers; the" \
    "mosquitto service is not needed)" >&2
