#!/usr/bin/env bash
# Builds the release bundle of one version into dist/:
#
#   packaging/release.sh VERSION      # VERSION must be Cargo.toml's
#
#   dist/taskworker-VERSION-linux-ARCH.tar.gz              full build
#   dist/taskworker-worker-only-VERSION-linux-ARCH.tar.gz  the worker alone
#   dist/taskworker_VERSION_amd64.deb, dist/taskworker_VERSION_arm64.deb
#   dist/SHA256SUMS                                        sha256sum -c SHA256SUMS
#
# for ARCH x86_64, aarch64 and armv7 (build-static.sh --target ARCH). Each
# tarball holds one folder of the tarball's name with the static binary
# `taskworker`, systemd/ (the unit), examples/ (configuration and handlers),
# README.md, INSTALL.md and OPERATIONS.md. Every binary's --version names its
# target and the revision it was built from; a tree with uncommitted changes
# builds binaries whose revision says "-modified".
#
# Set RELEASE_TARGETS (e.g. "x86_64 aarch64") to build fewer architectures.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-}
[ -n "$version" ] || { echo "usage: $0 VERSION" >&2; exit 64; }
cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
if [ "$version" != "$cargo_version" ]; then
    echo "error: Cargo.toml says $cargo_version, not $version: set the version there first" >&2
    exit 1
fi
targets=${RELEASE_TARGETS:-x86_64 aarch64 armv7}

# The tarballs' and packages' time stamps: the commit's. Not exported: the
# cc crate that builds the TLS library's C parts reruns when SOURCE_DATE_EPOCH
# changes, which would rebuild every binary.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
dist=dist
rm -rf "$dist"
mkdir -p "$dist"
work=$(mktemp -d "${TMPDIR:-/tmp}/taskworker-release.XXXXXX")
trap 'rm -rf "$work"' EXIT

# tarball NAME BINARY: dist/NAME.tar.gz, the same bytes for the same inputs.
tarball() {
    local name=$1 bin=$2 dir=$work/$1
    mkdir -p "$dir/systemd" "$dir/examples"
    install -m 0755 "$bin" "$dir/taskworker"
    install -m 0644 packaging/systemd/*.service "$dir/systemd/"
    cp -R packaging/examples/. "$dir/examples/"
    rm -f "$dir/examples/.gitignore"
    install -m 0644 README.md packaging/INSTALL.md packaging/OPERATIONS.md "$dir/"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
        -C "$work" -cf - "$name" | gzip -9n >"$dist/$name.tar.gz"
}

for arch in $targets; do
    bin=$(packaging/build-static.sh --target "$arch" | tail -n 1)
    worker_bin=$(packaging/build-static.sh --target "$arch" --worker-only | tail -n 1)
    tarball "taskworker-$version-linux-$arch" "$bin"
    tarball "taskworker-worker-only-$version-linux-$arch" "$worker_bin"
    case "$arch" in
        x86_64) deb_arch=amd64 ;;
        aarch64) deb_arch=arm64 ;;
        *) deb_arch="" ;;
    esac
    if [ -n "$deb_arch" ]; then
        DEB_OUT_DIR=$dist SOURCE_DATE_EPOCH=$epoch packaging/build-deb.sh "$deb_arch" "$bin" >/dev/null
    fi
done

(cd "$dist" && sha256sum -- *.tar.gz *.deb >SHA256SUMS)
echo "dist/ for $version:" >&2
(cd "$dist" && ls -l -- * >&2)
echo "$dist"
