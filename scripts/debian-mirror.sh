# shellcheck shell=bash
# Sourced by the scripts that debootstrap a Debian root (test-pi.sh, test-systemd.sh,
# test-package.sh): the mirror to use.
#
#   debian_mirror [OVERRIDE]   OVERRIDE if set, else the first non-security URIs: line apt
#                              uses on this machine, else deb.debian.org
debian_mirror() {
    if [[ -n ${1:-} ]]; then echo "$1"; return; fi
    local uri
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    echo "${uri:-http://deb.debian.org/debian}"
}
