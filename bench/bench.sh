#!/bin/sh
# bench.sh -- benchmark rewind against tcpdump on synthetic traffic (see bench/README.md).
#
#   sh bench/bench.sh                  2 GiB of traffic (BENCH_GB=2)
#   BENCH_GB=0.2 sh bench/bench.sh     any positive size in GiB, fractions allowed
#   BENCH_SMOKE=1 sh bench/bench.sh    2 MiB, one run each, no scaling/live (< 30 s)
#
# Optional: BENCH_SESSIONS=0 skips SMTP sessions and a call's pcap, BENCH_QUERIES=0 skips the
# queries, compressed segments and scaling, BENCH_LIVE=0 skips live capture, BENCH_SCALE=0 skips scaling, BENCH_COLD=0
# skips cold-cache runs, BENCH_HTTP=0 skips the needle over HTTP and HTTPS, BENCH_MULTISITE=0
# skips the ClickHouse export and the query across sensors, BENCH_INTERCEPT=0 skips lawful
# intercept (BENCH_INTERCEPT_ROUNDS=9, BENCH_INTERCEPT_RATE=500x3: Mbps or topspeed, xN loops,
# BENCH_INTERCEPT_BYTES=104857600 of replay),
# BENCH_LIVE_RATES="500 1000 topspeed" (Mbps or topspeed; a suffix x3 replays the file three
# times in one run), BENCH_LIVE_SUSTAIN=1000x45 (one sustained run of rewindd and Stenographer,
# over a minute; 0 skips it), BENCH_LIVE_ROUNDS=3, BENCH_LIVE_TOOLS="rewindd rewindd16 stenographer
# stenographer16 tcpdump" (Stenographer, from Debian, when tools/deps.sh installed it).
#
# Writes bench/work/ (scratch, removed first) and bench/results.json. Exit status is
# non-zero only for a correctness MISMATCH (or a failing command), never for speed.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
W=$ROOT/bench/work
HL="$ROOT/bench/benchlib.py"
export BENCH_RECORDS="$W/records.jsonl"

h() { python3 "$HL" "$@"; }
say() { printf '== %s\n' "$*" >&2; }

SMOKE=${BENCH_SMOKE:-0}
case $SMOKE in 0 | "" | no | false) SMOKE=0 ;; *) SMOKE=1 ;; esac
if [ "$SMOKE" = 1 ]; then
    GB=smoke
    BYTES=2097152
    QRUNS=1
    NRUNS=1
    TRUNS=1
    SCALE=0
    LIVE=0
else
    GB=${BENCH_GB:-2}
    BYTES=$(python3 -c 'import sys
v = float(sys.argv[1])
assert v > 0
print(max(65536, int(v * (1 << 30))))' "$GB" 2>/dev/null) || {
        echo "bench: BENCH_GB must be a positive number of GiB, not '$GB'" >&2
        exit 2
    }
    QRUNS=5
    NRUNS=11 # needle runs: a few ms each, and this VM's noise is of that order
    TRUNS=3
    SCALE=${BENCH_SCALE:-1}
    LIVE=${BENCH_LIVE:-1}
fi
QUERIES=${BENCH_QUERIES:-1}
[ "$QUERIES" != 0 ] || SCALE=0 # scaling asks the daemon the queries start
RATES=${BENCH_LIVE_RATES:-500 1000 topspeed topspeedx3}

for b in rewind rewindd trafficgen; do
    [ -x "$ROOT/bin/$b" ] || { echo "bench: bin/$b missing; run 'make all' first" >&2; exit 2; }
done
command -v tcpdump >/dev/null 2>&1 || { echo "bench: tcpdump is needed" >&2; exit 2; }

NS=rwbench$$
DPID=
cleanup() {
    [ -z "$DPID" ] || kill "$DPID" 2>/dev/null || true
    [ "$LIVE" = 0 ] || ip netns del "$NS" >/dev/null 2>&1 || true
    [ "$LIVE" = 0 ] || ip netns del "${NS}r" >/dev/null 2>&1 || true
    ip netns del "${NS}i" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$W"
mkdir -p "$W/bin"
# One run measures one build: a rebuild of bin/ while this runs does not mix binaries.
cp -p "$ROOT/bin/rewind" "$ROOT/bin/rewind-core" "$ROOT/bin/rewindd" "$ROOT/bin/trafficgen" "$W/bin/"
BIN=$W/bin

DROP=0
if [ "${BENCH_COLD:-1}" != 0 ] && h dropcaches 2>/dev/null; then DROP=1; fi
h set config "{\"smoke\": $([ "$SMOKE" = 1 ] && echo true || echo false), \"gb\": \"$GB\",
  \"bytes_requested\": $BYTES, \"query_runs_rewind\": $QRUNS, \"query_runs_tcpdump\": $TRUNS,
  \"drop_caches\": $([ "$DROP" = 1 ] && echo true || echo false),
  \"rewind\": \"$(git describe --always --dirty 2>/dev/null || echo unknown)\",
  \"tcpdump\": \"$(tcpdump --version 2>&1 | head -1)\", \"host\": \"$(uname -srm)\",
  \"cpus\": $(nproc), \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}"
[ "$DROP" = 1 ] && COLDFLAG=--drop || COLDFLAG=
[ "$DROP" = 1 ] || say "cannot drop the page cache: every figure is warm"

# check WHAT WANT LABEL=GOT... -- every GOT must equal WANT, else a loud MISMATCH.
check() {
    what=$1
    want=$2
    shift 2
    for lg in "$@"; do
        if [ "${lg#*=}" != "$want" ]; then
            h mismatch "$what: expected $want packets (trafficgen), ${lg%%=*} gave ${lg#*=}"
        fi
    done
}

# gen I SEED START -- bench/work/genI.pcap and its announced counts (record genI)
gen() {
    "$BIN/trafficgen" --seed "$2" --bytes "$BYTES" --start "$3" -o "$W/gen$1.pcap" \
        2>"$W/gen$1.txt"
    h set "gen$1" "$(h gen "$W/gen$1.txt")"
}
next_start() { h get "gen$1" last_ts | sed 's/\..*//' | awk '{print $1 + 2}'; }

# ---------------------------------------------------------------- 1. traffic
say "generating $BYTES bytes of traffic"
gen 1 1 1700000000
PKTS=$(h get gen1 packets)
NEEDLE=$(h get gen1 needles 0 addr)
WIDE=$(h get gen1 wide net)

# ---------------------------------------------------------------- 2. import
A=$W/archive
say "import: rewind vs tcpdump ($([ "$DROP" = 1 ] && echo cold || echo warm))"
h run import.rewind $COLDFLAG -- "$BIN/rewind" import --dir "$A" --quiet "$W/gen1.pcap" >/dev/null
h run import.tcpdump $COLDFLAG -- tcpdump -r "$W/gen1.pcap" -w "$W/copy.pcap" >/dev/null
h run import.tcpdump_sync $COLDFLAG -- sh -c 'tcpdump -r "$1" -w "$2" && sync "$2"' sh \
    "$W/gen1.pcap" "$W/copy.pcap" >/dev/null
check "import (all packets)" "$PKTS" "rewind=$("$BIN/rewind" query --dir "$A" --count)" \
    "tcpdump=$(h count "$W/copy.pcap")"
rm -f "$W/copy.pcap"

# ---------------------------------------------------------------- 4. sizes
h sizes sizes.1x "$A" "$(h get gen1 bytes)" \
    "$("$BIN/rewind" status --dir "$A" | sed -n 's/^index  *//p')"

if [ "$QUERIES" != 0 ]; then
# ---------------------------------------------------------------- 3 + 5. queries
# As in production, a rewindd owns the archive (serving it only: no capture, no HTTP), so
# `rewind query --dir` is answered by the daemon over DIR/rewindd.sock from its open index;
# `rewind query --local` reads the archive in its own process, as with no daemon running.
DLOG=$W/rewindd.log
"$BIN/rewindd" --dir "$A" --listen none --log "$DLOG" &
DPID=$!
i=0
until grep -q ' ready;' "$DLOG" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 200 ] && kill -0 "$DPID" 2>/dev/null || {
        echo "bench: rewindd did not start on $A" >&2
        exit 1
    }
    sleep 0.1
done
# Queries the daemon answered in full, from its log (one line each).
answered() { grep -c " info rewind query filter .*: [0-9]* packets, " "$DLOG" || true; }
# via_daemon WHAT RUNS CMD... -- run CMD (which queries); a MISMATCH unless rewindd answered
# every run of it rather than the client reading the archive itself.
via_daemon() {
    what=$1
    n=$2
    shift 2
    a0=$(answered)
    "$@"
    a1=$(answered)
    [ $((a1 - a0)) -eq "$n" ] ||
        h mismatch "$what: rewindd answered $((a1 - a0)) of $n queries; the others were read locally"
}

# query NAME EXPECTED RUNS FILTER...
query() {
    name=$1
    want=$2
    runs=$3
    shift 3
    say "query $name: $*"
    h set "q.$name.meta" "{\"filter\": \"$*\", \"packets\": $want}"
    qo=$W/q-$name.pcap
    lo=$W/l-$name.pcap
    to=$W/t-$name.pcap
    c=$("$BIN/rewind" query --dir "$A" --count "$@")
    via_daemon "query $name" $((runs + 1)) \
        h run "q.$name.rewind.warm" --warmup 1 --runs "$runs" --out "$qo" -- \
        "$BIN/rewind" query --dir "$A" -w "$qo" "$@" >/dev/null
    h run "q.$name.local.warm" --warmup 1 --runs "$runs" --out "$lo" -- \
        "$BIN/rewind" query --dir "$A" --local -w "$lo" "$@" >/dev/null
    h run "q.$name.tcpdump.warm" --warmup 1 --runs "$TRUNS" --out "$to" -- \
        tcpdump -r "$W/gen1.pcap" -w "$to" "$@" >/dev/null
    check "query $name ($*)" "$want" "rewind--count=$c" "rewind-w=$(h count "$qo")" \
        "rewind--local=$(h count "$lo")" "tcpdump=$(h count "$to")"
    tcpdump --time-stamp-precision=nano -r "$W/gen1.pcap" -w "$to.nano" "$@" 2>/dev/null
    cmp -s "$qo" "$to.nano" ||
        h mismatch "query $name ($*): rewind's pcap differs from tcpdump --time-stamp-precision=nano's"
    cmp -s "$lo" "$to.nano" ||
        h mismatch "query $name ($*): rewind --local's pcap differs from tcpdump's"
    if [ "$DROP" = 1 ]; then
        via_daemon "query $name (cold)" 1 \
            h run "q.$name.rewind.cold" --drop --out "$qo" -- \
            "$BIN/rewind" query --dir "$A" -w "$qo" "$@" >/dev/null
        h run "q.$name.local.cold" --drop --out "$lo" -- \
            "$BIN/rewind" query --dir "$A" --local -w "$lo" "$@" >/dev/null
        h run "q.$name.tcpdump.cold" --drop --out "$to" -- \
            tcpdump -r "$W/gen1.pcap" -w "$to" "$@" >/dev/null
    fi
    rm -f "$qo" "$lo" "$to" "$to.nano"
}
query needle "$(h expect needle 1 "$NEEDLE")" "$NRUNS" host "$NEEDLE"
query port "$(h expect port25 1)" "$QRUNS" port 25
query wide "$(h expect wide 1)" "$QRUNS" net "$WIDE"
# The daemon's memory after answering: the queries' memory is there now.
h set daemon "{\"maxrss_kb\": $(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$DPID/status")}"
# What starting a process costs here, with no work: the floor under a needle query.
h run floor.true --warmup 1 --runs "$QRUNS" -- /bin/true >/dev/null
h run floor.rewind --warmup 1 --runs "$QRUNS" -- "$BIN/rewind" --help >/dev/null
h run floor.tcpdump --warmup 1 --runs "$QRUNS" -- tcpdump --version >/dev/null

# ---------------------------------------------------------------- 8. compressed segments
# The same traffic imported with --compress-after 0 (every segment lz4-compressed
# when the import ends), then the same queries; answers compared with tcpdump's.
Z=$W/archive-z
say "compressed segments: import --compress-after 0, then the same queries"
h run z.import $COLDFLAG -- "$BIN/rewind" import --dir "$Z" --quiet --compress-after 0 \
    "$W/gen1.pcap" >/dev/null
h sizes z.sizes "$Z" "$(h get gen1 bytes)" \
    "$("$BIN/rewind" status --dir "$Z" | sed -n 's/^segments  *//p')"
zquery() {
    name=$1
    want=$2
    shift 2
    qo=$W/z-$name.pcap
    h run "z.$name.warm" --warmup 1 --runs "$QRUNS" --out "$qo" -- \
        "$BIN/rewind" query --dir "$Z" -w "$qo" "$@" >/dev/null
    check "compressed query $name ($*)" "$want" "rewind-w=$(h count "$qo")"
    tcpdump --time-stamp-precision=nano -r "$W/gen1.pcap" -w "$qo.nano" "$@" 2>/dev/null
    cmp -s "$qo" "$qo.nano" ||
        h mismatch "compressed query $name ($*): rewind's pcap differs from tcpdump's"
    if [ "$DROP" = 1 ]; then
        h run "z.$name.cold" --drop --out "$qo" -- \
            "$BIN/rewind" query --dir "$Z" -w "$qo" "$@" >/dev/null
    fi
    rm -f "$qo" "$qo.nano"
}
zquery needle "$(h expect needle 1 "$NEEDLE")" host "$NEEDLE"
zquery port "$(h expect port25 1)" port 25
zquery wide "$(h expect wide 1)" net "$WIDE"
rm -rf "$Z"

# ---------------------------------------------------------------- 6. scaling
# scale K -- needle and port latency over the archive holding gen1..genK, vs tcpdump
# over gen1..genK (one tcpdump per file, times summed).
scale() {
    k=$1
    h set "scale.$k.bytes" "$(h expect bytes "$k")"
    for name in needle port; do
        if [ "$name" = needle ]; then set -- host "$NEEDLE"; want=$(h expect needle "$k" "$NEEDLE")
        else set -- port 25; want=$(h expect port25 "$k"); fi
        say "scaling ${k}x query $name: $*"
        h set "scale.$k.$name.meta" "{\"filter\": \"$*\", \"packets\": $want}"
        qo=$W/q-s$k-$name.pcap
        c=$("$BIN/rewind" query --dir "$A" --count "$@")
        [ "$name" = needle ] && runs=$NRUNS || runs=$QRUNS
        via_daemon "scaling ${k}x query $name" $((runs + 1)) \
            h run "scale.$k.$name.rewind" --warmup 1 --runs "$runs" --out "$qo" -- \
            "$BIN/rewind" query --dir "$A" -w "$qo" "$@" >/dev/null
        h run "scale.$k.$name.local" --warmup 1 --runs "$runs" --out "$qo.l" -- \
            "$BIN/rewind" query --dir "$A" --local -w "$qo.l" "$@" >/dev/null
        cmp -s "$qo" "$qo.l" ||
            h mismatch "scaling ${k}x query $name: rewind and rewind --local answers differ"
        rm -f "$qo.l"
        tcmd=
        i=1
        while [ "$i" -le "$k" ]; do
            tcmd="$tcmd${tcmd:+ ---} tcpdump -r $W/gen$i.pcap -w $W/t-s$i-$name.pcap $*"
            i=$((i + 1))
        done
        # shellcheck disable=SC2086 # word splitting of tcmd is intended (no spaces in paths)
        h run "scale.$k.$name.tcpdump" --warmup 1 --runs "$TRUNS" -- $tcmd >/dev/null
        tc=0
        i=1
        while [ "$i" -le "$k" ]; do
            tc=$((tc + $(h count "$W/t-s$i-$name.pcap")))
            rm -f "$W/t-s$i-$name.pcap"
            i=$((i + 1))
        done
        check "scaling ${k}x query $name ($*)" "$want" "rewind--count=$c" \
            "rewind-w=$(h count "$qo")" "tcpdump=$tc"
        rm -f "$qo"
    done
}
if [ "$SCALE" = 1 ]; then
    case $W in *' '*) echo "bench: scaling needs a work path without spaces" >&2; exit 2 ;; esac
    scale 1
    say "scaling: generating and importing 3 more files (seeds 2-4, later start times)"
    gen 2 2 "$(next_start 1)"
    gen 3 3 "$(next_start 2)"
    gen 4 4 "$(next_start 3)"
    h run scale.2.import -- "$BIN/rewind" import --dir "$A" --quiet "$W/gen2.pcap" >/dev/null
    check "import 2x (all packets)" "$(h expect packets 2)" \
        "rewind=$("$BIN/rewind" query --dir "$A" --count)"
    scale 2
    h run scale.4.import -- "$BIN/rewind" import --dir "$A" --quiet "$W/gen3.pcap" \
        "$W/gen4.pcap" >/dev/null
    check "import 4x (all packets)" "$(h expect packets 4)" \
        "rewind=$("$BIN/rewind" query --dir "$A" --count)"
    scale 4
    h sizes sizes.4x "$A" "$(h expect bytes 4)" \
        "$("$BIN/rewind" status --dir "$A" | sed -n 's/^index  *//p')"
    rm -f "$W/gen2.pcap" "$W/gen3.pcap" "$W/gen4.pcap"
else
    h set scaling_skipped "\"$([ "$SMOKE" = 1 ] && echo smoke mode || echo BENCH_SCALE=0)\""
fi

kill "$DPID"
wait "$DPID" || h mismatch "rewindd serving the archive exited with status $? on SIGTERM"
DPID=
else
    h set queries_skipped '"BENCH_QUERIES=0"'
fi

# ---------------------------------------------------------------- 9. HTTP and HTTPS
# The needle through the HTTP API with a token, plain and over TLS, asked by curl and by
# rewind query --url:
# a rewindd serving the archive on a loopback port, first plain, then with --tls-cert (an archive
# has one owner at a time), the same runs each. Certificates made here with openssl (P-256).
# serve SCHEME PORT [OPTIONS] -- start rewindd on the archive; DPID, wait until it is ready
serve() {
    slog=$W/rewindd-$1.log
    port=$2
    shift 2
    "$BIN/rewindd" --dir "$A" --listen "127.0.0.1:$port" --log "$slog" "$@" &
    DPID=$!
    i=0
    until grep -q ' ready;' "$slog" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -lt 200 ] && kill -0 "$DPID" 2>/dev/null || {
            echo "bench: rewindd did not start on 127.0.0.1:$port" >&2
            exit 1
        }
        sleep 0.1
    done
}
unserve() {
    kill "$DPID"
    wait "$DPID" || h mismatch "rewindd serving $1 exited with status $? on SIGTERM"
    DPID=
}
HTTP=${BENCH_HTTP:-1}
if [ "$HTTP" != 0 ] && command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
    say "HTTP API: needle over plain HTTP and HTTPS (curl, rewind query --url)"
    P=$W/pki
    mkdir -p "$P"
    newkey() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "$@" 2>/dev/null; }
    newkey -x509 -days 2 -subj '/CN=rewind bench CA' -keyout "$P/ca.key" -out "$P/ca.pem"
    newkey -subj '/CN=127.0.0.1' -keyout "$P/server.key" -out "$P/server.csr"
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$P/server.ext"
    openssl x509 -req -in "$P/server.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -set_serial 1 \
        -days 2 -extfile "$P/server.ext" -out "$P/server.pem" 2>/dev/null
    if [ "$SCALE" = 1 ]; then K=4; else K=1; fi
    want=$(h expect needle "$K" "$NEEDLE")
    h set http.meta "{\"filter\": \"host $NEEDLE\", \"packets\": $want, \"archive\": \"${K}x\"}"
    ref=$W/h-ref.pcap
    "$BIN/rewind" query --dir "$A" --local -w "$ref" host "$NEEDLE"
    # As in production, a token: with one defined every request needs it, plain or TLS.
    tok=$("$BIN/rewind" token add --dir "$A" --name bench --role analyst)
    hport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    for scheme in http https; do
        if [ "$scheme" = https ]; then
            serve https "$hport" --tls-cert "$P/server.pem" --tls-key "$P/server.key"
        else
            serve http "$hport"
        fi
        url=$scheme://127.0.0.1:$hport
        o=$W/h-$scheme
        h run "http.$scheme.curl" --warmup 1 --runs "$NRUNS" --out "$o.curl.pcap" -- \
            curl -sf --cacert "$P/ca.pem" -H "Authorization: Bearer $tok" -o "$o.curl.pcap" \
            "$url/api/v1/packets?filter=host%20$NEEDLE" >/dev/null
        h run "http.$scheme.rewind" --warmup 1 --runs "$NRUNS" --out "$o.rewind.pcap" -- \
            env CURL_CA_BUNDLE="$P/ca.pem" REWIND_TOKEN="$tok" "$BIN/rewind" query --url "$url" \
            -w "$o.rewind.pcap" host "$NEEDLE" >/dev/null
        unserve "$scheme"
        for c in curl rewind; do
            check "needle over $scheme ($c)" "$want" "$c=$(h count "$o.$c.pcap")"
            cmp -s "$o.$c.pcap" "$ref" ||
                h mismatch "needle over $scheme ($c): the answer differs from rewind query --local's"
            rm -f "$o.$c.pcap"
        done
    done
    # Analytics (issue 15) over plain HTTP, from the daemon's open index: the timeline of the
    # whole archive at 1 s steps, top talkers by source, the flows of the needle host and of the
    # busiest source; beside tcpdump scanning the same gen files for the needle host.
    say "analytics: timeline, top talkers, flows of one host (HTTP, warm)"
    serve http "$hport"
    url=http://127.0.0.1:$hport/api/v1
    o=$W/an
    auth="Authorization: Bearer $tok"
    scan=""
    # gen2..genK are gone by now (disk): gen1, of the same size, read K times is the same
    # amount of scanning.
    for i in $(seq 1 "$K"); do scan="$scan${scan:+ --- }tcpdump -r $W/gen1.pcap -w /dev/null host $NEEDLE"; done
    # shellcheck disable=SC2086
    h run an.scan --warmup 1 --runs "$TRUNS" -- $scan >/dev/null
    h run an.timeline --warmup 1 --runs "$QRUNS" --out "$o.tl.json" -- \
        curl -sf -H "$auth" -o "$o.tl.json" "$url/timeline?step=1s" >/dev/null
    h run an.top --warmup 1 --runs "$QRUNS" --out "$o.top.json" -- \
        curl -sf -H "$auth" -o "$o.top.json" "$url/top?by=src&limit=10" >/dev/null
    h run an.flows_host --warmup 1 --runs "$QRUNS" --out "$o.fh.json" -- \
        curl -sf -H "$auth" -o "$o.fh.json" "$url/flows?filter=host%20$NEEDLE&limit=1000000" >/dev/null
    busy=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["top"][0]["address"])' "$o.top.json")
    h run an.flows_busy --warmup 1 --runs "$QRUNS" --out "$o.fb.csv" -- \
        curl -sf -H "$auth" -o "$o.fb.csv" "$url/flows?filter=host%20$busy&limit=1000000&format=csv" >/dev/null
    unserve analytics
    npk=$(h expect packets "$K")
    check "timeline: packets of the whole archive" "$npk" \
        "timeline=$(python3 -c 'import json,sys; print(sum(sum(p["packets"]) for p in json.load(open(sys.argv[1]))["points"]))' "$o.tl.json")"
    check "top talkers: packets counted" "$npk" \
        "top=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$o.top.json")"
    check "flows of $NEEDLE: their packets" "$(h expect needle "$K" "$NEEDLE")" \
        "flows=$(python3 -c 'import json,sys; print(sum(f["packets"] for f in json.load(open(sys.argv[1]))["flows"]))' "$o.fh.json")"
    h set an.meta "{\"needle\": \"$NEEDLE\", \"busy\": \"$busy\", \"archive\": \"${K}x\", \"busy_flows\": $(($(wc -l <"$o.fb.csv") - 1)), \"needle_flows\": $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["flows"]))' "$o.fh.json")}"
    rm -f "$o".*
    # A million flows of one busy host (a generated capture, an archive of its own): the rate at
    # which the flows listing streams, beside tcpdump scanning the capture for that host.
    MF=${BENCH_MANYFLOWS:-1000000}
    [ "$SMOKE" = 1 ] && MF=20000
    h manyflows "$W/many.pcap" "$MF"
    "$BIN/rewind" import --quiet --dir "$W/many" --point many "$W/many.pcap"
    h run an.many --warmup 1 --runs "$QRUNS" --out "$o.many.csv" -- \
        sh -c "\"$BIN/rewind\" flows --dir \"$W/many\" --csv --limit 1000000 host 198.51.100.9 >\"$o.many.csv\""
    h run an.many_scan --warmup 1 --runs "$TRUNS" -- \
        tcpdump -r "$W/many.pcap" -w /dev/null host 198.51.100.9 >/dev/null
    check "flows of the busy host" "$MF" "flows=$(($(wc -l <"$o.many.csv") - 1))"
    h set an.meta "$(python3 -c 'import json,sys; m = json.loads(sys.argv[1]); m["many_flows"] = int(sys.argv[2]); print(json.dumps(m))' "$(h get an.meta)" "$MF")"
    rm -rf "$W/many" "$W/many.pcap" "$o".*
    "$BIN/rewind" token revoke --dir "$A" --name bench >/dev/null 2>&1
    rm -rf "$ref" "$P"
else
    h set http_skipped "\"$([ "$HTTP" = 0 ] && echo BENCH_HTTP=0 || echo no openssl or curl)\""
fi

# ---------------------------------------------------------------- 6. sessions
# The abuse desk's and the VoIP engineer's questions on the big archive: the SMTP sessions of
# the busiest SMTP client, and one call's SIP and RTP packets. The real SMTP and SIP captures
# go into the archive beside the generated traffic (point "apps"); tshark answers the same
# over the whole capture (all of them merged), once.
PCAPS=${REWIND_PCAPS:-$ROOT/../shared/pcaps}
if [ "${BENCH_SESSIONS:-1}" != 0 ] && command -v tshark >/dev/null 2>&1 &&
    command -v mergecap >/dev/null 2>&1 && [ -f "$PCAPS/good/smtp.pcap" ]; then
    say "sessions: rewind smtp --host and rewind calls --pcap, beside tshark"
    SM=$PCAPS/good/smtp.pcap
    SC=$PCAPS/app/sip-calls.pcap
    "$BIN/rewind" import --dir "$A" --point apps --quiet "$SM" "$SC" >/dev/null
    client=$(tshark -r "$SM" -Y 'tcp.dstport == 25' -T fields -e ip.src 2>/dev/null |
        sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}')
    # The call with the most RTP packets among the calls of gen1 and the real captures (the
    # listing's CSV: id first, call_id second, rtp_packets 21st); of several, the first ID in
    # byte order, so that every run chooses the same call.
    "$BIN/rewind" calls --dir "$A" --csv --limit 10000 \
        --to "$(($(h get gen1 last_ts | sed 's/\..*//') + 1))" |
        awk -F, 'NR > 1 {print $21 "," $1 "," $2}' | LC_ALL=C sort -t, -k1,1nr -k2,2 |
        head -1 >"$W/call.txt"
    call=$(cut -d, -f2 "$W/call.txt")
    cid=$(cut -d, -f3- "$W/call.txt")
    mergecap -F nsecpcap -w "$W/whole.pcap" "$W/gen1.pcap" "$SM" "$SC"
    h set sessions.meta "{\"client\": \"$client\", \"call\": \"$call\", \"call_id\": \"$cid\",
      \"whole_bytes\": $(stat -c %s "$W/whole.pcap")}"
    h run sessions.smtp.rewind --warmup 1 --runs "$NRUNS" -- \
        "$BIN/rewind" smtp --dir "$A" --host "$client" --json >/dev/null
    h run sessions.call.rewind --warmup 1 --runs "$NRUNS" --out "$W/call.pcap" -- \
        "$BIN/rewind" calls --dir "$A" --pcap "$call" -w "$W/call.pcap" >/dev/null
    h run sessions.smtp.tshark --runs 1 -- tshark -r "$W/whole.pcap" -q \
        -Y "smtp and ip.addr == $client" -T fields -e smtp.req.command -e smtp.response.code >/dev/null
    # tshark's own selection (benchlib.py calljudge): the Call-ID's SIP, and the UDP to and from
    # the addresses and ports that call's SDP announced, while no later call announced them
    h run sessions.call.tshark --runs 1 --out "$W/call-ts.pcap" -- \
        python3 "$HL" calljudge "$W/whole.pcap" "$cid" "$W/call-ts.pcap" >/dev/null
    h samepackets "the call's packets ($cid)" "$W/call.pcap" "$W/call-ts.pcap" >&2
    rm -f "$W/whole.pcap" "$W/call.pcap" "$W/call-ts.pcap"
else
    h set sessions_skipped "\"BENCH_SESSIONS=0, or no tshark/mergecap or captures\""
fi

# ---------------------------------------------------------------- 7. live capture
why=
if [ "$LIVE" = 0 ]; then why=$([ "$SMOKE" = 1 ] && echo "smoke mode" || echo "BENCH_LIVE=0")
elif [ "$(id -u)" != 0 ]; then why="not root"
elif ! ip netns list >/dev/null 2>&1; then why="ip netns does not work"
elif ! command -v tcpreplay >/dev/null 2>&1; then why="no tcpreplay"
fi
if [ -z "$why" ]; then
    say "live capture: netns $NS, veth rwb0/rwb1, rates: $RATES, small packets, freshness"
    # the mix: 200 MiB of trafficgen (its own needles and counts, for the
    # freshness and the queries); small packets: 64-128 bytes, many flows
    LB=$(python3 -c 'import sys; print(min(209715200, int(sys.argv[1])))' "$BYTES")
    "$BIN/trafficgen" --seed 3 --bytes "$LB" -o "$W/live.pcap" 2>"$W/live.txt"
    python3 -c 'import json,sys
g = json.loads(sys.argv[1])
n = g["needles"][0]
print(json.dumps({"needle": n["addr"], "needle_packets": n["packets"], "port25": g["port25"],
                  "wide": g["wide"]["net"], "wide_packets": g["wide"]["packets"]}))' \
        "$(h gen "$W/live.txt")" >"$W/live.expect"
    h smallgen "$W/small.pcap" "$(python3 -c 'import sys; print(max(10000, min(1000000, int(sys.argv[1]) // 100)))' "$BYTES")"
    h live "$NS" "$W/live.pcap" "$W" "$BIN/rewind" "$BIN/rewindd" "$RATES" "$W/live.expect" \
        "$W/small.pcap" >&2
    rm -f "$W/live.pcap" "$W/small.pcap"
else
    h set live_skipped "\"$why\""
fi

# ---------------------------------------------------------------- 10. replay
# rewind replay --topspeed beside tcpreplay --topspeed, the same 50 MiB slice into a veth
if [ -z "$why" ]; then
    say "replay: rewind replay --topspeed beside tcpreplay --topspeed (netns ${NS}r)"
    h slice "$W/gen1.pcap" "$W/replay.pcap" 52428800
    h replay "${NS}r" "$W/replay.pcap" "$BIN/rewind" "$([ "$SMOKE" = 1 ] && echo 1 || echo 3)" >&2
    rm -f "$W/replay.pcap"
else
    h set replay_skipped "\"$why\""
fi

# ---------------------------------------------------------------- 11. several sites
# The bench archive and two small ones as three sensors exporting their flows to a ClickHouse
# started here: the export rate, ClickHouse's bytes a row, and the needle asked of one sensor
# beside the same asked across three (rewind query --sensors), with its packets checked.
if [ "${BENCH_MULTISITE:-1}" != 0 ]; then
    say "several sites: flow export into ClickHouse, the needle across three sensors"
    h multisite "$W" "$BIN" "$A" "$NEEDLE" "$([ "$SMOKE" = 1 ] && echo 1 || echo 5)" >&2
else
    h set ms_skipped '"BENCH_MULTISITE=0"'
fi

# ---------------------------------------------------------------- 12. lawful intercept
# Issue 14's figures, on a veth pair in namespace ${NS}i: the time from POST /api/v1/cases to
# the first packet of a target sending one a millisecond (by pull and by etsi push), and
# rewindd's capture CPU per packet of the same replay with 10 active cases beside none.
LI=${BENCH_INTERCEPT:-1}
[ "$SMOKE" = 1 ] && LI=0
liwhy=
if [ "$LI" = 0 ]; then liwhy=$([ "$SMOKE" = 1 ] && echo "smoke mode" || echo "BENCH_INTERCEPT=0")
elif [ "$(id -u)" != 0 ]; then liwhy="not root"
elif ! ip netns list >/dev/null 2>&1; then liwhy="ip netns does not work"
elif ! command -v tcpreplay >/dev/null 2>&1; then liwhy="no tcpreplay"
fi
if [ -z "$liwhy" ]; then
    say "lawful intercept: warrant to first packet, capture CPU with 10 cases beside none (netns ${NS}i)"
    "$BIN/trafficgen" --seed 5 --bytes "${BENCH_INTERCEPT_BYTES:-104857600}" -o "$W/li.pcap" 2>"$W/li.txt"
    h gen "$W/li.txt" >"$W/li.json"
    h intercept "${NS}i" "$W" "$BIN/rewind" "$BIN/rewindd" "$W/li.pcap" "$W/li.json" \
        "${BENCH_INTERCEPT_ROUNDS:-9}" "${BENCH_INTERCEPT_RATE:-500x3}" >&2
    rm -f "$W/li.pcap"
else
    h set intercept_skipped "\"$liwhy\""
fi

# ---------------------------------------------------------------- report
h report "$ROOT/bench/results.json"
echo "figures: bench/results.json   commands and their output: bench/work/commands.log"
if [ "$(h get mismatches 2>/dev/null | head -c1)" = "[" ]; then
    echo "bench: MISMATCH -- rewind's answers disagree with trafficgen/tcpdump (see above)" >&2
    exit 1
fi
