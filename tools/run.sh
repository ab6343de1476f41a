#!/bin/sh
# run.sh -- `make run`: start rewindd on the default-route interface,
# archiving into ./var/rewind, in the foreground (Ctrl-C stops it cleanly).
set -eu
dir=${REWIND_DIR:-./var/rewind}
iface=${IFACE:-$(ip route show default 2>/dev/null | awk '/default/ {for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')}
if [ -z "$iface" ]; then
    echo "run: no default route; set IFACE=name (e.g. make run IFACE=eth0)" >&2
    exit 2
fi
mkdir -p "$dir"
cat >&2 <<MSG
rewind: capturing on $iface into $dir (Ctrl-C to stop)
  the web console: http://127.0.0.1:8800/ in a browser
  in another terminal:
    bin/rewind status --dir $dir
    bin/rewind query --dir $dir --from -5m 'tcp port 443' -w last5min.pcap
MSG
exec bin/rewindd --dir "$dir" -i "$iface"
