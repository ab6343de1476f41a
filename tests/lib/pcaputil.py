"""pcaputil.py -- tiny pcap reader/writer for the tests (independent of rewind)."""
import struct

NANO_MAGIC = 0xA1B23C4D
MICRO_MAGIC = 0xA1B2C3D4


def read_pcap(data):
    """Parse a classic pcap byte string: (header_bytes, [(ts_ns, rec_bytes)], nano)."""
    if len(data) < 24:
        raise ValueError("short pcap header (%d bytes)" % len(data))
    magic_le = struct.unpack("<I", data[:4])[0]
    if magic_le in (NANO_MAGIC, MICRO_MAGIC):
        e = "<"
    else:
        e = ">"
    magic = struct.unpack(e + "I", data[:4])[0]
    if magic not in (NANO_MAGIC, MICRO_MAGIC):
        raise ValueError("not a pcap file (magic %08x)" % magic_le)
    nano = magic == NANO_MAGIC
    recs = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack(e + "IIII", data[pos:pos + 16])
        end = pos + 16 + caplen
        if end > len(data):
            raise ValueError("truncated record at offset %d" % pos)
        ts = sec * 10**9 + (frac if nano else frac * 1000)
        recs.append((ts, data[pos:end]))
        pos = end
    if pos != len(data):
        raise ValueError("%d stray bytes at the end" % (len(data) - pos))
    return data[:24], recs, nano


def window(header, recs, lo, hi):
    """Bytes of a pcap holding the records with lo <= ts < hi (None = open)."""
    out = [header]
    for ts, rec in recs:
        if (lo is None or ts >= lo) and (hi is None or ts < hi):
            out.append(rec)
    return b"".join(out)


def merge_by_time(streams):
    """Merge lists of (ts, rec) the way rewind merges points: repeatedly take
    the head with the smallest timestamp, ties to the earlier stream."""
    idx = [0] * len(streams)
    out = []
    while True:
        best = None
        for i, s in enumerate(streams):
            if idx[i] < len(s) and (best is None or s[idx[i]][0] < streams[best][idx[best]][0]):
                best = i
        if best is None:
            return out
        out.append(streams[best][idx[best]])
        idx[best] += 1


def packet_data(rec):
    """Frame bytes of a record (without its 16-byte header)."""
    return rec[16:]
