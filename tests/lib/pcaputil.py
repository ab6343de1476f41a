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


def orig_len(rec):
    """The original (wire) length of a little-endian record."""
    return struct.unpack("<I", rec[12:16])[0]


# An Ethernet ARP request: a frame every link-layer parser takes.
ARP_FRAME = bytes.fromhex("ffffffffffff001122334455080600010800060400010011223344"
                          "55c0a80001000000000000c0a80002")


def craft_pcap(magic=MICRO_MAGIC, major=2, minor=4, thiszone=0, sigfigs=0, snaplen=65535,
               linktype=1, endian="<", records=2):
    """A pcap file with the given header fields (pcap-savefile(5)) and
    `records` copies of ARP_FRAME, one second apart: for headers that
    libpcap, tcpdump and rewind must judge alike."""
    out = [struct.pack(endian + "IHHiIII", magic, major, minor, thiszone, sigfigs, snaplen,
                       linktype)]
    for i in range(records):
        out.append(struct.pack(endian + "IIII", 1700000000 + i, 0, len(ARP_FRAME),
                               len(ARP_FRAME)) + ARP_FRAME)
    return b"".join(out)


def craft_pcapng(linktype=1, reserved=0, records=2):
    """A little-endian pcapng file: a Section Header Block, one Interface
    Description Block with this LinkType and Reserved field, and `records`
    Enhanced Packet Blocks of ARP_FRAME."""
    def block(btype, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(1, struct.pack("<HHI", linktype, reserved, 65535))]
    for i in range(records):
        us = (1700000000 + i) * 1000000  # the default resolution
        out.append(block(6, struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(ARP_FRAME),
                                        len(ARP_FRAME)) + ARP_FRAME))
    return b"".join(out)
