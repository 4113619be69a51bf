#!/usr/bin/env bash
# Remove attendance-gateway: the service, the venv and the system files.
# KEEPS the data (/var/lib/attendance-gateway: the punch store and its backups) and the config
# (/etc/attendance-gateway) unless --purge is given. The user attgw stays too (it owns the
# kept files) unless --purge.
#
#   sudo scripts/uninstall.sh [--purge] [--root DIR]
#
#   --purge     also delete the data, the config and the user: unsent punches are lost!
#   --root DIR  work on DIR instead of / (tests); no systemctl, no userdel
set -euo pipefail

NAME=attendance-gateway
ROOT=
PURGE=0
while (($#)); do
    case $1 in
        --purge) PURGE=1 ;;
        --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift ;;
        --root=*) ROOT=$(realpath -m "${1#*=}") ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $(id -u) -eq 0 ]] || { echo "uninstall.sh: run as root" >&2; exit 1; }

# Installed from the package (issue 17): remove it with apt. --purge also deletes the data, as
# this script always did with --purge (the package's own purge keeps it unless asked).
if [[ -z $ROOT ]] && dpkg-query -W -f '${db:Status-Abbrev}' "$NAME" 2>/dev/null | grep -q '^ii'; then
    if ((PURGE)); then
        exec env ATTGW_PURGE_DATA=yes apt-get purge -y "$NAME"
    fi
    exec apt-get remove -y "$NAME"
fi

say() { printf '%s\n' "$*"; }
gone() { if [[ -e $1 || -L $1 ]]; then rm -rf --one-file-system "$1" && say "removed $1"; fi; }

if [[ -z $ROOT ]] && command -v systemctl >/dev/null; then
    systemctl disable --now "$NAME.service" 2>/dev/null || true
fi
gone "$ROOT/etc/systemd/system/$NAME.service"
gone "$ROOT/etc/systemd/system/$NAME.service.d"
if [[ -z $ROOT ]] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl reset-failed "$NAME.service" 2>/dev/null || true
fi
gone "$ROOT/opt/$NAME"
gone "$ROOT/usr/share/bash-completion/completions/gatewayctl"
if [[ $(readlink "$ROOT/usr/local/bin/gatewayctl" 2>/dev/null) == /opt/$NAME/* ]]; then
    gone "$ROOT/usr/local/bin/gatewayctl"
fi
gone "$ROOT/etc/udev/rules.d/60-$NAME.rules"
gone "$ROOT/usr/lib/tmpfiles.d/$NAME.conf"
gone "$ROOT/run/$NAME"

if ((PURGE)); then
    gone "$ROOT/var/lib/$NAME"
    gone "$ROOT/etc/$NAME"
    gone "$ROOT/usr/lib/sysusers.d/$NAME.conf"
    if [[ -z $ROOT ]] && id attgw >/dev/null 2>&1; then
        userdel attgw && say "removed user attgw"
        # The gpio group is shared with other software: left alone.
    fi
else
    # sysusers.d stays with the data: the user that owns it keeps being recreated alike.
    for d in "$ROOT/var/lib/$NAME" "$ROOT/etc/$NAME"; do
        [[ -e $d ]] && say "kept $d (remove with --purge)"
    done
fi
say "attendance-gateway uninstalled"
