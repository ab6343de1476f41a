#!/bin/sh
# test_fuzz_smoke.sh -- every libFuzzer target (fuzz/fuzz_*.c) built and run
# for a bounded time (FUZZ_SMOKE_SECONDS each, default 5: 17 targets, two
# minutes in all with their build, which keeps `make test` under 15 minutes on
# the 2-core CI machine) from its seeds and dictionary, as `make fuzz` runs them
# longer; fails on a crash, a leak or a target that reports no coverage.
# Skipped (exit 0, saying so) without clang and its libFuzzer runtime
# (tools/deps.sh installs both: clang, libclang-rt-14-dev).
cd "$(dirname "$0")/../.." || exit 1
secs=${FUZZ_SMOKE_SECONDS:-5}
if ! command -v clang >/dev/null 2>&1 ||
    ! clang -print-file-name=libclang_rt.fuzzer-x86_64.a | grep -q /; then
    echo "test_fuzz_smoke: skipped: no clang with libFuzzer (make deps installs it)"
    exit 0
fi
mkdir -p build-fuzz
if ! make --no-print-directory -j2 fuzz-build >build-fuzz/smoke-build.log 2>&1; then
    tail -20 build-fuzz/smoke-build.log
    echo "test_fuzz_smoke: the fuzz targets do not build"
    exit 1
fi
targets=$(ls build-fuzz/fuzz_* 2>/dev/null | grep -v '\.' )
if [ -z "$targets" ]; then
    echo "test_fuzz_smoke: no fuzz target was built"
    exit 1
fi
if sh tools/fuzz-run.sh "$secs" $targets; then
    echo "test_fuzz_smoke: $(echo $targets | wc -w) passed, 0 failed"
    exit 0
fi
echo "test_fuzz_smoke: a fuzz target failed"
exit 1
