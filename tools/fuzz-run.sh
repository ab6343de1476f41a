#!/bin/sh
# fuzz-run.sh SECONDS TARGET... -- run each libFuzzer target for SECONDS from
# its seeds (fuzz/corpus/NAME/, NAME the target without "fuzz_"; copied into
# build-fuzz/corpus/NAME so that what a run finds stays out of the tree) with
# its dictionary (fuzz/NAME.dict) when there is one. Prints one line per
# target with libFuzzer's last "cov:" figures (edges covered, features,
# corpus size). Exits 1 if a target crashed or printed no coverage.
secs=$1
shift
cd "$(dirname "$0")/.." || exit 1
status=0
for t in "$@"; do
    name=$(basename "$t")
    short=${name#fuzz_}
    work=build-fuzz/corpus/$short
    mkdir -p "$work" build-fuzz/logs
    [ -d "fuzz/corpus/$short" ] && cp -n fuzz/corpus/"$short"/* "$work"/ 2>/dev/null
    dict=
    [ -f "fuzz/$short.dict" ] && dict=-dict=fuzz/$short.dict
    log=build-fuzz/logs/$name.log
    # -rss_limit_mb: the sanitizers' shadow memory counts; ASan's own leak
    # check would fail targets for libpcap's caches kept across runs.
    "$t" -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix=build-fuzz/logs/"$name"- $dict "$work" >"$log" 2>&1
    rc=$?
    cov=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1 | sed 's/^#\([0-9]*\)[[:space:]]*[A-Z]*[[:space:]]*/runs \1: /')
    if [ $rc -ne 0 ] || [ -z "$cov" ]; then
        echo "$name: FAILED (exit $rc; see $log)"
        grep -E 'ERROR|SUMMARY' "$log" | head -3
        status=1
    else
        echo "$name: $cov"
    fi
done
exit $status
