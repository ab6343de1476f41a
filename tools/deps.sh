#!/bin/sh
# deps.sh -- install the Debian packages rewind builds and tests with, only if missing.
# Runs `apt-get update` first whenever something has to be installed (a fresh
# machine has stale package lists); installs nothing when all are present.
# libjs-chart.js is the web console's chart library (copied into web/vendor/
# by make); chromium and chromium-driver run the console's test
# (tests/e2e/test_console.py).
set -eu
PKGS="gcc make pkg-config libpcap-dev librocksdb-dev libmicrohttpd-dev libgnutls28-dev libroaring-dev \
liblz4-dev libssl-dev libcmocka-dev libjansson-dev libcurl4-openssl-dev tcpdump tcpreplay lz4 iproute2 curl python3 clang \
openssl passwd util-linux tshark python3-pyasn1 swaks sip-tester stenographer stenographer-client \
libclang-rt-14-dev libfixbuf-dev clickhouse-server nfdump wireshark-common \
libjs-chart.js chromium chromium-driver"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing; run 'make deps' as root (it uses apt-get)" >&2
    exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
