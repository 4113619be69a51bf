#!/usr/bin/env bash
# Build attendance-gateway_<version>_<arch>.deb (issue 17; why this shape: docs/design.md,
# "The Debian package").
#
#   scripts/build-deb.sh [--arch amd64|arm64] [--out DIR] [--src DIR]
#
#   --arch   Debian architecture of the package (default: this machine's)
#   --out    where the .deb goes (default: <repo>/dist)
#   --src    the source tree to package (default: this checkout; tests package a copy)
#
# The package carries a ready venv in /opt/attendance-gateway/venv for Debian 12's
# /usr/bin/python3 (CPython 3.11): it is assembled here for the target architecture without
# running the target's Python (wheels for cp311 + manylinux_2_17..2_36_<machine>, unpacked with
# `pip install --target --platform`), so arm64 builds on an amd64 machine. A dependency with
# no wheel for the target is a clear failure, never a silent omission.
# Needs: a Python 3.11 with pip (default <repo>/.venv/bin/python, or $PYTHON), dpkg-deb,
# and the package index (or a pip wheel cache) for the dependencies.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SRC=$REPO
OUT=$REPO/dist
ARCH=$(dpkg --print-architecture)
while (($#)); do
    case $1 in
        --arch) ARCH=${2:?}; shift ;;
        --out) OUT=$(realpath -m "${2:?}"); shift ;;
        --src) SRC=$(realpath "${2:?}"); shift ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[build-deb] %s\n' "$*" >&2; }
die() { printf '[build-deb] error: %s\n' "$*" >&2; exit 1; }

PY=${PYTHON:-$REPO/.venv/bin/python}
if [[ ! -x $PY ]]; then
    # No dev venv (e.g. scripts/install.sh on a Pi): a throwaway one, since Bookworm's own
    # python3 has no pip (PEP 668).
    PY=$REPO/build/deb/buildenv/bin/python
    if [[ ! -x $PY ]]; then
        python3 -m venv "$REPO/build/deb/buildenv" \
            || die "python3 -m venv failed (apt-get install python3-venv)"
    fi
fi
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$PY is not CPython 3.11: the bytecode and wheels must match Debian 12's python3"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg-dev)"

case $ARCH in
    amd64) MACHINE=x86_64 ;;
    arm64) MACHINE=aarch64 ;;
    *) die "unsupported architecture $ARCH (amd64 or arm64)" ;;
esac

NAME=attendance-gateway
OPT=/opt/$NAME
VENV=$OPT/venv
SITE_REL=lib/python3.11/site-packages

VERSION=$("$PY" -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$SRC/pyproject.toml")
CODE_VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$SRC/gateway/__init__.py")
[[ $VERSION == "$CODE_VERSION" ]] \
    || die "pyproject.toml says $VERSION but gateway/__init__.py says $CODE_VERSION"
SCHEMA=$(cd "$SRC" && "$PY" -c 'from gateway.store.schema import SCHEMA_VERSION as v; print(v)')
# The deps exactly as pyproject.toml lists them; on arm64 also the Pi's GPIO package:
# rpi-lgpio (RPi.GPIO's API on lgpio) drives the LEDs on a Pi 3, 4 and 5 alike, so one
# package fits every board (RPi.GPIO itself has no aarch64 wheel and fails on a Pi 5).
mapfile -t DEPS < <("$PY" -c 'import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(p["dependencies"]))
if sys.argv[2] == "arm64":
    print("\n".join(p["optional-dependencies"]["pi5"]))' "$SRC/pyproject.toml" "$ARCH")

# manylinux_2_17 .. 2_36: every glibc wheel that runs on bookworm (glibc 2.36). pip does not
# widen an explicit --platform to older glibc levels by itself.
PLATFORM_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311
    --platform "manylinux2014_$MACHINE")
for minor in $(seq 17 36); do PLATFORM_ARGS+=(--platform "manylinux_2_${minor}_$MACHINE"); done

BUILD=$REPO/build/deb
KEY=$(printf '%s\n' "$ARCH" "${DEPS[@]}" | sha256sum | cut -c1-12)
WHEELS=$BUILD/wheels-$ARCH-$KEY
mkdir -p "$BUILD" "$OUT"
# One staging tree per run: `make offline-bundle` and `make test-package` may build at once.
STAGE=$(mktemp -d "$BUILD/stage-$ARCH.XXXXXX")
OWNDIR=$STAGE.wheel
trap 'rm -rf "$STAGE" "$OWNDIR"' EXIT

# -- wheels ----------------------------------------------------------------------------------
if [[ ! -e $WHEELS/.complete ]]; then
    log "wheels for $ARCH (cp311, manylinux $MACHINE): ${DEPS[*]}"
    rm -rf "$WHEELS"
    mkdir -p "$WHEELS"
    if ! "$PY" -m pip download -q --disable-pip-version-check -d "$WHEELS" \
        "${PLATFORM_ARGS[@]}" "${DEPS[@]}"; then
        die "a dependency has no wheel for $ARCH (cp311, manylinux_2_17..2_36_$MACHINE) on the
    index (pip's message above names it). Pure-Python packages are universal; a binary one
    needs a published wheel for this platform: pick a version that has one, or build the
    package on the target and add the wheel to pip's find-links. Not building a package
    that would lack it."
    fi
    touch "$WHEELS/.complete"
fi
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$OWNDIR" "$SRC" >/dev/null 2>&1 \
    || "$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$OWNDIR" "$SRC" \
    || die "could not build the project's wheel from $SRC"
OWN=$(ls "$OWNDIR"/attendance_gateway-"$VERSION"-py3-none-any.whl) \
    || die "no pure-Python wheel attendance_gateway-$VERSION-py3-none-any.whl was built"

# -- the tree --------------------------------------------------------------------------------
log "staging $NAME $VERSION ($ARCH, store schema v$SCHEMA)"
mkdir -p "$STAGE/DEBIAN" "$STAGE$VENV/bin" "$STAGE$VENV/$SITE_REL"
"$PY" -m pip install -q --disable-pip-version-check --no-compile --no-index \
    --find-links "$WHEELS" --target "$STAGE$VENV/$SITE_REL" "${PLATFORM_ARGS[@]}" \
    "$OWN" "${DEPS[@]}" || die "pip could not assemble the venv from $WHEELS"
# --target writes console scripts for the build machine's interpreter: ours is written below.
rm -rf "${STAGE:?}$VENV/$SITE_REL/bin"
# A venv as `python3 -m venv` makes it, for the system interpreter of the target.
cat >"$STAGE$VENV/pyvenv.cfg" <<EOF
home = /usr/bin
include-system-site-packages = false
version = 3.11
EOF
ln -s /usr/bin/python3 "$STAGE$VENV/bin/python3"
ln -s python3 "$STAGE$VENV/bin/python"
ln -s python3 "$STAGE$VENV/bin/python3.11"
ln -s lib "$STAGE$VENV/lib64"
install -m 0755 /dev/stdin "$STAGE$VENV/bin/gatewayctl" <<EOF
#!$VENV/bin/python3
"""gatewayctl, from the attendance-gateway package."""
import sys

from gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
EOF
# Bytecode now (CPython 3.11 has one magic number for every 3.11.x): the service cannot write
# any (ProtectSystem=strict), and `gatewayctl status` must start fast on a Pi 3. checked-hash:
# valid whatever the files' times, and still ignored if someone edits a source file.
"$PY" -m compileall -q -j0 --invalidation-mode checked-hash -s "$STAGE" -p / \
    "$STAGE$VENV/$SITE_REL" >/dev/null || die "compileall failed"

install -D -m 0644 "$SRC/systemd/$NAME.service" "$STAGE/lib/systemd/system/$NAME.service"
install -D -m 0644 "$SRC/systemd/$NAME.sysusers.conf" "$STAGE/usr/lib/sysusers.d/$NAME.conf"
install -D -m 0644 "$SRC/systemd/$NAME.tmpfiles.conf" "$STAGE/usr/lib/tmpfiles.d/$NAME.conf"
install -D -m 0644 "$SRC/systemd/60-$NAME.rules" "$STAGE/lib/udev/rules.d/60-$NAME.rules"
install -D -m 0644 "$SRC/config.example.toml" "$STAGE/etc/$NAME/config.toml"
install -D -m 0644 "$SRC/config.example.toml" "$STAGE$OPT/config.example.toml"
install -d -m 0755 "$STAGE/usr/bin"
ln -s "$VENV/bin/gatewayctl" "$STAGE/usr/bin/gatewayctl"
# The unit's Documentation= points into $OPT/docs (dpkg path-excludes often drop
# /usr/share/doc on small images; these must survive).
install -d -m 0755 "$STAGE$OPT/docs"
cp -r "$SRC/docs/." "$STAGE$OPT/docs/"
rm -rf "$STAGE$OPT/docs/dev"
# Man page and completion come from the parser of the tree being packaged (written once).
install -d -m 0755 "$STAGE/usr/share/man/man1" "$STAGE/usr/share/bash-completion/completions"
DATE=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
PYTHONPATH=$SRC "$PY" "$REPO/packaging/manpage.py" --date "$DATE" \
    | gzip -9n >"$STAGE/usr/share/man/man1/gatewayctl.1.gz"
PYTHONPATH=$SRC "$PY" -c 'from gateway.cli.cmd_completion import script; print(script())' \
    >"$STAGE/usr/share/bash-completion/completions/gatewayctl"
DOC=$STAGE/usr/share/doc/$NAME
install -D -m 0644 "$REPO/packaging/debian/copyright" "$DOC/copyright"
printf '%s (%s) stable; urgency=medium\n\n  * Release %s (store schema v%s).\n\n -- %s  %s\n' \
    "$NAME" "$VERSION" "$VERSION" "$SCHEMA" \
    "attendance-gateway developers <attendance-gateway@example.com>" \
    "$(date -u -R -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")" | gzip -9n >"$DOC/changelog.gz"
install -D -m 0644 "$REPO/packaging/debian/lintian-overrides" \
    "$STAGE/usr/share/lintian/overrides/$NAME"

# -- control ---------------------------------------------------------------------------------
DEPENDS="python3 (>= 3.11~), python3 (<< 3.12), systemd"
# Binary wheels (cryptography and cffi on every arch, lgpio on arm64) need the glibc of their
# manylinux tag: depend on the highest one shipped (manylinux2014 is glibc 2.17; lgpio's
# manylinux_2_34 needs 2.34).
GLIBC=$(sed -n 's/^Tag: .*manylinux\(2014\|_2_\([0-9]*\)\)_.*/\1 \2/p' \
    "$STAGE$VENV/$SITE_REL"/*.dist-info/WHEEL \
    | awk '{ n = ($1 == "2014") ? 17 : $2; if (n > m) m = n } END { if (m) print "2." m }')
if [[ -n $GLIBC ]]; then
    DEPENDS="$DEPENDS, libc6 (>= $GLIBC)"
fi
for f in preinst postinst prerm postrm; do
    sed -e "s/@VERSION@/$VERSION/g" -e "s/@SCHEMA_VERSION@/$SCHEMA/g" \
        "$REPO/packaging/debian/$f" >"$STAGE/DEBIAN/$f"
    chmod 0755 "$STAGE/DEBIAN/$f"
done
install -m 0644 "$REPO/packaging/debian/conffiles" "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$SIZE/" \
    -e "s/@DEPENDS@/$DEPENDS/" "$REPO/packaging/debian/control.in" >"$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum >DEBIAN/md5sums)
find "$STAGE" -path "$STAGE/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
find "$STAGE" -path "$STAGE/DEBIAN" -prune -o -type f -exec chmod go-w {} +

DEB=$OUT/${NAME}_${VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
log "built $DEB ($(du -h "$DEB" | cut -f1), installed $((SIZE / 1024)) MB)"
echo "$DEB"
