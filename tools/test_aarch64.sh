#!/usr/bin/env bash
# Checks the aarch64 NEON kernel sets on an x86_64 host: cross-builds the
# kernel tests for aarch64-unknown-linux-gnu and runs them (`engine::kernels`:
# every kernel set against the scalar reference, panels and dots bit for bit)
# under `qemu-aarch64 -cpu max`, which emulates NEON, dotprod and i8mm, so
# `neon`, `neon-dotprod` and `neon-i8mm` all run (BYLINE_TEST_REQUIRE_SETS
# makes a missing set a failure, not a silent skip).
#
#   bash tools/test_aarch64.sh              # kernel tests only (CI; 1.5-2 min cold)
#   WHOLE=1 bash tools/test_aarch64.sh      # byline's own lib tests (15+ min cold)
#   FILTER=engine::kernels::gemm bash tools/test_aarch64.sh
#
# By default it builds tools/aarch64-kernels, a small crate that includes
# src/engine/quant and src/engine/kernels by path (the same source and unit
# tests, without SQLite/TLS/HTTP), into target/aarch64-kernels; WHOLE=1
# cross-builds the whole crate instead (`cargo test --target ... --lib`), into
# target/aarch64-unknown-linux-gnu. Measured cold on the 2-core build host
# (shared, load 6-11): kernel crate 92-122 s wall (71-80 s CPU); whole crate
# 2466 s wall (932 s CPU), too much for CI's budget.
#
# Needs: the aarch64 Rust standard library (`rustup target add`, done here
# under a 5-minute timeout) and the Debian packages gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross and qemu-user (installed here with apt-get when
# missing). Linker and runner come from .cargo/config.toml. If the standard
# library or the packages cannot be had, it prints a loud `SKIPPED: ...` line
# and exits 0 (the NEON sets are then unchecked on this machine).
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

export BYLINE_TEST_REQUIRE_SETS=neon,neon-dotprod,neon-i8mm
start=$(date +%s)
if [ "${WHOLE:-0}" = 1 ]; then
    echo "test_aarch64: cargo test --target $TARGET --lib $FILTER (under qemu-aarch64 -cpu max)"
    cargo test --locked --target "$TARGET" --lib "$FILTER"
else
    echo "test_aarch64: tools/aarch64-kernels: cargo test --target $TARGET $FILTER (under qemu-aarch64 -cpu max)"
    CARGO_TARGET_DIR="$PWD/target/aarch64-kernels" \
        cargo test --locked --manifest-path tools/aarch64-kernels/Cargo.toml --target "$TARGET" "$FILTER"
fi
echo "test_aarch64: done in $(($(date +%s) - start)) s"
