#!/usr/bin/env bash
# Issue 12: a real systemd runs the unit. Boots a Debian bookworm root with systemd-nspawn,
# installs the gateway inside it the documented way (docs/install.md §3: the offline bundle's
# install.sh, with the .deb built here from this tree), and drives it with systemctl/journalctl
# (tests/systemd/test_systemd_lifecycle.py).
#
# Usage: sudo scripts/test-systemd.sh [pytest args...]
#   ATTGW_NSPAWN_CACHE=DIR  where the root and the bundle are kept
#                           (default /var/cache/attendance-gateway-test; outside the repo)
#   ATTGW_NSPAWN_MIRROR=URL Debian mirror (default: the first URIs: line apt uses)
#   ATTGW_NSPAWN_REBUILD=1  throw the cached root away first (needed after a change to
#                           bootstrap_root below: the cache key covers only the package list)
#   ATTGW_SYSTEMD_STALL_S=N watchdog_stall_s of the container's config (default 20)
# Exit status: pytest's; 0 with "SKIP:" printed only when this machine cannot run nspawn
# (not root and no `sudo -n`, no systemd-nspawn and no apt to install it, or nspawn cannot
# start a container here): never silently.
#
# First run: debootstrap (~1-2 min); later runs reuse the root (its key is a hash of the
# package list). The bundle is built each run (~30 s). Lifecycle: about 3-4 minutes.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ATTGW_NSPAWN_CACHE:-/var/cache/attendance-gateway-test}
SUITE=bookworm
# systemd + dbus: a booting init with systemctl/journalctl; python3-venv: install.sh's venv;
# mosquitto(-clients): the container's own broker and a subscriber; socat: a serial pty pair;
# procps: ps/pkill for the checks; sqlite3: look at the store from outside the daemon.
PKGS=systemd,systemd-sysv,dbus,python3,python3-venv,mosquitto,mosquitto-clients,socat,procps,sqlite3
KEY=$(printf '%s %s %s\n' "$SUITE" "$PKGS" "$(uname -m)" | sha256sum | cut -c1-12)
ROOT=$CACHE/root-$KEY
STAMP=$ROOT/.attgw-bootstrapped
BUNDLE=$CACHE/bundle

log() { printf '[test-systemd] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
skip() { printf 'SKIP: make test-systemd: %s\n' "$*"; exit 0; }

# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"
mirror() { debian_mirror "${ATTGW_NSPAWN_MIRROR:-}"; }

if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        keep=ATTGW_NSPAWN_CACHE,ATTGW_NSPAWN_MIRROR,ATTGW_NSPAWN_REBUILD,ATTGW_SYSTEMD_STALL_S
        exec sudo -n --preserve-env="$keep" bash "$0" "$@"
    fi
    skip "needs root (debootstrap, systemd-nspawn) and sudo -n is not available;" \
        "run: sudo make test-systemd"
fi

ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
    command -v nsenter >/dev/null || missing+=(util-linux)
    if ((${#missing[@]})); then
        command -v apt-get >/dev/null || skip "no ${missing[*]} and no apt-get to install them"
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q "${missing[@]}" >/dev/null; } \
            || skip "could not install ${missing[*]}"
    fi
}

bootstrap_root() {
    if [[ -n ${ATTGW_NSPAWN_REBUILD:-} && -d $ROOT ]]; then
        log "removing cached root $ROOT"
        rm -rf --one-file-system "$ROOT"
    fi
    [[ -e $STAMP ]] && return
    rm -rf --one-file-system "$ROOT"
    mkdir -p "$CACHE"
    local boot_log=$CACHE/debootstrap-$KEY.log t0=$SECONDS
    log "debootstrap $SUITE into $ROOT from $(mirror) (about 2 min, once)"
    debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$ROOT" "$(mirror)" \
        >"$boot_log" 2>&1 || { tail -20 "$boot_log" >&2; die "debootstrap failed ($boot_log)"; }
    # A booted container with no network: the broker listens on loopback only, and nothing
    # waits for a network that never comes.
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' \
        >"$ROOT/etc/mosquitto/conf.d/attgw-test.conf"
    echo attgw-test >"$ROOT/etc/hostname"
    printf '127.0.0.1\tlocalhost attgw-test\n::1\t\tlocalhost ip6-localhost\n' >"$ROOT/etc/hosts"
    # No login prompt on the (read-only) console; the test drives the container with nsenter.
    ln -sf /dev/null "$ROOT/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$ROOT/etc/systemd/system/getty@.service"
    # A technician: a normal login user who will join group attgw (docs/install.md §4).
    chroot "$ROOT" useradd -m -s /bin/bash tech
    log "debootstrap done in $((SECONDS - t0)) s"
    touch "$STAMP"
}

build_bundle() {
    # The offline bundle of docs/install.md §3, built from this tree (issue 17's package): the
    # container has no network, exactly like a site without internet.
    log "offline bundle $BUNDLE (amd64 .deb of this tree)"
    rm -rf "$BUNDLE"
    mkdir -p "$BUNDLE"
    bash "$REPO/scripts/offline-bundle.sh" --arch amd64 --out "$BUNDLE" >/dev/null
}

ensure_host_tools
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not available"
bootstrap_root
build_bundle
# Can this machine run nspawn at all (an unprivileged CI container cannot)? Only then skip;
# a container that starts but fails to boot is a test failure, not a skip.
if ! probe=$(SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 timeout 60 systemd-nspawn -q -D "$ROOT" \
    --machine=attgw-probe --register=no --keep-unit --private-network --read-only \
    /bin/true 2>&1); then
    skip "systemd-nspawn cannot start a container here: $(tail -1 <<<"$probe")"
fi
[[ ${1:-} == --prepare ]] && { log "prepared: $ROOT, $BUNDLE"; exit 0; }

[[ -x $REPO/.venv/bin/python ]] || make -C "$REPO" venv >/dev/null
if [[ $# -eq 0 ]]; then
    set -- -v
fi
REPORT=$(mktemp)
export ATTGW_NSPAWN_ROOT=$ROOT ATTGW_NSPAWN_BUNDLE=$BUNDLE ATTGW_SYSTEMD_TEST=1
export ATTGW_SYSTEMD_REPORT=$REPORT ATTGW_SYSTEMD_KEEP_LOG=$CACHE/last-boot.log
log "root $ROOT, bundle $BUNDLE"
cd "$REPO"
t0=$SECONDS
set +e
"$REPO/.venv/bin/python" -m pytest -p no:cacheprovider -p no:xdist --timeout=900 \
    tests/systemd "$@"
rc=$?
set -e
log "summary (container console: $CACHE/last-boot.log):"
sed 's/^/    /' "$REPORT" >&2
rm -f "$REPORT"
log "pytest exit status $rc after $((SECONDS - t0)) s"
exit $rc
