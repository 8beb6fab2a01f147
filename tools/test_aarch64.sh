#!/usr/bin/env bash
# Checks the aarch64 NEON kernel sets on an x86_64 host: cross-builds the
# library's unit tests for aarch64-unknown-linux-gnu and runs the kernel tests
# (`engine::kernels`: every kernel set against the scalar reference, panels
# bit for bit) under `qemu-aarch64 -cpu max`, which emulates NEON, dotprod and
# i8mm, so `neon`, `neon-dotprod` and `neon-i8mm` all run (required:
# BYLINE_TEST_REQUIRE_SETS makes a missing set a failure, not a skip).
#
#   bash tools/test_aarch64.sh            # from anywhere in the repository
#   FILTER=engine::kernels::gemm bash tools/test_aarch64.sh
#
# Needs: the aarch64 Rust standard library (`rustup target add`, done here
# under a 5-minute timeout) and the Debian packages gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and qemu-user (installed here with apt-get when
# missing). Linker and runner come from .cargo/config.toml. If the standard
# library or the packages cannot be had, it prints a loud `SKIPPED: ...` line
# and exits 0 (the NEON sets are then unchecked on this machine).
# The cross build's artifacts go to target/aarch64-unknown-linux-gnu/.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
FILTER=${FILTER:-engine::kernels}

skip() {
    echo "=================================================================="
    echo "SKIPPED: aarch64 NEON kernel tests not run: $*"
    echo "=================================================================="
    exit 0
}

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "test_aarch64: adding the $TARGET standard library"
    timeout 300 rustup target add "$TARGET" ||
        skip "the $TARGET Rust standard library cannot be installed here (rustup target add failed or timed out)"
fi

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
    echo "test_aarch64: installing ${need[*]}"
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y "${need[@]}" ||
        { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y "${need[@]}"; } ||
        skip "could not install ${need[*]} with apt-get"
fi

echo "test_aarch64: cargo test --target $TARGET --lib $FILTER (under qemu-aarch64 -cpu max)"
start=$(date +%s)
BYLINE_TEST_REQUIRE_SETS=neon,neon-dotprod,neon-i8mm \
    cargo test --locked --target "$TARGET" --lib "$FILTER"
echo "test_aarch64: done in $(($(date +%s) - start)) s"
