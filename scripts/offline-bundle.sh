#!/usr/bin/env bash
# `make offline-bundle` (issue 17): everything a technician carries to a site without internet.
#
#   scripts/offline-bundle.sh [--out DIR] [--arch "arm64 amd64"]
#
# Makes DIR/attendance-gateway-offline-<version>/ and the same as one .tar.gz beside it:
#   attendance-gateway_<version>_<arch>.deb   one per architecture (arm64: the Pi)
#   install.sh                                checks the sums, picks the .deb, installs it
#   SHA256SUMS                                of everything above (sha256sum -c SHA256SUMS)
#   README.txt                                the three commands
# The packages depend only on what Raspberry Pi OS Lite (Bookworm) already has: python3 3.11,
# systemd and libc6, so no other .deb has to travel.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$REPO/dist
ARCHES="arm64 amd64"
while (($#)); do
    case $1 in
        --out) OUT=$(realpath -m "${2:?}"); shift ;;
        --arch) ARCHES=${2:?}; shift ;;
        -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "offline-bundle.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO/gateway/__init__.py")
NAME=attendance-gateway-offline-$VERSION
DIR=$OUT/$NAME
rm -rf "$DIR"
mkdir -p "$DIR"
for arch in $ARCHES; do
    bash "$REPO/scripts/build-deb.sh" --arch "$arch" --out "$DIR" >/dev/null
done

cat >"$DIR/install.sh" <<'EOF'
#!/bin/sh
# Install attendance-gateway from this folder, without internet (docs/install.md, "Offline
# bundle"). Run as root from anywhere: sudo sh install.sh
set -eu
cd "$(dirname "$0")"
say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo sh $0"
say "checking SHA256SUMS"
sha256sum --quiet -c SHA256SUMS || die "a file is damaged or missing (copy the bundle again)"
arch=$(dpkg --print-architecture)
set -- attendance-gateway_*_"$arch".deb
[ -f "$1" ] || die "no package for this machine's architecture ($arch) in this bundle"
# The package needs only what Raspberry Pi OS Lite has; say so plainly if this is not one.
python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
    || die "python3 3.11 is missing: this needs Raspberry Pi OS / Debian 12 (Bookworm)"
command -v systemctl >/dev/null || die "systemd is missing"
say "installing $1 (config and data are kept; the service restarts once)"
# confold: a config.toml changed on site is never replaced. apt installs a local file without
# a network when its dependencies are present.
DEBIAN_FRONTEND=noninteractive apt-get install -y --allow-downgrades \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "./$1"
say "installed: $(gatewayctl --version)"
say "next: edit /etc/attendance-gateway/config.toml (and mqtt.password), then"
say "      gatewayctl config check && systemctl restart attendance-gateway && gatewayctl status"
EOF
chmod 0755 "$DIR/install.sh"

cat >"$DIR/README.txt" <<EOF
attendance-gateway $VERSION: offline installation bundle

On the Raspberry Pi (Raspberry Pi OS Lite 64-bit, Bookworm), from this folder:

    sha256sum -c SHA256SUMS
    sudo sh install.sh

Then edit /etc/attendance-gateway/config.toml and mqtt.password, and run
gatewayctl config check; sudo systemctl restart attendance-gateway; gatewayctl status.
Upgrades: the same, with a newer bundle. Roll back: the older bundle's install.sh.
Full guide: /opt/attendance-gateway/docs/install.md once installed.
EOF

(cd "$DIR" && sha256sum -- *.deb install.sh README.txt >SHA256SUMS)
tar -C "$OUT" --owner=0 --group=0 -czf "$OUT/$NAME.tar.gz" "$NAME"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")
printf '[offline-bundle] %s\n' "$DIR" "$OUT/$NAME.tar.gz ($(du -h "$OUT/$NAME.tar.gz" | cut -f1))" >&2
echo "$OUT/$NAME.tar.gz"
