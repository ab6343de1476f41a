/* cmd_intercept.c -- rewind intercept: an agency's pull client. It follows
 * GET /api/v1/cases/ID/intercept, writes the packets to rotating pcap files
 * in -w DIR, and records after each batch, synced, the last sequence number
 * it holds and how far its file reaches; a restart cuts the file back to
 * that point and asks for what comes after it, so that across any number of
 * broken connections and restarts DIR holds every packet once, in order. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmds.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "intercept/intercept.h"

static const char intercept_help[] =
    "usage: rewind intercept --url URL --case LIID -w DIR [--token TOKEN]\n"
    "                        [--rotate SIZE]\n"
    "\n"
    "Follow case LIID's live intercept on the rewindd at URL and write its\n"
    "packets to pcap files in DIR (LIID-FIRSTSEQ.pcap, a new file every SIZE and\n"
    "at a change of link type). DIR/state records the last sequence number held;\n"
    "a broken connection is retried with back-off, and a restart goes on from\n"
    "there: no packet is missed or written twice. Exits 0 once the case has\n"
    "ended and every packet is held.\n"
    "\n"
    "options:\n"
    "  -u, --url URL          the rewindd (http:// or https://)\n"
    "  -c, --case LIID        the case\n"
    "  -w, --write DIR        where the pcap files and the state go (created)\n"
    "  -T, --token TOKEN      the agency's bearer token (or $REWIND_TOKEN)\n"
    "      --rotate SIZE      start a new file beyond SIZE (default 64M)\n"
    "  -h, --help             this help\n";

struct client {
    const char *dir, *id;
    uint64_t rotate;
    uint64_t last;          /* the last sequence number held, on disk */
    char file[4200];        /* the pcap file being written ("" none) */
    FILE *f;
    int linktype;
    uint64_t size;          /* its bytes, once flushed */
    uint64_t pending;       /* packets written since the state was saved */
    ic_ng_parser_t *ng;
    uint64_t got;           /* packets this connection */
    char err[RW_ERRSZ];
};

static int save_state(struct client *c)
{
    char tmp[4200], path[4200], buf[4400];
    if (c->f && (fflush(c->f) != 0 || fdatasync(fileno(c->f)) < 0))
        return rw_err(c->err, RW_EIO, "%s: %s", c->file, strerror(errno));
    if (c->f)
        c->size = (uint64_t)ftello(c->f);
    snprintf(tmp, sizeof tmp, "%s/.state.tmp", c->dir);
    snprintf(path, sizeof path, "%s/state", c->dir);
    int n = snprintf(buf, sizeof buf, "seq %llu\nfile %s\nsize %llu\n",
                     (unsigned long long)c->last, c->file, (unsigned long long)c->size);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0 || close(fd) < 0 ||
        rename(tmp, path) < 0 || rw_fsync_dir(c->dir) < 0) {
        if (fd >= 0)
            close(fd);
        return rw_err(c->err, RW_EIO, "%s: %s", path, strerror(errno));
    }
    c->pending = 0;
    return 0;
}

/* Read DIR/state and cut the file it names back to the size it records. */
static int load_state(struct client *c)
{
    char path[4200], line[4190];
    unsigned long long seq = 0, size = 0;
    snprintf(path, sizeof path, "%s/state", c->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : rw_err(c->err, RW_EIO, "%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "seq ", 4))
            seq = strtoull(line + 4, NULL, 10);
        else if (!strncmp(line, "file ", 5))
            snprintf(c->file, sizeof c->file, "%s", line + 5);
        else if (!strncmp(line, "size ", 5))
            size = strtoull(line + 5, NULL, 10);
    }
    fclose(f);
    c->last = seq;
    if (!c->file[0])
        return 0;
    /* Packets written after the state was saved are asked for again. */
    if (truncate(c->file, (off_t)size) < 0 || !(c->f = fopen(c->file, "r+")))
        return rw_err(c->err, RW_EIO, "%s: %s", c->file, strerror(errno));
    uint32_t h[6];
    if (fread(h, 4, 6, c->f) != 6 || fseeko(c->f, 0, SEEK_END) < 0)
        return rw_err(c->err, RW_EIO, "%s: not the pcap file this client wrote", c->file);
    c->linktype = (int)h[5];
    c->size = size;
    return 0;
}

static int new_file(struct client *c, uint64_t seq, const struct ic_ng_if *ifc)
{
    if (c->f && (fflush(c->f) != 0 || fdatasync(fileno(c->f)) < 0 || fclose(c->f) != 0)) {
        c->f = NULL;
        return rw_err(c->err, RW_EIO, "%s: %s", c->file, strerror(errno));
    }
    snprintf(c->file, sizeof c->file, "%s/%s-%020llu.pcap", c->dir, c->id,
             (unsigned long long)seq);
    if (!(c->f = fopen(c->file, "w+")))
        return rw_err(c->err, RW_EIO, "%s: %s", c->file, strerror(errno));
    uint32_t h[6] = {0xa1b23c4d, RW_PCAP_VERSION, 0, 0, ifc->snaplen ? ifc->snaplen : 262144,
                     (uint32_t)ifc->linktype};
    if (fwrite(h, 4, 6, c->f) != 6)
        return rw_err(c->err, RW_EIO, "%s: %s", c->file, strerror(errno));
    c->linktype = ifc->linktype;
    c->size = 24;
    return 0;
}

static int packet(struct client *c, const struct ic_ng_event *ev)
{
    const struct ic_ng_if *ifc = ic_ng_iface(c->ng, ev->ifid);
    if (ev->seq <= c->last)
        return 0; /* held already */
    if (ev->seq != c->last + 1)
        return rw_err(c->err, RW_EIO, "the server sent packet %llu after %llu: asking again",
                      (unsigned long long)ev->seq, (unsigned long long)c->last);
    if (!c->f || c->linktype != ifc->linktype || (uint64_t)ftello(c->f) >= c->rotate) {
        if (c->f && save_state(c) < 0)
            return RW_EIO;
        if (new_file(c, ev->seq, ifc) < 0)
            return RW_EIO;
    }
    uint32_t r[4] = {(uint32_t)(ev->ts / RW_NS_PER_SEC), (uint32_t)(ev->ts % RW_NS_PER_SEC),
                     ev->caplen, ev->len};
    if (fwrite(r, 4, 4, c->f) != 4 || fwrite(ev->data, 1, ev->caplen, c->f) != ev->caplen)
        return rw_err(c->err, RW_EIO, "%s: %s", c->file, strerror(errno));
    c->last = ev->seq;
    c->pending++;
    c->got++;
    return 0;
}

/* What arrived: parsed, written, and the state saved once the batch is. */
static int sink(void *arg, const void *buf, size_t n)
{
    struct client *c = arg;
    struct ic_ng_event ev;
    size_t used;
    int rc;
    if (ic_ng_feed(c->ng, buf, n, c->err) < 0)
        return -1;
    while ((rc = ic_ng_next(c->ng, &ev, &used, c->err)) == 1) {
        if (ev.kind == IC_NG_PACKET && packet(c, &ev) < 0)
            return -1;
        if (ev.kind == IC_NG_NOTE)
            fprintf(stderr, "rewind: case %s: the server says: %s\n", c->id, ev.note);
        ic_ng_consume(c->ng, used);
    }
    if (rc < 0)
        return -1;
    return c->pending ? save_state(c) : 0;
}

int cmd_intercept(int argc, char **argv)
{
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'},  {"case", required_argument, 0, 'c'},
        {"write", required_argument, 0, 'w'}, {"token", required_argument, 0, 'T'},
        {"rotate", required_argument, 0, 1}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *url = NULL, *token = getenv("REWIND_TOKEN");
    struct client c = {.rotate = 64ull << 20};
    char err[RW_ERRSZ], path[512];
    int o;
    while ((o = getopt_long(argc, argv, "u:c:w:T:h", opts, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'c': c.id = optarg; break;
        case 'w': c.dir = optarg; break;
        case 'T': token = optarg; break;
        case 1:
            if (rw_size_parse(optarg, &c.rotate, err) < 0 || c.rotate < 4096)
                return cli_usage("intercept: --rotate takes a size of at least 4k, not '%s'",
                                 optarg);
            break;
        case 'h': fputs(intercept_help, stdout); return 0;
        default: return cli_usage("intercept: bad option%s", "");
        }
    }
    if (optind != argc)
        return cli_usage("intercept: unexpected argument '%s'", argv[optind]);
    if (!url || !c.id || !c.dir)
        return cli_usage("intercept: --url, --case and -w DIR are required%s", "");
    if (!ic_id_ok(c.id))
        return cli_usage("intercept: '%s' is not a case id", c.id);
    if (httpc_set_token(token, err) < 0)
        return cli_fail(RW_EINPUT, err);
    if (mkdir(c.dir, 0750) < 0 && errno != EEXIST)
        return cli_fail(RW_EINPUT, strerror(errno));
    if (load_state(&c) < 0)
        return cli_fail(RW_EIO, c.err);
    long backoff_ms = 200;
    for (;;) {
        if (!(c.ng = ic_ng_parser_new()))
            return cli_fail(RW_ENOMEM, "out of memory");
        c.got = 0;
        snprintf(path, sizeof path, "/api/v1/cases/%s/intercept?after=%llu", c.id,
                 (unsigned long long)c.last);
        int rc = httpc_get(url, path, sink, &c, err);
        ic_ng_parser_free(c.ng);
        c.ng = NULL;
        if (rc == 0 && c.pending == 0) {
            if (c.f && (fflush(c.f) != 0 || fdatasync(fileno(c.f)) < 0))
                return cli_fail(RW_EIO, strerror(errno));
            fprintf(stderr, "rewind: case %s has ended; %llu packets held in %s\n", c.id,
                    (unsigned long long)c.last, c.dir);
            return 0;
        }
        if (c.pending && save_state(&c) < 0)
            return cli_fail(RW_EIO, c.err);
        if (rc == RW_EINPUT) /* refused (4xx): asking again will not help */
            return cli_fail(rc, err);
        fprintf(stderr, "rewind: case %s: %s; %llu packets held, trying again in %.1f s\n",
                c.id, c.err[0] ? c.err : err, (unsigned long long)c.last, backoff_ms / 1e3);
        c.err[0] = 0;
        struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff_ms = c.got ? 200 : (backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2);
    }
}
