/* verify.c -- checking an evidence bundle as a third party would with
 * sha256sum -c, and more: the tar's own structure, BagIt's tag files,
 * Payload-Oxum, the tag manifest and the timestamp request's digest
 * (evidence.h). The tar is untrusted bytes: every header is checked. */
#include "evidence/evidence.h"

#include <errno.h>
#include <openssl/sha.h>
#include <openssl/ts.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit.h"

#define MAX_FILES 64
#define TAG_MAX (16u << 20)

struct entry {
    char name[160];   /* relative to the bag */
    uint64_t size;
    char hex[65];
    char *mem;        /* tag files (not under data/), NUL-ended */
};

struct vctx {
    ev_report_fn report;
    void *arg;
    struct ev_verify_stats *st;
    char first[RW_ERRSZ];
};

static void problem(struct vctx *v, const char *fmt, ...) RW_PRINTF(2, 3);
static void problem(struct vctx *v, const char *fmt, ...)
{
    char msg[RW_ERRSZ];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!v->st->problems++)
        snprintf(v->first, sizeof v->first, "%s", msg);
    if (v->report)
        v->report(v->arg, msg);
}

static int octal(const uint8_t *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && p[i] == ' ')
        i++;
    if (i == n || p[i] < '0' || p[i] > '7')
        return -1;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    for (; i < n; i++)
        if (p[i] != 0 && p[i] != ' ')
            return -1;
    *out = v;
    return 0;
}

static struct entry *find(struct entry *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].name, name))
            return &e[i];
    return NULL;
}

/* Lines "HASH  PATH" of a manifest, checked against the entries. */
static void check_manifest(struct vctx *v, const char *what, const char *text, struct entry *e,
                           size_t n, int data, int *listed)
{
    const char *p = text;
    int line = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        char hex[65], path[200];
        line++;
        if (l < 67 || l - 66 >= sizeof path || p[64] != ' ' || p[65] != ' ') {
            problem(v, "%s line %d: not 'SHA256  PATH'", what, line);
        } else {
            memcpy(hex, p, 64);
            hex[64] = 0;
            memcpy(path, p + 66, l - 66);
            path[l - 66] = 0;
            struct entry *f = find(e, n, path);
            if (!f)
                problem(v, "%s line %d: %s is not in the bag", what, line, path);
            else if (strcmp(f->hex, hex))
                problem(v, "%s: %s does not match its SHA-256 (the file was changed)", what,
                        path);
            if (f)
                listed[f - e] = 1;
            if (data && strncmp(path, "data/", 5))
                problem(v, "%s line %d: %s is not a payload file", what, line, path);
        }
        p += l + (nl ? 1 : 0);
    }
}

int ev_verify(const char *path, ev_report_fn report, void *arg, struct ev_verify_stats *st,
              char *err)
{
    struct vctx v = {report, arg, st, ""};
    struct entry *e = calloc(MAX_FILES, sizeof *e);
    size_t ne = 0;
    char bag[128] = "";
    int rc = 0, ended = 0;
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f || !e) {
        free(e);
        if (f)
            fclose(f);
        return rw_err(err, RW_EINPUT, "%s: %s", path, e ? strerror(errno) : "out of memory");
    }
    uint8_t h[512];
    while (fread(h, 1, 512, f) == 512) {
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++)
            zero = !h[i];
        if (zero) {
            ended = 1;
            break;
        }
        uint64_t size, sum, mine = 0;
        if (memcmp(h + 257, "ustar", 5) || octal(h + 124, 12, &size) < 0 ||
            octal(h + 148, 8, &sum) < 0) {
            rc = rw_err(err, RW_EINPUT, "%s: not a tar file (entry %zu)", path, ne + 1);
            goto out;
        }
        for (int i = 0; i < 512; i++)
            mine += (i >= 148 && i < 156) ? ' ' : h[i];
        if (mine != sum) {
            rc = rw_err(err, RW_EINPUT, "%s: tar header %zu fails its checksum", path, ne + 1);
            goto out;
        }
        char name[101];
        memcpy(name, h, 100);
        name[100] = 0;
        char *slash = strchr(name, '/');
        if (!slash || slash == name || (bag[0] && strncmp(name, bag, strlen(bag))) ||
            strstr(name, "..")) {
            rc = rw_err(err, RW_EINPUT, "%s: %s is not in one bag directory", path, name);
            goto out;
        }
        if (!bag[0])
            snprintf(bag, sizeof bag, "%.*s/", (int)(slash - name), name);
        if (h[156] == '5')
            continue;
        if (h[156] != '0' && h[156] != 0) {
            rc = rw_err(err, RW_EINPUT, "%s: %s is not a regular file", path, name);
            goto out;
        }
        if (ne == MAX_FILES) {
            rc = rw_err(err, RW_EINPUT, "%s: more than %d files", path, MAX_FILES);
            goto out;
        }
        struct entry *x = &e[ne++];
        snprintf(x->name, sizeof x->name, "%s", name + strlen(bag));
        x->size = size;
        int tag = strncmp(x->name, "data/", 5) != 0;
        if (tag && size > TAG_MAX) {
            rc = rw_err(err, RW_EINPUT, "%s: tag file %s is too large", path, x->name);
            goto out;
        }
        if (tag && !(x->mem = malloc(size + 1))) {
            rc = rw_err(err, RW_ENOMEM, "out of memory");
            goto out;
        }
        audit_hash_t *hh = audit_hash_new();
        uint64_t left = size, at = 0;
        char buf[65536];
        while (left) {
            size_t want = left < sizeof buf ? left : sizeof buf;
            if (fread(buf, 1, want, f) != want) {
                audit_hash_free(hh);
                rc = rw_err(err, RW_EINPUT, "%s: %s is cut short", path, x->name);
                goto out;
            }
            audit_hash_update(hh, buf, want);
            if (x->mem)
                memcpy(x->mem + at, buf, want);
            at += want;
            left -= want;
        }
        if (x->mem)
            x->mem[size] = 0;
        if (audit_hash_final(hh, x->hex, err) < 0) {
            rc = RW_ENOMEM;
            goto out;
        }
        if (size % 512 && fseek(f, (long)(512 - size % 512), SEEK_CUR) < 0) {
            rc = rw_err(err, RW_EINPUT, "%s: cut short", path);
            goto out;
        }
        st->files++;
        if (!tag) {
            st->payload_files++;
            st->payload_bytes += size;
        }
    }
    if (!ended)
        problem(&v, "the tar has no end-of-archive blocks: cut short?");
    snprintf(st->name, sizeof st->name, "%.*s", (int)(strlen(bag) ? strlen(bag) - 1 : 0), bag);
    struct entry *bagit = find(e, ne, "bagit.txt"), *man = find(e, ne, "manifest-sha256.txt");
    struct entry *tagm = find(e, ne, "tagmanifest-sha256.txt"), *info = find(e, ne, "bag-info.txt");
    struct entry *tsq = find(e, ne, "manifest-sha256.txt.tsq");
    if (!bagit || !man) {
        rc = rw_err(err, RW_EINPUT, "%s: no BagIt bag (bagit.txt and manifest-sha256.txt)", path);
        goto out;
    }
    if (strncmp(bagit->mem, "BagIt-Version: 1.0\n", 19) ||
        !strstr(bagit->mem, "Tag-File-Character-Encoding: UTF-8"))
        problem(&v, "bagit.txt is not BagIt 1.0 in UTF-8");
    int listed[MAX_FILES] = {0};
    check_manifest(&v, "manifest-sha256.txt", man->mem, e, ne, 1, listed);
    for (size_t i = 0; i < ne; i++)
        if (!strncmp(e[i].name, "data/", 5) && !listed[i])
            problem(&v, "%s is in the bag but not in manifest-sha256.txt", e[i].name);
    if (!tagm) {
        problem(&v, "no tagmanifest-sha256.txt");
    } else {
        int tl[MAX_FILES] = {0};
        check_manifest(&v, "tagmanifest-sha256.txt", tagm->mem, e, ne, 0, tl);
        for (size_t i = 0; i < ne; i++)
            if (strncmp(e[i].name, "data/", 5) && &e[i] != tagm && !tl[i])
                problem(&v, "tag file %s is not in tagmanifest-sha256.txt", e[i].name);
    }
    if (info) {
        const char *ox = strstr(info->mem, "Payload-Oxum: ");
        unsigned long long oct = 0;
        unsigned long cnt = 0;
        if (!ox || sscanf(ox, "Payload-Oxum: %llu.%lu", &oct, &cnt) != 2)
            problem(&v, "bag-info.txt has no Payload-Oxum");
        else if (oct != st->payload_bytes || cnt != st->payload_files)
            problem(&v, "Payload-Oxum %llu.%lu, but the payload is %llu bytes in %llu files", oct,
                    cnt, (unsigned long long)st->payload_bytes,
                    (unsigned long long)st->payload_files);
    }
    if (tsq) {
        const unsigned char *q = (const unsigned char *)tsq->mem;
        TS_REQ *r = d2i_TS_REQ(NULL, &q, (long)tsq->size);
        uint8_t md[32];
        SHA256((const uint8_t *)man->mem, man->size, md);
        ASN1_OCTET_STRING *d = r ? TS_MSG_IMPRINT_get_msg(TS_REQ_get_msg_imprint(r)) : NULL;
        if (!d)
            problem(&v, "manifest-sha256.txt.tsq is no RFC 3161 timestamp request");
        else if (ASN1_STRING_length(d) != 32 || memcmp(ASN1_STRING_get0_data(d), md, 32))
            problem(&v, "manifest-sha256.txt.tsq is not over this manifest-sha256.txt");
        TS_REQ_free(r);
    }
    if (st->problems)
        rc = rw_err(err, RW_ECORRUPT, "%s: %llu problems; the first: %s", path,
                    (unsigned long long)st->problems, v.first);
out:
    fclose(f);
    for (size_t i = 0; i < ne; i++)
        free(e[i].mem);
    free(e);
    return rc;
}
