/* schema.c -- the ClickHouse tables the flow export writes (rewind
 * clickhouse-schema prints them). Kept apart from clickhouse.c so that the
 * CLI prints them without linking libcurl.
 *
 * For ClickHouse 18.16 (Debian 12) and later: no TTL, no IPv6 type
 * (addresses are FixedString(16), IPv4 mapped as ::ffff:a.b.c.d, which
 * IPv6NumToString prints), no DateTime64 (times are Int64 ns). */
#include "export/export.h"

#include <stdio.h>

const char *ex_ch_schema(const char *db)
{
    static char buf[6144];
    if (!db || !*db)
        db = EX_CH_DATABASE;
    snprintf(buf, sizeof buf,
"CREATE DATABASE IF NOT EXISTS %s;\n"
"\n"
"-- One row per flow per segment: the sums of a flow's rows are the flow.\n"
"-- The sorting key holds the row's identity (sensor, point, segment, flow\n"
"-- hash): a resend replaces a row, it never adds one (query with FINAL, or\n"
"-- sum after OPTIMIZE). Partitions are (day, sensor): a sensor's old days\n"
"-- are dropped with ALTER TABLE ... DROP PARTITION (day, sensor).\n"
"CREATE TABLE IF NOT EXISTS %s.flows (\n"
"    day Date,\n"
"    sensor String,\n"
"    point String,\n"
"    segment UInt64,\n"
"    flow_hash UInt64,\n"
"    vlan UInt16,\n"
"    family UInt8,\n"
"    proto UInt8,\n"
"    src FixedString(16),\n"
"    dst FixedString(16),\n"
"    sport UInt16,\n"
"    dport UInt16,\n"
"    first_ns Int64,\n"
"    last_ns Int64,\n"
"    packets_fwd UInt64,\n"
"    bytes_fwd UInt64,\n"
"    packets_rev UInt64,\n"
"    bytes_rev UInt64,\n"
"    tcp_flags UInt8,\n"
"    community_id String\n"
") ENGINE = ReplacingMergeTree()\n"
"PARTITION BY (day, sensor)\n"
"ORDER BY (intDiv(first_ns, 3600000000000), src, dst, sport, dport, proto, point, segment, "
"flow_hash);\n"
"\n"
"-- One row per sealed segment sent: packets is what the segment holds,\n"
"-- flow_packets what its flow records count; fewer means packets no flow\n"
"-- names (not IP, or not parsed), which only the sensor can find.\n"
"CREATE TABLE IF NOT EXISTS %s.segments (\n"
"    day Date,\n"
"    sensor String,\n"
"    point String,\n"
"    segment UInt64,\n"
"    first_ns Int64,\n"
"    last_ns Int64,\n"
"    packets UInt64,\n"
"    flow_packets UInt64\n"
") ENGINE = ReplacingMergeTree()\n"
"PARTITION BY (day, sensor)\n"
"ORDER BY (sensor, point, segment);\n"
"\n"
"-- Per sensor, how far its export has got: every packet it captured\n"
"-- before complete_ns has its flows above.\n"
"CREATE TABLE IF NOT EXISTS %s.exports (\n"
"    sensor String,\n"
"    complete_ns Int64,\n"
"    updated_ns UInt64\n"
") ENGINE = ReplacingMergeTree(updated_ns)\n"
"ORDER BY sensor;\n",
             db, db, db, db);
    return buf;
}
