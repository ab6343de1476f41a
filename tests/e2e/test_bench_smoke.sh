#!/bin/sh
# A tiny run of the benchmark, to keep `make bench` working (no timing checks:
# it fails only on a correctness mismatch).
cd "$(dirname "$0")/../.." && BENCH_SMOKE=1 BENCH_LIVE=0 BENCH_COLD=0 exec sh bench/bench.sh
