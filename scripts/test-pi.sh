#!/usr/bin/env bash
# Run the test suite "as on a Pi": inside a Debian Bookworm arm64 root under qemu-user.
#
# What this proves: the wheels we depend on exist and behave on aarch64 with Python 3.11.2
# (the Raspberry Pi OS Bookworm interpreter), and there are no byte-order/struct surprises.
# What it does not prove: real GPIO, UART timing, speed (qemu-user is ~5x slower), the Pi
# kernel. Recipe verified in /work/shared/notes/pi-serial-gpio-systemd.md §5.
#
# Usage: sudo scripts/test-pi.sh [pytest args...]     (default: -q -x -m "not slow")
#   PI_ROOT=DIR      where the arm64 root is cached (default: <repo>/.pi-root, git-ignored)
#   PI_MIRROR=URL    Debian mirror (default: the first URIs: line apt uses, else deb.debian.org)
#   PI_REBUILD=1     throw the cached root away first
# First run: ~4-5 min (debootstrap + pip); later runs reuse the root and the pip cache.
# Not meant for CI on every push: it needs root, binfmt_misc and a few minutes.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${PI_ROOT:-$REPO/.pi-root}
SUITE=bookworm
STAMP=$ROOT/.attgw-bootstrapped
BOOTLOG=${TMPDIR:-/tmp}/attgw-pi-debootstrap.log
# python3-venv for the venv, mosquitto for the broker tests, socat for the serial pty tests,
# ca-certificates so pip can reach PyPI from inside the root.
PKGS=python3,python3-venv,python3-pip,mosquitto,socat,ca-certificates,procps

log() { printf '[test-pi] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mounts)"

if [[ $# -eq 0 ]]; then
    set -- -q -x -m "not slow"
fi

# shellcheck source=scripts/debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"
mirror() { debian_mirror "${PI_MIRROR:-}"; }

ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -q && apt-get install -y -q "${missing[@]}"
    fi
    # binfmt_misc lets the kernel run arm64 ELF files through qemu, so child processes
    # (pip, mosquitto, socat, subprocess-based tests) work too, not just one python.
    if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
        update-binfmts --enable qemu-aarch64
    fi
}

MOUNTED=()
cleanup() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -R "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_root() {
    mount -t proc proc "$ROOT/proc"; MOUNTED+=("$ROOT/proc")
    mount -t sysfs sys "$ROOT/sys"; MOUNTED+=("$ROOT/sys")
    # rslave: unmounting the bind later must not propagate back and unmount the host's /dev.
    mount --rbind /dev "$ROOT/dev"; mount --make-rslave "$ROOT/dev"; MOUNTED+=("$ROOT/dev")
    mkdir -p "$ROOT/run"
    mount -t tmpfs tmpfs "$ROOT/run"; MOUNTED+=("$ROOT/run")
    cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    # minbase has no /etc/hosts, so "localhost" (the TLS test certificates' name) would
    # not resolve.
    if ! grep -qs '^127\.0\.0\.1[[:space:]].*localhost' "$ROOT/etc/hosts"; then
        printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
            >>"$ROOT/etc/hosts"
    fi
    if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
        cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-bundle.crt"
        ROOT_ENV+=(PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt
            SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt)
    fi
}

# The root trusts the host's CA bundle (which may hold a TLS-intercepting proxy's CA, as on
# the machine these notes were made on) and inherits the host's pip index/proxy settings.
ROOT_ENV=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_DEFAULT_TIMEOUT http_proxy https_proxy \
    HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY; do
    if [[ -n ${!var:-} ]]; then ROOT_ENV+=("$var=${!var}"); fi
done
in_root() { chroot "$ROOT" env -i "${ROOT_ENV[@]}" "$@"; }

ensure_host_tools

if [[ -n ${PI_REBUILD:-} && -d $ROOT ]]; then
    log "removing cached root $ROOT"
    rm -rf --one-file-system "$ROOT"
fi

if [[ ! -e $STAMP ]]; then
    rm -rf --one-file-system "$ROOT"
    mkdir -p "$ROOT"
    log "debootstrap arm64 $SUITE into $ROOT from $(mirror) (about 2 min)"
    t0=$SECONDS
    debootstrap --arch=arm64 --variant=minbase --include="$PKGS" "$SUITE" "$ROOT" "$(mirror)" \
        >"$BOOTLOG" 2>&1 || { tail -20 "$BOOTLOG"; die "debootstrap failed (log: $BOOTLOG)"; }
    log "debootstrap done in $((SECONDS - t0)) s"
    touch "$STAMP"
fi

mount_root
log "root: $(in_root uname -m), $(in_root python3 --version)"

# A fresh copy of the working tree (including files others have not committed yet), without
# the host venv, caches and the root itself.
rm -rf "$ROOT/src"
mkdir -p "$ROOT/src"
tar -C "$REPO" --exclude=./.venv --exclude=./.pi-root --exclude=./.git --exclude=./.demo \
    --exclude='__pycache__' --exclude='*.egg-info' --exclude=./.mypy_cache \
    --exclude=./.ruff_cache --exclude=./.pytest_cache --exclude=./.hypothesis \
    --exclude=./build --exclude=./dist -cf - . | tar -C "$ROOT/src" -xf -

t0=$SECONDS
if [[ ! -x $ROOT/opt/venv/bin/python ]]; then
    in_root python3 -m venv /opt/venv
fi
# pi5 extra = rpi-lgpio (+ lgpio aarch64 wheel): proves the Pi 5 GPIO package installs.
# The editable install points at /src, refreshed above, so pip only has to run again when
# pyproject.toml changed (it costs 1-2 min under qemu).
want=$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)
if [[ $(cat "$ROOT/opt/venv/.attgw-pyproject.sha256" 2>/dev/null) != "$want" ]]; then
    in_root /opt/venv/bin/pip install -q --disable-pip-version-check -e '/src[test,pi5]' \
        || die "pip install failed"
    echo "$want" >"$ROOT/opt/venv/.attgw-pyproject.sha256"
fi
log "venv ready in $((SECONDS - t0)) s"

log "running: python -m pytest $*"
t0=$(date +%s.%N)
set +e
in_root sh -c 'cd /src && exec /opt/venv/bin/python -m pytest -p no:cacheprovider "$@"' \
    pytest "$@"
rc=$?
set -e
t1=$(date +%s.%N)
log "pytest exit status $rc, duration $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (aarch64 under qemu-user)"
exit $rc
