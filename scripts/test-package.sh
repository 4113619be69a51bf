#!/usr/bin/env bash
# Issue 17: the Debian package in a booted Debian bookworm (systemd-nspawn): install on a clean
# root, punches flow; upgrade with a backlog pending; downgrade; purge keeps the data;
# reinstall picks it up (tests/package/test_package_lifecycle.py).
#
# Usage: sudo scripts/test-package.sh [pytest args...]
#   ATTGW_NSPAWN_CACHE=DIR   where the pristine root is cached (default
#                            /var/cache/attendance-gateway-test, outside the repo)
#   ATTGW_NSPAWN_MIRROR=URL  Debian mirror (default: the first URIs: line apt uses)
#   ATTGW_NSPAWN_REBUILD=1   throw the cached root away first
# Each test boots a fresh copy of the cached root (a clean root every time), so the cache is
# never changed by a run. Same rig as `make test-systemd` (scripts/test-systemd.sh, issue 12):
# debootstrap + `systemd-nspawn -b --register=no --private-network`, driven with nsenter.
# Exit status: pytest's; 0 with "SKIP:" printed only where nspawn cannot be used.
#
#   sudo scripts/test-package.sh --arm64
# The arm64 package in a copy of the arm64 root of `make test-pi` (qemu-user; built by
# scripts/test-pi.sh if missing): apt installs it (pulling systemd, which that minbase root
# lacks and Raspberry Pi OS has), then `gatewayctl --version`, `gatewayctl config check` and
# lgpio's aarch64 extension run there. Slow (qemu): a few minutes.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ATTGW_NSPAWN_CACHE:-/var/cache/attendance-gateway-test}
SUITE=bookworm
# No python3-venv, no pip: the package must need only what Raspberry Pi OS Lite has.
# mosquitto(-clients): the container's broker and a subscriber; sqlite3: look at the store.
PKGS=systemd,systemd-sysv,dbus,python3,mosquitto,mosquitto-clients,procps,sqlite3
KEY=$(printf 'pkgtest %s %s %s\n' "$SUITE" "$PKGS" "$(uname -m)" | sha256sum | cut -c1-12)
ROOT=$CACHE/pkgroot-$KEY
DEBS=$REPO/build/pkgtest

log() { printf '[test-package] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
skip() { printf 'SKIP: make test-package: %s\n' "$*"; exit 0; }

# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"
mirror() { debian_mirror "${ATTGW_NSPAWN_MIRROR:-}"; }

[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, systemd-nspawn); run: sudo make test-package"
for tool in debootstrap systemd-nspawn nsenter dpkg-deb lintian; do
    if ! command -v "$tool" >/dev/null; then
        command -v apt-get >/dev/null || skip "$tool missing and no apt-get"
        log "installing debootstrap systemd-container lintian"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap systemd-container \
            lintian >/dev/null || skip "could not install $tool"
        break
    fi
done

bootstrap_root() {
    if [[ -n ${ATTGW_NSPAWN_REBUILD:-} ]]; then rm -rf --one-file-system "$ROOT"; fi
    [[ -e $ROOT/.attgw-bootstrapped ]] && return
    local tmp=$ROOT.tmp boot_log=$CACHE/pkgroot-$KEY.log t0=$SECONDS
    rm -rf --one-file-system "$tmp" "$ROOT"
    mkdir -p "$CACHE"
    log "debootstrap $SUITE into $ROOT from $(mirror) (about 2 min, once)"
    debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$tmp" "$(mirror)" \
        >"$boot_log" 2>&1 || { tail -20 "$boot_log" >&2; die "debootstrap failed ($boot_log)"; }
    # No network in the container: the broker listens on loopback, anonymous.
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' \
        >"$tmp/etc/mosquitto/conf.d/attgw-test.conf"
    echo attgw-pkgtest >"$tmp/etc/hostname"
    printf '127.0.0.1\tlocalhost attgw-pkgtest\n::1\t\tlocalhost ip6-localhost\n' \
        >"$tmp/etc/hosts"
    ln -sf /dev/null "$tmp/etc/systemd/system/console-getty.service"
    ln -sf /dev/null "$tmp/etc/systemd/system/getty@.service"
    rm -f "$tmp/var/cache/apt/archives/"*.deb
    touch "$tmp/.attgw-bootstrapped"
    mv "$tmp" "$ROOT"
    log "debootstrap done in $((SECONDS - t0)) s"
}

# Three builds of this tree: as it is (v1), the same with a later version (v2: same store
# schema), and a later one again whose store schema gains a step (v3: one more migration),
# to prove an in-place migration and a refused downgrade. Test builds carry a +pkgtestN version suffix.
build_debs() {
    rm -rf "$DEBS"
    mkdir -p "$DEBS"
    local v1 n src
    v1=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/gateway/__init__.py")
    bash "$REPO/scripts/build-deb.sh" --out "$DEBS" >/dev/null
    # Every remaining tag is overridden with its reason (packaging/debian/lintian-overrides).
    log "lintian"
    lintian --fail-on error,warning "$DEBS"/attendance-gateway_*_amd64.deb \
        2> >(grep -v '^running with root' >&2) || die "lintian found something (above)"
    # The first install goes through the offline bundle, as at a site without internet.
    bash "$REPO/scripts/offline-bundle.sh" --arch amd64 --out "$DEBS/bundle" >/dev/null
    for n in 2 3; do
        src=$DEBS/src$n
        mkdir -p "$src"
        tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist \
            --exclude=./.pi-root --exclude=./.demo --exclude=./.hypothesis \
            --exclude='__pycache__' --exclude='*.egg-info' --exclude=./.mypy_cache \
            -cf - . | tar -C "$src" -xf -
        sed -i "s/^version = \"$v1\"/version = \"$v1+pkgtest$n\"/" "$src/pyproject.toml"
        sed -i "s/^__version__ = \"$v1\"/__version__ = \"$v1+pkgtest$n\"/" \
            "$src/gateway/__init__.py"
        if [[ $n == 3 ]]; then
            printf '\nMIGRATIONS.append(["CREATE TABLE pkgtest_v3 (note TEXT)"])\n%s\n' \
                'SCHEMA_VERSION = len(MIGRATIONS)' >>"$src/gateway/store/schema.py"
        fi
        bash "$REPO/scripts/build-deb.sh" --src "$src" --out "$DEBS" >/dev/null
        rm -rf "$src"
    done
    ls "$DEBS"/*.deb >&2
}

arm64() {
    local pi_root=${PI_ROOT:-$REPO/.pi-root} work deb rc=0
    if [[ ! -e $pi_root/.attgw-bootstrapped || ! -x $pi_root/opt/venv/bin/python ]]; then
        log "building the arm64 root of make test-pi ($pi_root)"
        # Only the root is wanted here: collect no tests (pytest's "nothing collected" is 5).
        bash "$REPO/scripts/test-pi.sh" -q --co tests/package/conftest.py >&2 || true
        [[ -e $pi_root/.attgw-bootstrapped ]] || die "scripts/test-pi.sh did not build $pi_root"
    fi
    deb=$(bash "$REPO/scripts/build-deb.sh" --arch arm64 --out "$DEBS/arm64")
    work=$(mktemp -d /var/tmp/attgw-pkg-arm64.XXXXXX)
    log "copy of $pi_root in $work (the test-pi root itself stays as it is)"
    cp -a --reflink=auto "$pi_root" "$work/root"
    local r=$work/root
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount --make-rslave "$r/dev"
    mount -t tmpfs tmpfs "$r/run"
    # shellcheck disable=SC2064
    trap "umount -R '$r/dev' '$r/proc' '$r/run' 2>/dev/null || umount -l '$r/dev'; rm -rf --one-file-system '$work'" EXIT
    cp -L /etc/resolv.conf "$r/etc/resolv.conf"
    cp "$deb" "$r/root/"
    local in=(chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
        DEBIAN_FRONTEND=noninteractive)
    log "in the arm64 root: $("${in[@]}" uname -m), $("${in[@]}" python3 --version)"
    local t0=$SECONDS
    "${in[@]}" sh -c 'apt-get update -q >/dev/null && apt-get install -y -q "/root/$1"' \
        sh "$(basename "$deb")" >&2 || die "apt-get install of $(basename "$deb") failed"
    log "installed in $((SECONDS - t0)) s (qemu-user, with systemd pulled from the mirror)"
    "${in[@]}" gatewayctl --version || rc=1
    "${in[@]}" gatewayctl config check /etc/attendance-gateway/config.toml || rc=1
    "${in[@]}" /opt/attendance-gateway/venv/bin/python3 -c \
        'import platform, lgpio; print("lgpio", lgpio.LGPIO_PY_VERSION, "on", platform.machine())' \
        || rc=1
    ((rc == 0)) && log "arm64 package: OK" || log "arm64 package: FAILED"
    return $rc
}

if [[ ${1:-} == --arm64 ]]; then
    [[ -x $REPO/.venv/bin/python ]] || make -C "$REPO" venv >/dev/null
    mkdir -p "$DEBS"
    arm64
    exit $?
fi

bootstrap_root
[[ -x $REPO/.venv/bin/python ]] || make -C "$REPO" venv >/dev/null
build_debs
[[ ${1:-} == --prepare ]] && { log "prepared: $ROOT, $DEBS"; exit 0; }
if [[ $# -eq 0 ]]; then set -- -v; fi
export ATTGW_PKGTEST_ROOT=$ROOT ATTGW_PKGTEST_DEBS=$DEBS ATTGW_PACKAGE_TEST=1
cd "$REPO"
rm -f "$DEBS/figures.txt"
rc=0
"$REPO/.venv/bin/python" -m pytest -p no:cacheprovider -p no:xdist -o addopts= \
    tests/package "$@" || rc=$?
if [[ -s $DEBS/figures.txt ]]; then log "figures (docs/install.md):"; cat "$DEBS/figures.txt"; fi
exit $rc
