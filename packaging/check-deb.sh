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
#   3. systemd-analyze verify finds nothing to say about the installed units,
#      the worker's and the server's, and both run /usr/bin/taskworker;
#   4. an edit to the conffile /etc/taskworker/env survives a reinstall;
#   5. dpkg -r leaves only what INSTALL.md says it leaves (the conffile and
#      the state directories of the worker and the server, which the check
#      fills as if both had run), and dpkg -P leaves nothing.
#
# Needs root and dpkg; otherwise it says it skipped and exits 0. It refuses to
# run where taskworker is already installed or /etc/taskworker or a state
# directory of the worker or the server (/var/lib/taskworker,
# /var/lib/taskworker-serve) exists, so that it never touches an operator's
# files.
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
# The state directories as systemd makes them for a DynamicUser= service:
# the data in /var/lib/private/NAME, a link to it at /var/lib/NAME.
state_dirs=(/var/lib/taskworker /var/lib/private/taskworker
    /var/lib/taskworker-serve /var/lib/private/taskworker-serve)
for path in /usr/bin/taskworker /etc/taskworker "${state_dirs[@]}"; do
    [ ! -e "$path" ] && [ ! -L "$path" ] || fail "$path exists; this check would touch it"
done

installed=no
made_state=no
made_private=no
cleanup() {
    if [ "$installed" = yes ]; then
        dpkg -P taskworker >/dev/null 2>&1 || true
    fi
    # What the check made itself, should it stop before the purge.
    if [ "$made_state" = yes ]; then
        rm -rf "${state_dirs[@]}"
    fi
    if [ "$made_private" = yes ]; then
        rmdir /var/lib/private 2>/dev/null || true
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
for unit in taskworker.service taskworker-serve.service; do
    [ ! -e "/etc/systemd/system/multi-user.target.wants/$unit" ] ||
        fail "the package enabled $unit"
done
for path in "${state_dirs[@]}"; do
    [ ! -e "$path" ] && [ ! -L "$path" ] || fail "the package made $path"
done

# 2. The binary from /usr/bin, and the examples.
out=$(/usr/bin/taskworker --version)
grep -q "^taskworker ${version%%-*} (.*, rev .*)\$" <<<"$out" || fail "taskworker --version: $out"
echo "ok: $out"
(cd /usr/share/doc/taskworker/examples && taskworker check-config --config config.json \
    --env-file /etc/taskworker/env >/dev/null) || fail "check-config on the installed examples"
echo "ok: check-config accepts the installed example configuration and /etc/taskworker/env"

# 3. The units as installed, the worker's and the server's, with their
# ExecStart program in place.
while read -r unit exec_start; do
    path=/lib/systemd/system/$unit
    grep -qxF "ExecStart=$exec_start" "$path" || fail "$unit does not run /usr/bin/taskworker"
    ! grep -q /usr/local/bin "$path" || fail "$unit still names /usr/local/bin"
    if command -v systemd-analyze >/dev/null 2>&1; then
        out=$(SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 timeout 60 \
            systemd-analyze verify "$path" </dev/null 2>&1) ||
            fail "systemd-analyze verify $unit: $out"
        [ -z "$out" ] || fail "systemd-analyze verify has something to say about $unit: $out"
        echo "ok: systemd-analyze verify accepts $path, which runs /usr/bin/taskworker"
    else
        echo "skipped: systemd-analyze verify $unit (Debian package: systemd)"
    fi
done <<'EOF'
taskworker.service /usr/bin/taskworker run --config /etc/taskworker/config.json
taskworker-serve.service /usr/bin/taskworker serve --api-key-file ${CREDENTIALS_DIRECTORY}/api_key $SERVE_OPTIONS
EOF

# 4. Local edits to the conffile survive a reinstall (an upgrade alike).
echo 'CONCURRENT_TASKS=2' >>/etc/taskworker/env
dpkg -i "$deb" >/dev/null
grep -qx 'CONCURRENT_TASKS=2' /etc/taskworker/env || fail "a reinstall lost the edit to /etc/taskworker/env"
echo "ok: an edit to /etc/taskworker/env survives a reinstall"

# 5. Removal keeps the conffile and the state directories; a purge removes
# them too. The state directories as the services would leave them: the
# worker's result spool and the server's journal (the queue's tasks).
[ -d /var/lib/private ] || made_private=yes
made_state=yes
for name in taskworker taskworker-serve; do
    install -d -m 0700 "/var/lib/private/$name"
    ln -s "private/$name" "/var/lib/$name"
done
echo '{"id":"spooled"}' >/var/lib/private/taskworker/spooled.json
echo '{"id":"queued"}' >/var/lib/private/taskworker-serve/tasks.jsonl
dpkg -r taskworker >/dev/null
while read -r p; do
    [ "$p" = /etc/taskworker/env ] && continue
    [ ! -e "$p" ] || fail "$p is still there after dpkg -r"
done <<<"$documented"
[ "$(ls -A /etc/taskworker)" = env ] || fail "after dpkg -r, /etc/taskworker holds $(ls -A /etc/taskworker | tr '\n' ' ')"
[ -f /var/lib/taskworker/spooled.json ] || fail "dpkg -r deleted the worker's result spool in /var/lib/taskworker"
[ -f /var/lib/taskworker-serve/tasks.jsonl ] || fail "dpkg -r deleted the server's journal in /var/lib/taskworker-serve"
echo "ok: dpkg -r leaves /etc/taskworker/env (a conffile), /var/lib/taskworker and /var/lib/taskworker-serve, and nothing else"
dpkg -P taskworker >/dev/null
installed=no
[ ! -e /etc/taskworker ] || fail "/etc/taskworker is still there after dpkg -P"
for path in "${state_dirs[@]}"; do
    [ ! -e "$path" ] && [ ! -L "$path" ] || fail "$path is still there after dpkg -P"
done
made_state=no
if [ "$made_private" = yes ]; then
    rmdir /var/lib/private
    made_private=no
fi
echo "ok: dpkg -P leaves nothing, neither /etc/taskworker nor the state directories"
echo "PASS: $(basename "$deb") installs, works and removes as INSTALL.md says"
