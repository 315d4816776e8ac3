#!/usr/bin/env bash
# Installs the Debian package on this machine and checks it against
# INSTALL.md, then removes it again:
#
#   packaging/check-deb.sh [DEB]   # default: build-deb.sh for this machine
#
#   1. dpkg -i puts exactly the files that INSTALL.md's list ("What the
#      package puts where") names, no more and no fewer;
#   2. /usr/bin/taskworker --version names the package's version;
#      check-config accepts the installed example configuration;
#   3. systemd-analyze verify finds nothing to say about the installed unit;
#   4. an edit to the conffile /etc/taskworker/env survives a reinstall;
#   5. dpkg -r leaves only what INSTALL.md says it leaves (the conffile),
#      and dpkg -P leaves nothing.
#
# Needs root and dpkg; otherwise it says it skipped and exits 0. It refuses to
# run where taskworker is already installed or /etc/taskworker or
# /var/lib/taskworker exist, so that it never touches an operator's files.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: check-deb.sh needs root to install a package"
    exit 0
fi
if ! command -v dpkg >/dev/null 2>&1; then
    echo "skipped: check-deb.sh needs dpkg"
    exit 0
fi

deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(packaging/build-deb.sh "$(dpkg --print-architecture)" | tail -n 1)
fi
[ -f "$deb" ] || { echo "error: $deb not found" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

if dpkg-query -W -f '${Status}' taskworker 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "taskworker is installed on this machine; this check installs and removes it: dpkg -P taskworker first"
fi
for path in /usr/bin/taskworker /etc/taskworker /var/lib/taskworker; do
    [ ! -e "$path" ] || fail "$path exists; this check would touch it"
done

installed=no
cleanup() {
    if [ "$installed" = yes ]; then
        dpkg -P taskworker >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# The files INSTALL.md lists: the first word of each line that starts with
# "/" in the code block after the heading "What the package puts where".
documented=$(awk '
    /^#+ What the package puts where/ { section = 1; next }
    section && /^```/ { if (block) exit; block = 1; next }
    section && block && /^\// { print $1 }
' packaging/INSTALL.md | sort)
[ -n "$documented" ] || fail "INSTALL.md has no list of the package's files"

# 1. Install; every file where INSTALL.md says, and nothing else.
dpkg -i "$deb" >/dev/null
installed=yes
echo "ok: dpkg -i $(basename "$deb")"
actual=$(dpkg -L taskworker | while read -r p; do [ -f "$p" ] && echo "$p"; done | sort)
if [ "$documented" != "$actual" ]; then
    diff <(echo "$documented") <(echo "$actual") >&2 || true
    fail "the package's files (right) differ from INSTALL.md's list (left)"
fi
while read -r p; do
    [ -f "$p" ] || fail "$p is missing"
done <<<"$documented"
echo "ok: the $(wc -l <<<"$documented") files are where INSTALL.md says"
[ -d /etc/taskworker ] && [ "$(ls -A /etc/taskworker)" = env ] ||
    fail "/etc/taskworker holds $(ls -A /etc/taskworker | tr '\n' ' ')"
! grep -v '^#' /etc/taskworker/env | grep -q . || fail "/etc/taskworker/env has a setting that is not commented"
[ ! -e /etc/systemd/system/multi-user.target.wants/taskworker.service ] ||
    fail "the package enabled the unit"

# 2. The binary from /usr/bin, and the examples.
out=$(/usr/bin/taskworker --version)
grep -q "^taskworker ${version%%-*} (.*, rev .*)\$" <<<"$out" || fail "taskworker --version: $out"
echo "ok: $out"
(cd /usr/share/doc/taskworker/examples && taskworker check-config --config config.json \
    --env-file /etc/taskworker/env >/dev/null) || fail "check-config on the installed examples"
echo "ok: check-config accepts the installed example configuration and /etc/taskworker/env"

# 3. The unit as installed, with its ExecStart program in place.
if command -v systemd-analyze >/dev/null 2>&1; then
    out=$(SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 timeout 60 \
        systemd-analyze verify /lib/systemd/system/taskworker.service 2>&1) ||
        fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify has something to say: $out"
    grep -qx 'ExecStart=/usr/bin/taskworker run --config /etc/taskworker/config.json' \
        /lib/systemd/system/taskworker.service || fail "the unit does not run /usr/bin/taskworker"
    echo "ok: systemd-analyze verify accepts /lib/systemd/system/taskworker.service"
else
    echo "skipped: systemd-analyze verify (Debian package: systemd)"
fi

# 4. Local edits to the conffile survive a reinstall (an upgrade alike).
echo 'CONCURRENT_TASKS=2' >>/etc/taskworker/env
dpkg -i "$deb" >/dev/null
grep -qx 'CONCURRENT_TASKS=2' /etc/taskworker/env || fail "a reinstall lost the edit to /etc/taskworker/env"
echo "ok: an edit to /etc/taskworker/env survives a reinstall"

# 5. Removal keeps the conffile only; a purge removes it too.
dpkg -r taskworker >/dev/null
while read -r p; do
    [ "$p" = /etc/taskworker/env ] && continue
    [ ! -e "$p" ] || fail "$p is still there after dpkg -r"
done <<<"$documented"
[ "$(ls -A /etc/taskworker)" = env ] || fail "after dpkg -r, /etc/taskworker holds $(ls -A /etc/taskworker | tr '\n' ' ')"
[ ! -e /var/lib/taskworker ] || fail "/var/lib/taskworker after dpkg -r of a worker that never ran"
echo "ok: dpkg -r leaves /etc/taskworker/env (a conffile) and nothing else"
dpkg -P taskworker >/dev/null
installed=no
[ ! -e /etc/taskworker ] || fail "/etc/taskworker is still there after dpkg -P"
echo "ok: dpkg -P leaves nothing"
echo "PASS: $(basename "$deb") installs, works and removes as INSTALL.md says"
