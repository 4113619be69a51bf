#!/usr/bin/env bash
# Static checks of the systemd files, runnable in CI (no running systemd needed):
#   1. systemd-analyze verify --man=no: must print nothing. Unknown keys and bad values are
#      only warnings with exit status 0 (notes/pi-serial-gpio-systemd.md §3.3), so any
#      output at all fails the check.
#   2. systemd-analyze security --offline=true: exposure must be <= 2.0 (the --threshold
#      scale is x10, so 20). Prints the score.
#   3. systemd-sysusers and systemd-tmpfiles apply our files to a throw-away --root.
#
# verify insists that ExecStart= exists and is executable, and `--root=` does not help (it
# still checks the host path, and wants every unit the service depends on inside the root).
# So verify runs on a copy of the unit in a temp dir whose ExecStart= points at a stub
# executable there; the copy differs from the real unit in that one path and nothing else
# (checked below with diff).
#
# Usage: scripts/check-unit.sh [UNIT_FILE]    exit 0 = all good, 1 = a check failed
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
UNIT=${1:-$REPO/systemd/attendance-gateway.service}
SYSUSERS=$REPO/systemd/attendance-gateway.sysusers.conf
TMPFILES=$REPO/systemd/attendance-gateway.tmpfiles.conf
REAL_EXEC=/opt/attendance-gateway/venv/bin/gatewayctl
MAX_SCORE=2.0

command -v systemd-analyze >/dev/null || { echo "check-unit: systemd-analyze not found" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

# -- 1. verify -----------------------------------------------------------------------------
printf '#!/bin/sh\nexit 0\n' >"$work/gatewayctl"
chmod 0755 "$work/gatewayctl"
copy=$work/$(basename "$UNIT")
sed "s#^ExecStart=$REAL_EXEC #ExecStart=$work/gatewayctl #" "$UNIT" >"$copy"
if [[ $(diff "$UNIT" "$copy" | grep -c '^[<>]') -ne 2 ]]; then
    echo "check-unit: FAIL: expected exactly one ExecStart=$REAL_EXEC line in $UNIT" >&2
    failed=1
fi
# cd: verify also loads units from the current directory's name-alikes; keep it neutral.
out=$(cd "$work" && systemd-analyze verify --man=no "$copy" 2>&1) || {
    echo "check-unit: FAIL: systemd-analyze verify exited non-zero" >&2
    failed=1
}
if [[ -n $out ]]; then
    echo "check-unit: FAIL: systemd-analyze verify printed:" >&2
    printf '%s\n' "$out" | sed "s#$work/#<unit-dir>/#g" >&2
    failed=1
else
    echo "check-unit: verify: clean"
fi

# -- 2. security score ---------------------------------------------------------------------
sec=$(cd "$work" && systemd-analyze security --offline=true --threshold=20 "$UNIT" 2>&1) && rc=0 || rc=$?
score=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' | tail -1)
if [[ -z $score ]]; then
    echo "check-unit: FAIL: no exposure score in systemd-analyze security output:" >&2
    printf '%s\n' "$sec" | tail -5 >&2
    failed=1
elif [[ $rc -ne 0 ]] || awk -v s="$score" -v m="$MAX_SCORE" 'BEGIN{exit !(s > m)}'; then
    echo "check-unit: FAIL: security exposure $score (must be <= $MAX_SCORE)" >&2
    printf '%s\n' "$sec" | grep '✗' >&2 || true
    failed=1
else
    echo "check-unit: security exposure: $score (<= $MAX_SCORE)"
fi

# -- 3. sysusers + tmpfiles into a scratch root -------------------------------------------
root=$work/root
mkdir -p "$root/etc" "$root/var/lib" "$root/run"
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
    if out=$(systemd-sysusers --root="$root" "$SYSUSERS" 2>&1) \
        && grep -q '^attgw:' "$root/etc/passwd" \
        && grep -Eq '^gpio:.*:attgw' "$root/etc/group" \
        && grep -Eq '^dialout:.*:attgw' "$root/etc/group"; then
        echo "check-unit: sysusers: attgw created, member of dialout and gpio"
    else
        echo "check-unit: FAIL: systemd-sysusers on $SYSUSERS: $out" >&2
        failed=1
    fi
    if out=$(systemd-tmpfiles --root="$root" --create "$TMPFILES" 2>&1) \
        && [[ -d $root/etc/attendance-gateway && -d $root/var/lib/attendance-gateway ]]; then
        echo "check-unit: tmpfiles: directories created"
    else
        echo "check-unit: FAIL: systemd-tmpfiles on $TMPFILES: $out" >&2
        failed=1
    fi
fi

exit $failed
