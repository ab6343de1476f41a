#!/bin/sh
# run-all.sh -- every test of `make test`: unit binaries (arguments), then the
# end-to-end suites in tests/e2e (test_*.sh and test_*.py, each a program that
# exits 0 on success). Prints a closing 'N passed, N failed' line.
cd "$(dirname "$0")/.." || exit 1
passed=0
failed=0
failures=""
run() {
    name=$1
    shift
    echo "== $name"
    start=$(date +%s)
    if "$@"; then
        passed=$((passed + 1))
        echo "-- ok   $name ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "-- FAIL $name ($(( $(date +%s) - start )) s)"
    fi
}
for t in "$@"; do
    run "unit/$(basename "$t")" "$t"
done
for t in tests/e2e/test_*; do
    case "$t" in
    *.sh) run "e2e/$(basename "$t")" sh "$t" ;;
    *.py) run "e2e/$(basename "$t")" python3 "$t" ;;
    esac
done
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
