#!/bin/sh
# run-unit.sh -- run the cmocka unit test binaries given as arguments.
fail=0
for t in "$@"; do
    echo "== unit $(basename "$t")"
    "$t" || fail=1
done
exit $fail
