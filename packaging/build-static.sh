#!/usr/bin/env bash
# Builds taskworker as one static Linux binary, prints its path and size, and
# checks that it needs no shared library.
#
#   packaging/build-static.sh                # prints the binary's path last
#   packaging/build-static.sh --glibc        # skip musl even when it is there
#   packaging/build-static.sh --worker-only  # the worker alone (run,
#                                            # check-config): no server,
#                                            # enqueue or demo
#
# The worker-only build has a target directory of its own (target/worker-only),
# so that it and the full build never overwrite each other's binary.
#
# The build is musl: it links statically by default and resolves host names
# without any system file but /etc/resolv.conf and /etc/hosts. It needs the
# target and a musl C compiler (the TLS library has C parts), which the
# script installs when it can (rustup; apt-get as root):
#
#   rustup target add x86_64-unknown-linux-musl
#   apt-get install musl-tools        # Debian/Ubuntu: provides musl-gcc
#
# Only when they cannot be had does it fall back, with a loud warning, to
# glibc with a static C runtime (-C target-feature=+crt-static). That binary
# runs anywhere too, but glibc looks host names up through its NSS plugins,
# which a static binary cannot load: in an empty root (FROM scratch) use
# numeric addresses. `--glibc` asks for that build on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."

musl=x86_64-unknown-linux-musl
gnu=x86_64-unknown-linux-gnu
want_musl=yes
target_dir=target
features=()
for arg in "$@"; do
    case "$arg" in
        --glibc) want_musl=no ;;
        --worker-only) target_dir=target/worker-only; features=(--no-default-features) ;;
        *) echo "usage: $0 [--glibc] [--worker-only]" >&2; exit 64 ;;
    esac
done
build=(cargo build --release --locked --target-dir "$target_dir" "${features[@]}")

# Is the musl standard library installed? Ask rustup when there is one, else
# look in the compiler's sysroot (a toolchain from a distribution package).
musl_target_installed() {
    if command -v rustup >/dev/null 2>&1; then
        rustup target list --installed 2>/dev/null | grep -qx "$musl"
    else
        [ -d "$(rustc --print sysroot)/lib/rustlib/$musl" ]
    fi
}

# A C compiler for musl, for the C and assembly parts of the TLS library.
musl_cc() {
    command -v x86_64-linux-musl-gcc || command -v musl-gcc || return 1
}

# Installs what the musl build needs, where this machine allows it.
install_musl_tools() {
    if ! musl_target_installed && command -v rustup >/dev/null 2>&1; then
        echo "installing the $musl target (rustup target add)" >&2
        rustup target add "$musl" >&2 || true
    fi
    if ! musl_cc >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing musl-tools (apt-get) for musl-gcc" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends musl-tools; } >&2 || true
    fi
}

[ "$want_musl" = yes ] && install_musl_tools
if [ "$want_musl" = yes ] && musl_target_installed && cc=$(musl_cc); then
    target=$musl
    echo "building for $target (C compiler: $cc)" >&2
    # The cc crate looks for x86_64-linux-musl-gcc; name musl-gcc explicitly
    # for systems that only have that name.
    CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-$cc}" \
        "${build[@]}" --target "$target"
else
    target=$gnu
    if [ "$want_musl" = yes ]; then
        {
            echo "################################################################"
            echo "WARNING: the musl build is not possible here (no $musl target"
            echo "or no musl C compiler, and neither could be installed)."
            echo "Falling back to glibc with a static C runtime: host names do"
            echo "not resolve in an empty root. For musl: rustup target add $musl;"
            echo "apt-get install musl-tools."
            echo "################################################################"
        } >&2
    fi
    echo "building for $target with a static C runtime" >&2
    # --target keeps the flag away from build scripts and proc macros, which
    # must stay dynamic host programs.
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
        "${build[@]}" --target "$target"
fi

bin="$target_dir/$target/release/taskworker"
[ -x "$bin" ] || { echo "error: $bin was not built" >&2; exit 1; }

# Static? `file` says "statically linked" (or "static-pie linked"), `ldd`
# says "not a dynamic executable" (or "statically linked"). Either suffices;
# a minimal system may lack one of them.
verdicts=""
command -v file >/dev/null 2>&1 && verdicts+="$(file -b "$bin")"$'\n'
command -v ldd >/dev/null 2>&1 && verdicts+="$(ldd "$bin" 2>&1 || true)"$'\n'
if [ -z "$verdicts" ]; then
    echo "warning: neither file nor ldd is installed: cannot check that $bin is static" >&2
elif grep -qE 'statically linked|static-pie linked|not a dynamic executable' <<<"$verdicts"; then
    echo "static: yes" >&2
else
    echo "error: $bin is dynamically linked:" >&2
    echo "$verdicts" >&2
    exit 1
fi

size=$(stat -c %s "$bin")
echo "size: $size bytes ($(( (size + 1023) / 1024 )) KiB)" >&2
echo "$bin"
