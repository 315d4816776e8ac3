#!/usr/bin/env bash
# Builds the Debian package of taskworker for one architecture with dpkg-deb,
# checks it with lintian (when installed) and prints its path last.
#
#   packaging/build-deb.sh amd64 [BINARY]   # x86_64 static binary
#   packaging/build-deb.sh arm64 [BINARY]   # aarch64 static binary
#   packaging/build-deb.sh armhf [BINARY]   # armv7 static binary
#
# BINARY defaults to what build-static.sh builds for that architecture. The
# package goes to target/deb/ (or $DEB_OUT_DIR) as taskworker_VERSION_ARCH.deb,
# VERSION being Cargo.toml's. What it installs where, and what removing it
# leaves: INSTALL.md. In short:
#
#   /usr/bin/taskworker                             the static binary
#   /lib/systemd/system/taskworker.service          the worker's unit, not enabled
#   /lib/systemd/system/taskworker-serve.service    the server's unit, not enabled
#   /etc/taskworker/env                             commented settings (a conffile)
#   /usr/share/doc/taskworker/                      README, INSTALL, OPERATIONS,
#                                                   examples/ (configuration, handlers)
#
# The maintainer scripts reload systemd after install and removal, restart
# the worker and the server after an upgrade if they were running, and stop
# them on removal; they enable and start nothing. A purge also deletes the
# worker's result spool in /var/lib/taskworker and the server's journal (the
# queue's tasks) in /var/lib/taskworker-serve.
#
# lintian errors fail the build. Set DEB_MAINTAINER ("Name <address>") for
# the Maintainer field.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
bin=${2:-}
case "$arch" in
    amd64) build_arch=x86_64 ;;
    arm64) build_arch=aarch64 ;;
    armhf) build_arch=armv7 ;;
    *) echo "usage: $0 amd64|arm64|armhf [BINARY]" >&2; exit 64 ;;
esac
command -v dpkg-deb >/dev/null 2>&1 || { echo "error: dpkg-deb not found (Debian package: dpkg)" >&2; exit 1; }
[ -n "$bin" ] || bin=$(packaging/build-static.sh --target "$build_arch" | tail -n 1)
[ -x "$bin" ] || { echo "error: $bin is not an executable" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
maintainer=${DEB_MAINTAINER:-taskworker developers <taskworker@example.org>}
# Every date and time stamp in the package is the commit's, so that the same
# commit builds the same package.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
out_dir=${DEB_OUT_DIR:-target/deb}
mkdir -p "$out_dir"
deb=$out_dir/taskworker_${version}_$arch.deb

work=$(mktemp -d "${TMPDIR:-/tmp}/taskworker-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
doc=$root/usr/share/doc/taskworker
umask 022
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/taskworker" \
    "$doc/examples/handlers"

# The binary and the units of the worker and the server, which run it from
# /usr/bin.
install -m 0755 "$bin" "$root/usr/bin/taskworker"
for unit in taskworker.service taskworker-serve.service; do
    sed 's|/usr/local/bin/taskworker|/usr/bin/taskworker|g' "packaging/systemd/$unit" \
        >"$root/lib/systemd/system/$unit"
    chmod 0644 "$root/lib/systemd/system/$unit"
done

# The examples, as they are in the repository (handlers keep their modes).
install -m 0644 packaging/examples/config.json packaging/examples/env.example \
    packaging/examples/README.md "$doc/examples/"
for f in packaging/examples/handlers/*; do
    if [ -x "$f" ]; then mode=0755; else mode=0644; fi
    install -m "$mode" "$f" "$doc/examples/handlers/"
done

# The documents, compressed as Debian does for anything above 4 KiB.
for f in README.md packaging/INSTALL.md packaging/OPERATIONS.md; do
    gzip -9n <"$f" >"$doc/$(basename "$f").gz"
done
{
    echo "taskworker ($version) stable; urgency=medium"
    echo
    echo "  * Release $version, built from revision $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)."
    echo
    echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"
year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: taskworker

Files: *
Copyright: $year the taskworker developers
License: MIT or Apache-2.0
 taskworker is dual-licensed under the MIT license and the Apache License,
 Version 2.0, at your option.
 .
 On Debian systems, the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.
 .
 MIT license: Permission is hereby granted, free of charge, to any person
 obtaining a copy of this software and associated documentation files (the
 "Software"), to deal in the Software without restriction, including without
 limitation the rights to use, copy, modify, merge, publish, distribute,
 sublicense, and/or sell copies of the Software, and to permit persons to whom
 the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
EOF

# The commented configuration: every line a comment, so that nothing runs
# differently until the operator says so. A conffile: upgrades keep its edits.
install -m 0644 /dev/null "$root/etc/taskworker/env"
cat >"$root/etc/taskworker/env" <<'EOF'
# taskworker: per-machine settings for the service, KEY=value, one a line.
# They override /etc/taskworker/config.json. Upgrades keep your edits here.
# systemd reads this file as root: chmod 0600 it if you put a secret in it.
#
# The service (/lib/systemd/system/taskworker.service) is installed but not
# enabled. Before `systemctl enable --now taskworker` it needs:
#
#   /etc/taskworker/config.json  the handlers; start from
#                                /usr/share/doc/taskworker/examples/config.json
#                                (readable by all: no secrets in it)
#   /etc/taskworker/api_key      the API key, mode 0600:
#       install -m 0600 /dev/null /etc/taskworker/api_key
#       printf '%s' 'the-key' > /etc/taskworker/api_key
#
# Check with: taskworker check-config --config /etc/taskworker/config.json --env-file /etc/taskworker/env
# Every setting: /usr/share/doc/taskworker/OPERATIONS.md.gz
#
#API_URL=https://api.example.com/v1
#WORKER_ID=gateway-0001
#CONCURRENT_TASKS=4
#MEMORY_LIMIT=512M
#LOG_LEVEL=info
#HEALTH_ADDR=127.0.0.1:8080
EOF

cat >"$root/DEBIAN/conffiles" <<'EOF'
/etc/taskworker/env
EOF

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
# Makes systemd see the units. Enables and starts nothing; after an upgrade,
# restarts the worker and the server if they were running, so that the new
# binary runs.
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    if [ -n "$2" ]; then
        systemctl try-restart taskworker.service taskworker-serve.service >/dev/null || true
    fi
fi
exit 0
EOF

cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
# On removal, stops the worker (it drains first) and the server (it syncs its
# journal first), whose binary is going away.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop taskworker.service taskworker-serve.service >/dev/null 2>&1 || true
fi
exit 0
EOF

cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
# Makes systemd forget the units. A purge also deletes their state
# directories, the worker's result spool and the server's journal (the
# queue's tasks), and the links that `systemctl enable` made.
set -e
case "$1" in
    remove | purge)
        if [ -d /run/systemd/system ]; then
            systemctl daemon-reload >/dev/null || true
        fi
        ;;
esac
if [ "$1" = purge ]; then
    rm -f /etc/systemd/system/multi-user.target.wants/taskworker.service \
        /etc/systemd/system/multi-user.target.wants/taskworker-serve.service
    rm -rf /var/lib/taskworker /var/lib/private/taskworker \
        /var/lib/taskworker-serve /var/lib/private/taskworker-serve
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

# What lintian would warn about and is deliberate.
mkdir -p "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/taskworker" <<'EOF'
# One static binary that runs on any Linux of its architecture is the point.
taskworker: statically-linked-binary [usr/bin/taskworker]
# daemon-reload after install and removal, try-restart after an upgrade and
# stop before removal, each only when systemd runs; no debhelper here.
taskworker: maintainer-script-calls-systemctl [postinst:*]
taskworker: maintainer-script-calls-systemctl [prerm:*]
# INSTALL.md is the guide to the unit, the credentials and the environment
# file, which an operator of the package needs.
taskworker: package-contains-upstream-installation-documentation [usr/share/doc/taskworker/INSTALL.md.gz]
EOF

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f 1)
cat >"$root/DEBIAN/control" <<EOF
Package: taskworker
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Section: admin
Priority: optional
Description: background worker for HTTP task queues
 taskworker claims tasks from an HTTP task API, runs them through handlers
 (built-in, HTTP calls or programs) and reports their results, with a
 durable result spool, retries, a health server and systemd integration
 (notify, watchdog, credentials). One static binary with no dependencies.
 .
 The package installs the binary, hardened systemd units for the worker and
 for its reference task-queue server that it does not enable, a commented
 /etc/taskworker/env and examples of configuration and handlers.
EOF

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2

if command -v lintian >/dev/null 2>&1; then
    # Errors fail the build; warnings and notes are shown.
    lintian --fail-on error --info "$deb" >&2
    echo "lintian: no errors" >&2
else
    echo "warning: lintian is not installed (Debian package: lintian): the package is unchecked" >&2
fi
echo "size: $(stat -c %s "$deb") bytes" >&2
echo "$deb"
