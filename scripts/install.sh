#!/usr/bin/env bash
# Install or upgrade attendance-gateway on Raspberry Pi OS Bookworm (64-bit) from this checkout.
# Idempotent: run it again after `git pull` to upgrade. Config, password and data are kept.
#
#   sudo scripts/install.sh [--no-start] [--no-pip] [--root DIR] [--board-model TEXT]
#                           [--wheelhouse DIR]
#
#   --no-start          install everything but do not (re)start the service
#   --no-pip            keep the current venv (refresh only the system files)
#   --root DIR          install into DIR instead of / (tests, image staging): no apt, no
#                       systemctl, no udevadm; systemd-sysusers/-tmpfiles run with --root.
#                       The venv only works at the path it was built, i.e. inside DIR.
#   --board-model TEXT  pretend /proc/device-tree/model says TEXT (picks the GPIO package)
#   --python PY         interpreter for the venv (default python3; needs 3.11+)
#   --wheelhouse DIR    install offline: pip takes every package from DIR and never asks
#                       an index (a site without internet; docs/install.md §3)
#
# What goes where: docs/install.md. Steps: OS packages, user/groups (sysusers.d), directories
# (tmpfiles.d), udev rule, venv + the package + the board's GPIO package, config and password
# file if absent, systemd unit, `gatewayctl config check`, enable and (re)start.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=
START=1
PIP=1
BOARD_MODEL=${ATTGW_BOARD_MODEL:-}
PYTHON=python3
WHEELHOUSE=
NAME=attendance-gateway

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
    case $1 in
        --no-start) START=0 ;;
        --no-pip) PIP=0 ;;
        --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift ;;
        --root=*) ROOT=$(realpath -m "${1#*=}") ;;
        --board-model) BOARD_MODEL=${2?}; shift ;;
        --python) PYTHON=${2:?}; shift ;;
        --wheelhouse) WHEELHOUSE=$(realpath -e "${2:?--wheelhouse needs a directory}"); shift ;;
        -h | --help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done

OPT=$ROOT/opt/$NAME
VENV=$OPT/venv
ETC=$ROOT/etc/$NAME
CONFIG=$ETC/config.toml
PASSWORD=$ETC/mqtt.password
UNIT_DIR=$ROOT/etc/systemd/system
SYSUSERS=$ROOT/usr/lib/sysusers.d/$NAME.conf
TMPFILES=$ROOT/usr/lib/tmpfiles.d/$NAME.conf
UDEV=$ROOT/etc/udev/rules.d/60-$NAME.rules
COMPLETION=$ROOT/usr/share/bash-completion/completions/gatewayctl

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
real() { [[ -z $ROOT ]]; }

[[ $(id -u) -eq 0 ]] || die "run as root (sudo scripts/install.sh)"
command -v systemd-sysusers >/dev/null || die "systemd-sysusers not found: is this a systemd system?"
if [[ -n $ROOT ]]; then mkdir -p "$ROOT"; fi

# -- board -> GPIO package ------------------------------------------------------------------
# A Pi 5 needs rpi-lgpio (RPi.GPIO cannot find the RP1 GPIO block: "Cannot determine SOC
# peripheral base address", gpiozero#1172); Pi 3/4 use RPi.GPIO; anything else gets neither
# and the LEDs fall back to the null backend. Both packages own the module RPi.GPIO, so the
# other one is removed first (an SD card moved from a Pi 4 to a Pi 5).
board_model() {
    if [[ -n $BOARD_MODEL ]]; then echo "$BOARD_MODEL"; return; fi
    if [[ -r /proc/device-tree/model ]]; then tr -d '\0' </proc/device-tree/model; return; fi
    sed -n 's/^Model[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -1
}
MODEL=$(board_model)
case $MODEL in
    *"Raspberry Pi 5"* | *"Compute Module 5"*) EXTRA=pi5 GPIO_PKG=rpi-lgpio OTHER_PKG=RPi.GPIO ;;
    *"Raspberry Pi"*) EXTRA=pi GPIO_PKG=RPi.GPIO OTHER_PKG=rpi-lgpio ;;
    *) EXTRA= GPIO_PKG= OTHER_PKG= ;;
esac
step "board: ${MODEL:-unknown (not a Raspberry Pi)}; GPIO package: ${GPIO_PKG:-none (LEDs off)}"

# -- OS packages ----------------------------------------------------------------------------
if real; then
    step "OS packages"
    pkgs=(python3-venv)
    # RPi.GPIO ships no aarch64 wheel: pip compiles it.
    [[ $GPIO_PKG == RPi.GPIO ]] && pkgs+=(python3-dev gcc)
    missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if ((${#missing[@]})); then
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    else
        note "present: ${pkgs[*]}"
    fi
fi

# -- user, groups, directories, udev ---------------------------------------------------------
step "user attgw and groups (sysusers.d), directories (tmpfiles.d), udev rule"
install -D -m 0644 "$REPO/systemd/$NAME.sysusers.conf" "$SYSUSERS"
install -D -m 0644 "$REPO/systemd/$NAME.tmpfiles.conf" "$TMPFILES"
install -D -m 0644 "$REPO/systemd/60-$NAME.rules" "$UDEV"
if real; then
    systemd-sysusers "$SYSUSERS"
    systemd-tmpfiles --create "$TMPFILES"
    if command -v udevadm >/dev/null; then
        udevadm control --reload || true
        udevadm trigger --action=change --subsystem-match=gpio || true
    fi
else
    mkdir -p "$ROOT/etc"
    systemd-sysusers --root="$ROOT" "$SYSUSERS"
    systemd-tmpfiles --root="$ROOT" --create "$TMPFILES"
fi
# Numeric ids from the target's own group file (with --root, the host has no attgw).
ATTGW_GID=$(awk -F: '$1 == "attgw" {print $3}' "$ROOT/etc/group")
[[ -n $ATTGW_GID ]] || die "group attgw missing after systemd-sysusers"

# -- venv + package -------------------------------------------------------------------------
if ((PIP)); then
    step "Python venv $VENV"
    if [[ -n $WHEELHOUSE ]]; then
        # Found by make test-systemd (issue 12): a container without network had no way to
        # install. pip, the build backend and every dependency come from the wheelhouse.
        export PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELHOUSE
        note "offline: packages from $WHEELHOUSE only"
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11"
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    if [[ -n $OTHER_PKG ]] && "$VENV/bin/python" -m pip show -q "$OTHER_PKG" 2>/dev/null; then
        note "removing $OTHER_PKG (conflicts with $GPIO_PKG)"
        "$VENV/bin/python" -m pip uninstall -y -q "$OTHER_PKG"
    fi
    spec=$REPO${EXTRA:+[$EXTRA]}
    note "pip install $spec"
    # A local directory is always rebuilt and reinstalled, so a changed checkout upgrades.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$spec"
    note "installed: $("$VENV/bin/python" -m pip show attendance-gateway 2>/dev/null \
        | sed -n 's/^Version: //p')"
else
    step "venv: left as it is (--no-pip)"
fi

# The unit's Documentation= points here, so `systemctl status` shows a technician the guides.
if [[ -d $REPO/docs ]]; then
    step "documentation in $OPT/docs"
    install -d -m 0755 "$OPT/docs"
    cp -r "$REPO/docs/." "$OPT/docs/"
    rm -rf "$OPT/docs/dev"
fi

# -- config, password file -------------------------------------------------------------------
step "config in $ETC"
install -d -m 0750 -o 0 -g "$ATTGW_GID" "$ETC"
if [[ -f $REPO/config.example.toml ]]; then
    # Always refreshed, so a technician can compare it with config.toml after an upgrade.
    install -m 0644 "$REPO/config.example.toml" "$ETC/config.example.toml"
    if [[ ! -e $CONFIG ]]; then
        install -m 0640 -o 0 -g "$ATTGW_GID" "$REPO/config.example.toml" "$CONFIG"
        note "created $CONFIG from config.example.toml: edit it (gateway id, broker, terminals)"
    else
        note "kept existing $CONFIG"
    fi
else
    note "warning: $REPO/config.example.toml not found; no config installed"
fi
if [[ ! -e $PASSWORD ]]; then
    # Empty on purpose: anything written here would be taken as the password.
    (umask 0077 && : >"$PASSWORD")
    note "created empty $PASSWORD: put the broker password in it (one line)"
fi
for f in "$CONFIG" "$PASSWORD"; do
    if [[ -e $f ]]; then chown 0:"$ATTGW_GID" "$f" && chmod 0640 "$f"; fi
done

# -- unit ------------------------------------------------------------------------------------
step "systemd unit $UNIT_DIR/$NAME.service"
install -D -m 0644 "$REPO/systemd/$NAME.service" "$UNIT_DIR/$NAME.service"

# Technicians type `gatewayctl`: link it onto the PATH (only ever replace our own link).
LINK=$ROOT/usr/local/bin/gatewayctl
if [[ ! -e $LINK || -L $LINK ]]; then
    install -d "$(dirname "$LINK")"
    ln -sfn "/opt/$NAME/venv/bin/gatewayctl" "$LINK"
else
    note "warning: $LINK exists and is not a link; left alone"
fi

# -- bash completion (only if gatewayctl offers it) -------------------------------------------
if [[ -x $VENV/bin/gatewayctl ]] && out=$("$VENV/bin/gatewayctl" completion bash 2>/dev/null) \
    && [[ -n $out ]]; then
    install -d "$(dirname "$COMPLETION")"
    printf '%s\n' "$out" >"$COMPLETION"
    note "bash completion installed"
elif [[ -f $REPO/scripts/gatewayctl.bash-completion ]]; then
    install -D -m 0644 "$REPO/scripts/gatewayctl.bash-completion" "$COMPLETION"
    note "bash completion installed"
fi

# -- config check ----------------------------------------------------------------------------
config_ok=1
if [[ -x $VENV/bin/gatewayctl && -e $CONFIG ]]; then
    step "gatewayctl config check"
    if ! "$VENV/bin/gatewayctl" config check "$CONFIG"; then
        config_ok=0
        note "the config has errors (above): fix $CONFIG, then: systemctl restart $NAME"
    fi
else
    step "gatewayctl config check: skipped (no gatewayctl or no config yet)"
fi

# -- enable and (re)start --------------------------------------------------------------------
if real; then
    step "systemctl"
    systemctl daemon-reload
    systemctl enable "$NAME.service"
    if ((START && config_ok)); then
        # enable --now would leave an upgraded daemon running the old code.
        if systemctl is-active -q "$NAME.service"; then
            systemctl restart "$NAME.service"
        else
            systemctl start "$NAME.service"
        fi
        note "$(systemctl is-active "$NAME.service" || true): $NAME"
    else
        note "enabled, not started"
    fi
else
    step "systemctl: skipped (--root $ROOT)"
fi

cat <<EOF

Done. Next:
  - edit $CONFIG and put the broker password in $PASSWORD
  - let technicians use gatewayctl: usermod -aG attgw <user>   (then log in again)
  - check: gatewayctl status; gatewayctl doctor; journalctl -u $NAME -f
EOF
((config_ok)) || exit 2
