/* evidence.h -- evidence bundles of lawful intercept cases: a BagIt bag
 * (RFC 8493) in a tar file, that a third party checks with sha256sum -c and
 * jq alone (man/rewindd.8, LAWFUL INTERCEPT, Evidence bundles):
 *
 *   NAME/bagit.txt                     BagIt-Version 1.0, UTF-8
 *   NAME/bag-info.txt                  case, warrant, window, Payload-Oxum, date
 *   NAME/manifest-sha256.txt           SHA-256 of every payload file
 *   NAME/manifest-sha256.txt.tsq       an RFC 3161 timestamp request over it
 *   NAME/tagmanifest-sha256.txt        SHA-256 of the four tag files above
 *   NAME/data/packets.pcapng           the case's packets in the window
 *   NAME/data/case.json                the case, and the identity intervals used
 *   NAME/data/capture.json             capture points, drops, clock, software
 *   NAME/data/audit.jsonl              the case's audit records
 *
 * NAME is ID-YYYYMMDDTHHMMSSZ (when it was made). */
#ifndef EVIDENCE_H
#define EVIDENCE_H

#include <stdint.h>

#include "common/rw.h"
#include "intercept/intercept.h"

struct ev_request {
    const char *dir;         /* the archive (its audit trail) */
    idx_t *ix;               /* its index, to read packets and status */
    const struct ic_case *c; /* the case */
    int64_t from, to;        /* the window (within the case's) */
    const char *filter;      /* narrows the case's packets further; NULL: none */
};

struct ev_result {
    char name[128];          /* the bag's directory in the tar */
    uint64_t packets;        /* in data/packets.pcapng */
    uint64_t bytes;          /* of the tar */
    char tar_sha256[65];
};

/* Write the bundle of rq to out (a tar file, written to out.tmp, synced and
 * renamed). RW_EINPUT for a bad window or filter. */
int ev_bundle(const struct ev_request *rq, const char *out, struct ev_result *res,
              char *err) RW_WUR;

typedef void (*ev_report_fn)(void *arg, const char *problem);
struct ev_verify_stats {
    uint64_t files, payload_files, payload_bytes, problems;
    char name[128];
};
/* Check a bundle: a well-formed tar of one bag, bagit.txt, every payload
 * file in manifest-sha256.txt with its hash and none more, Payload-Oxum,
 * the tag manifest, and the timestamp request's digest of the manifest.
 * Each problem goes to report; RW_ECORRUPT when there were any, 0 when
 * clean, RW_EINPUT when the file is no tar or no bag. */
int ev_verify(const char *path, ev_report_fn report, void *arg, struct ev_verify_stats *st,
              char *err) RW_WUR;

#endif
