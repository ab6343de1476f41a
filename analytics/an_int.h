/* an_int.h -- what the files of analytics/ share. */
#ifndef AN_INT_H
#define AN_INT_H
#include <stdint.h>

#include "analytics/analytics.h"
#include "query/query.h"

struct idx_point;

/* The archive's points, or those named (NULL-terminated names; NULL: all);
 * RW_EINPUT naming a point the archive lacks and listing those it has.
 * *out malloc'ed. */
int an_points_selected(idx_t *ix, const char **names, struct idx_point **out, size_t *n,
                       char *err) RW_WUR;

/* Each packet of [from, to) on points matching filter (BPF; NULL or "":
 * all), restricted to segments segs (ascending; NULL: all), in the query
 * engine's order; cb returns nonzero to stop. A filter libpcap refuses is
 * RW_EINPUT with its message. */
typedef int (*an_pkt_fn)(void *arg, const struct qry_point *pt, const struct qry_pkt *p);
int an_scan(idx_t *ix, int64_t from, int64_t to, const char *filter, const char **points,
            const uint64_t *segs, size_t nsegs, an_pkt_fn cb, void *arg, char *err) RW_WUR;

/* RW_EINPUT with libpcap's message if filter does not compile for the
 * link type of a point asked for (NULL: every point). */
int an_filter_check(idx_t *ix, const char *filter, const char **points, char *err) RW_WUR;

/* JSON string escaping for names (point names are restricted, but cheap). */
void an_json_str(FILE *f, const char *s);
/* Address text of a family-4/6 address. */
const char *an_addr(int family, const uint8_t *a, char *buf, size_t n);
/* "tcp", "udp", ... or NULL. */
const char *an_proto_name(int proto);

/* Ask for the cache line at p. GCC 12 at -O2 drops __builtin_prefetch
 * when the address is loaded under some conditions (seen in output.c's row
 * loop), so on x86 it is an instruction the optimiser must keep. */
static inline void an_prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}

#endif
