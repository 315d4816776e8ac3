#!/usr/bin/env bash
# Builds taskworker as one static Linux binary, prints its path and size, and
# checks that it needs no shared library.
#
#   packaging/build-static.sh                   # x86_64; prints the binary's path last
#   packaging/build-static.sh --target aarch64  # 64-bit ARM (aarch64 gateways, Pi 3/4/5)
#   packaging/build-static.sh --target armv7    # 32-bit ARM with hardware float (Pi 2, ...)
#   packaging/build-static.sh --glibc           # skip musl even when it is there
#   packaging/build-static.sh --worker-only     # the worker alone (run,
#                                               # check-config): no server,
#                                               # enqueue or demo
#
# The worker-only build has a target directory of its own (target/worker-only),
# so that it and the full build never overwrite each other's binary; each
# target has its own folder below that (target/aarch64-unknown-linux-musl/...).
#
# The build is musl: it links statically by default and resolves host names
# without any system file but /etc/resolv.conf and /etc/hosts. It needs the
# target's standard library and a C compiler for the target (the TLS library
# has C and assembly parts), which the script installs when it can (rustup;
# apt-get as root):
#
#   x86_64   rustup target add x86_64-unknown-linux-musl;       apt-get install musl-tools
#   aarch64  rustup target add aarch64-unknown-linux-musl;      apt-get install gcc-aarch64-linux-gnu
#   armv7    rustup target add armv7-unknown-linux-musleabihf;  apt-get install gcc-arm-linux-gnueabihf
#
# The ARM builds link with rust-lld, which comes with the Rust toolchain, and
# the C runtime that the musl target's standard library carries.
#
# Only when the musl build cannot be had does it fall back, with a loud
# warning, to glibc with a static C runtime (-C target-feature=+crt-static),
# linked by the target's gcc (for ARM: plus libc6-dev-arm64-cross or
# libc6-dev-armhf-cross). That binary runs anywhere too, but glibc looks host
# names up through its NSS plugins, which a static binary cannot load: in an
# empty root (FROM scratch) use numeric addresses. `--glibc` asks for that
# build on purpose.
#
# `taskworker --version` names the version, the target and the git revision
# the binary was built from: the script passes the last two to the compiler as
# TASKWORKER_TARGET and TASKWORKER_GIT_REV (set TASKWORKER_GIT_REV yourself to
# build outside a git checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

arch=x86_64
want_musl=yes
target_dir=target
features=()
while [ $# -gt 0 ]; do
    case "$1" in
        --glibc) want_musl=no ;;
        --worker-only) target_dir=target/worker-only; features=(--no-default-features) ;;
        --target) arch=${2:-}; shift ;;
        --target=*) arch=${1#--target=} ;;
        *) arch=invalid ;;
    esac
    shift
done

# Per architecture: the musl target, its glibc twin, the C compilers that can
# build the TLS library's C parts for it, and the Debian packages that bring
# them.
case "$arch" in
    x86_64 | amd64)
        arch=x86_64
        musl=x86_64-unknown-linux-musl
        gnu=x86_64-unknown-linux-gnu
        musl_ccs=(x86_64-linux-musl-gcc musl-gcc)
        musl_cc_deb=musl-tools
        gnu_cc=cc
        gnu_deb=""
        ;;
    aarch64 | arm64)
        arch=aarch64
        musl=aarch64-unknown-linux-musl
        gnu=aarch64-unknown-linux-gnu
        musl_ccs=(aarch64-linux-musl-gcc aarch64-linux-gnu-gcc)
        musl_cc_deb=gcc-aarch64-linux-gnu
        gnu_cc=aarch64-linux-gnu-gcc
        gnu_deb="gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
        ;;
    armv7 | armhf)
        arch=armv7
        musl=armv7-unknown-linux-musleabihf
        gnu=armv7-unknown-linux-gnueabihf
        musl_ccs=(armv7-linux-musleabihf-gcc arm-linux-musleabihf-gcc arm-linux-gnueabihf-gcc)
        musl_cc_deb=gcc-arm-linux-gnueabihf
        gnu_cc=arm-linux-gnueabihf-gcc
        gnu_deb="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"
        ;;
    *)
        echo "usage: $0 [--target x86_64|aarch64|armv7] [--glibc] [--worker-only]" >&2
        exit 64
        ;;
esac
native=no
[ "$(uname -m)" = "$arch" ] && native=yes

build=(cargo build --release --locked --target-dir "$target_dir" "${features[@]}")

# Is the standard library for target $1 installed? Ask rustup when there is
# one, else look in the compiler's sysroot (a toolchain from a distribution
# package).
target_installed() {
    if command -v rustup >/dev/null 2>&1; then
        rustup target list --installed 2>/dev/null | grep -qx "$1"
    else
        [ -d "$(rustc --print sysroot)/lib/rustlib/$1" ]
    fi
}

# add_target TARGET: rustup target add, when rustup is there.
add_target() {
    if ! target_installed "$1" && command -v rustup >/dev/null 2>&1; then
        echo "installing the $1 target (rustup target add)" >&2
        rustup target add "$1" >&2 2>/dev/null ||
            echo "rustup could not install the $1 target" >&2
    fi
}

# apt_install PACKAGE...: as root with apt-get, installs what is missing.
apt_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 0
    local missing=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    echo "installing ${missing[*]} (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 || true
}

# A C compiler for the musl target, for the C and assembly parts of the TLS
# library (for ARM, the Debian cross gcc: those parts use no C library).
musl_cc() {
    local cc
    for cc in "${musl_ccs[@]}"; do
        command -v "$cc" && return 0
    done
    return 1
}

# Does the musl C runtime of target $1's standard library (1.2.4 or later)
# apply packed relative relocations? Its version is a string in its libc.a.
musl_has_relr() {
    local libc v
    libc="$(rustc --print sysroot)/lib/rustlib/$1/lib/self-contained/libc.a"
    [ -f "$libc" ] || return 1
    v=$(LC_ALL=C tr -c '[:print:]' '\n' <"$libc" | grep -xE '1\.[0-9]+\.[0-9]+') || return 1
    v=${v%%$'\n'*}
    printf '%s\n' 1.2.4 "$v" | sort -C -V
}

# The target's name as the cc crate and cargo spell it in variable names.
env_name() { tr 'a-z-' 'A-Z_' <<<"$1"; }

if [ "$want_musl" = yes ]; then
    add_target "$musl"
    musl_cc >/dev/null || apt_install "$musl_cc_deb"
fi
if [ "$want_musl" = yes ] && target_installed "$musl" && cc=$(musl_cc); then
    target=$musl
    echo "building for $target (C compiler: $cc)" >&2
    # The cc crate looks for TARGET-gcc (x86_64-linux-musl-gcc, ...): name the
    # compiler explicitly for systems that only have another name.
    cc_var="CC_${musl//-/_}"
    export "$cc_var=${!cc_var:-$cc}"
    # Its archiver too, when it has one (aarch64-linux-gnu-ar, ...).
    ar_var="AR_${musl//-/_}"
    ar=${cc%gcc}ar
    if [ "$ar" != "$cc" ] && command -v "$ar" >/dev/null 2>&1; then
        export "$ar_var=${!ar_var:-$ar}"
    fi
    if [ "$native" = no ]; then
        # A cross musl build: rust-lld with the target's own C runtime.
        linker_var="CARGO_TARGET_$(env_name "$musl")_LINKER"
        export "$linker_var=${!linker_var:-rust-lld}"
    fi
    # Pack the relative relocations (DT_RELR) when the C runtime that the
    # target's standard library carries applies them at start-up, as musl
    # does from 1.2.4 on (recent Rust toolchains carry 1.2.5): their table of
    # about 110 KB shrinks to 1-2 KB, and the binary stays position
    # independent. With an older musl the binary keeps the usual table.
    if musl_has_relr "$musl"; then
        export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C link-arg=-z -C link-arg=pack-relative-relocs"
    fi
    # A native build links with the Rust toolchain's own LLD (through the
    # gcc-ld directory rustc keeps for it) rather than the system's ld, and
    # has it fold functions whose code is identical (--icf=all; Rust gives
    # functions no significant address): about 32 KB less. Only when no
    # linker was chosen by hand and the toolchain has that directory.
    linker_var="CARGO_TARGET_$(env_name "$musl")_LINKER"
    gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
    if [ "$native" = yes ] && [ -z "${!linker_var:-}" ] && [ -x "$gcc_ld/ld.lld" ]; then
        export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C link-arg=-B$gcc_ld -C link-arg=-fuse-ld=lld -C link-arg=-Wl,--icf=all"
    fi
else
    target=$gnu
    if [ "$want_musl" = yes ]; then
        {
            echo "################################################################"
            echo "WARNING: the musl build is not possible here (no $musl target"
            echo "or no C compiler for it, and neither could be installed)."
            echo "Falling back to glibc with a static C runtime: host names do"
            echo "not resolve in an empty root. For musl: rustup target add $musl;"
            echo "apt-get install $musl_cc_deb."
            echo "################################################################"
        } >&2
    fi
    if [ "$native" = no ]; then
        add_target "$gnu"
        # shellcheck disable=SC2086 # a list of package names
        command -v "$gnu_cc" >/dev/null || apt_install $gnu_deb
        linker_var="CARGO_TARGET_$(env_name "$gnu")_LINKER"
        export "$linker_var=${!linker_var:-$gnu_cc}"
        cc_var="CC_${gnu//-/_}"
        export "$cc_var=${!cc_var:-$gnu_cc}"
    fi
    echo "building for $target with a static C runtime" >&2
    # --target keeps the flag away from build scripts and proc macros, which
    # must stay dynamic host programs.
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
fi

# What --version prints besides the version.
if [ -z "${TASKWORKER_GIT_REV:-}" ]; then
    TASKWORKER_GIT_REV=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    if [ "$TASKWORKER_GIT_REV" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then
        TASKWORKER_GIT_REV+=-modified
    fi
fi
export TASKWORKER_GIT_REV TASKWORKER_TARGET=$target

"${build[@]}" --target "$target"

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

# Does it start? (It can only be run here when it is for this machine.)
if [ "$native" = yes ] && ! "$bin" --version >/dev/null; then
    echo "error: $bin does not start" >&2
    exit 1
fi

size=$(stat -c %s "$bin")
echo "size: $size bytes ($(( (size + 1023) / 1024 )) KiB)" >&2
echo "$bin"
