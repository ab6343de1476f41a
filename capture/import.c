/* import.c -- ingest pcap and pcapng files into capture points.
 *
 * libpcap reads the records (byte order, pcapng options, per-interface time
 * resolution, its own sanity checks). It does not say which pcapng
 * interface a packet came from, so a small walker follows the same file's
 * block structure in step and names the interface of each packet block. */
#include "capture/cap.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_IFACES 64

/* ---- pcapng block walker (interface id of each packet block) ---- */
struct ngwalk {
    FILE *f;
    int swap;
    int base;  /* interfaces of earlier sections */
    int nif;   /* interfaces of this section */
};

static uint32_t ng32(const struct ngwalk *w, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return w->swap ? __builtin_bswap32(v) : v;
}

/* Next packet block's interface index across sections: 1, 0 at EOF, -1 bad. */
static int ngwalk_next(struct ngwalk *w, int *ifid)
{
    uint8_t h[12];
    for (;;) {
        if (fread(h, 1, 8, w->f) != 8)
            return 0;
        uint32_t type, len;
        memcpy(&type, h, 4);
        if (type == 0x0A0D0D0A) { /* SHB: byte order from its magic */
            if (fread(h + 8, 1, 4, w->f) != 4)
                return 0;
            uint32_t magic;
            memcpy(&magic, h + 8, 4);
            w->swap = magic != 0x1A2B3C4D;
            w->base += w->nif;
            w->nif = 0;
            len = ng32(w, h + 4);
            if (len < 12 || fseek(w->f, (long)len - 12, SEEK_CUR) < 0)
                return -1;
            continue;
        }
        type = ng32(w, h);
        len = ng32(w, h + 4);
        if (len < 12)
            return -1;
        if (type == 1) { /* IDB */
            w->nif++;
        } else if (type == 6 || type == 2 || type == 3) {
            uint8_t b[4] = {0};
            int id = 0;
            if (type != 3) {
                if (fread(b, 1, 4, w->f) != 4)
                    return 0;
                if (fseek(w->f, -4, SEEK_CUR) < 0)
                    return -1;
                if (type == 6) {
                    id = (int)ng32(w, b);
                } else {
                    uint16_t v;
                    memcpy(&v, b, 2);
                    id = w->swap ? __builtin_bswap16(v) : v;
                }
            }
            *ifid = w->base + id;
            if (fseek(w->f, (long)len - 8, SEEK_CUR) < 0)
                return -1;
            return 1;
        }
        if (fseek(w->f, (long)len - 8, SEEK_CUR) < 0)
            return -1;
    }
}

static int is_pcapng(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint32_t m = 0;
    if (!f)
        return 0;
    if (fread(&m, 1, 4, f) != 4)
        m = 0;
    fclose(f);
    return m == 0x0A0D0D0A;
}

static int close_all(cap_pw_t **pw, int n, int rc, char *err)
{
    char e2[RW_ERRSZ];
    for (int i = 0; i < n; i++) {
        if (!pw[i])
            continue;
        int r = cap_pw_close(pw[i], e2);
        if (r < 0 && rc == 0) {
            rc = r;
            memcpy(err, e2, RW_ERRSZ);
        }
    }
    return rc;
}

int cap_import_file(cap_arch_t *a, const char *path, const char *point, cap_progress_fn progress,
                    void *parg, struct cap_import_stats *st, char *err)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    cap_pw_t *pw[MAX_IFACES] = {0};
    struct ngwalk ng = {0};
    struct stat sb;
    uint64_t total = 0, recno = 0;
    int rc = 0, nw = 0;
    int64_t last_prog = 0;
    memset(st, 0, sizeof *st);
    if (stat(path, &sb) == 0)
        total = (uint64_t)sb.st_size;
    else if (strcmp(path, "-") != 0)
        return rw_err(err, RW_EINPUT, "%s: %s", path, strerror(errno));
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!p)
        return rw_err(err, RW_EINPUT, "%s: %s", path, ebuf);
    if (strcmp(path, "-") != 0 && is_pcapng(path)) {
        if (!(ng.f = fopen(path, "rb"))) {
            pcap_close(p);
            return rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
        }
    }
    int dlt = pcap_datalink(p);
    uint32_t snap = (uint32_t)pcap_snapshot(p);
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int r = pcap_next_ex(p, &h, &data);
        if (r == PCAP_ERROR_BREAK)
            break;
        if (r != 1) {
            rc = rw_err(err, RW_EINPUT, "%s: record %llu: %s; the %llu records before it were kept",
                        path, (unsigned long long)recno + 1, pcap_geterr(p),
                        (unsigned long long)recno);
            break;
        }
        recno++;
        int ifid = 0;
        if (ng.f && ngwalk_next(&ng, &ifid) != 1)
            ifid = 0; /* libpcap accepted the block; trust it and use interface 0 */
        if (ifid < 0 || ifid >= MAX_IFACES) {
            rc = rw_err(err, RW_EINPUT, "%s: record %llu: interface %d: at most %d interfaces are "
                        "supported per file", path, (unsigned long long)recno, ifid, MAX_IFACES);
            break;
        }
        if (!pw[ifid]) {
            char name[80];
            if (ifid == 0)
                snprintf(name, sizeof name, "%s", point);
            else
                snprintf(name, sizeof name, "%s-if%d", point, ifid);
            if ((rc = cap_pw_open(a, name, dlt, snap, &pw[ifid], err)) < 0)
                break;
            if (ifid + 1 > nw)
                nw = ifid + 1;
            st->points++;
        }
        if ((rc = cap_pw_add(pw[ifid], (uint32_t)h->ts.tv_sec, (uint32_t)h->ts.tv_usec, h->caplen,
                             h->len, data, err)) < 0) {
            rw_errctx(err, rc, "%s: record %llu", path, (unsigned long long)recno);
            break;
        }
        st->packets++;
        st->bytes += h->caplen;
        if (progress && (recno & 4095) == 0) {
            int64_t now = rw_mono_ns();
            if (now - last_prog > RW_NS_PER_SEC / 4) {
                FILE *f = pcap_file(p);
                long pos = f ? ftell(f) : 0;
                progress(parg, path, pos > 0 ? (uint64_t)pos : 0, total, st->packets);
                last_prog = now;
            }
        }
    }
    rc = close_all(pw, nw, rc, err);
    if (progress)
        progress(parg, path, total, total, st->packets);
    if (ng.f)
        fclose(ng.f);
    pcap_close(p);
    return rc;
}
