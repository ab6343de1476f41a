/* segname.c -- segment file names: made by the writer, found by recovery
 * and reindex (man/rewind-archive.5, SEGMENT FILES). */
#include "archive/archive.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int arc_segname_make(const char *point, int64_t start_ns, int suffix, char *rel, size_t n,
                     char *day_dir, size_t dn)
{
    char day[16];
    time_t t = (time_t)(start_ns / RW_NS_PER_SEC - (start_ns % RW_NS_PER_SEC < 0)); /* floor */
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    size_t k = suffix ? (size_t)snprintf(rel, n, "segments/%s/%s/%lld-%d.pcap", point, day,
                                         (long long)start_ns, suffix)
                      : (size_t)snprintf(rel, n, "segments/%s/%s/%lld.pcap", point, day,
                                         (long long)start_ns);
    if (k >= n || (day_dir && (size_t)snprintf(day_dir, dn, "segments/%s/%s", point, day) >= dn))
        return RW_EINPUT;
    return 0;
}

int arc_segname_parse(const char *rel, struct arc_segname *out)
{
    char point[65], day[16], file[128], ext[24] = "";
    long long start;
    int suffix = 0, used = 0;
    memset(out, 0, sizeof *out);
    if (strlen(rel) >= sizeof out->rel ||
        sscanf(rel, "segments/%64[^/]/%15[^/]/%127s%n", point, day, file, &used) != 3 ||
        rel[used] != 0 || !rw_point_name_ok(point))
        return -1;
    if (sscanf(file, "%lld-%d.%23s", &start, &suffix, ext) != 3 &&
        (suffix = 0, sscanf(file, "%lld.%23s", &start, ext) != 2))
        return -1;
    if (!strcmp(ext, "pcap.lz4.tmp"))
        out->partial = 1;
    else if (!strcmp(ext, "pcap.lz4"))
        out->compressed = 1;
    else if (strcmp(ext, "pcap"))
        return -1;
    /* Only the names the writer makes: the same fields written again must
     * give the same name ("05", "+5", "5-0", a day that is not the start's,
     * a start beyond 64 bits all differ). */
    char canon[ARC_SEG_REL_MAX];
    size_t cl;
    if (suffix < 0 || arc_segname_make(point, start, suffix, canon, sizeof canon, NULL, 0) < 0 ||
        strncmp(canon, rel, (cl = strlen(canon))) != 0 ||
        (rel[cl] && strcmp(rel + cl, ".lz4") && strcmp(rel + cl, ".lz4.tmp")))
        return -1;
    snprintf(out->rel, sizeof out->rel, "%s", rel);
    snprintf(out->point, sizeof out->point, "%s", point);
    out->start = start;
    out->suffix = suffix;
    return 0;
}

static int by_write_order(const void *a, const void *b)
{
    const struct arc_segname *x = a, *y = b;
    int c = strcmp(x->point, y->point);
    if (c)
        return c;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->suffix - y->suffix;
}

struct list {
    struct arc_segname *v;
    size_t n, cap;
};

static int list_add(struct list *l, const char *dir, const char *rel)
{
    struct arc_segname s;
    struct stat sb;
    char full[1400];
    if (arc_segname_parse(rel, &s) < 0)
        return 0; /* not a segment: left alone */
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        struct arc_segname *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = nc;
    }
    if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, rel) < sizeof full && stat(full, &sb) == 0)
        s.mtime = sb.st_mtim;
    l->v[l->n++] = s;
    return 0;
}

/* The day directories of one point. */
static int list_point(struct list *l, const char *dir, const char *point, char *err)
{
    char pdir[1400];
    struct dirent *de, *fe;
    snprintf(pdir, sizeof pdir, "%s/segments/%s", dir, point);
    DIR *dd = opendir(pdir);
    if (!dd)
        return errno == ENOENT || errno == ENOTDIR /* a file: not a point */
                   ? 0 : rw_err(err, RW_EIO, "%s: %s", pdir, strerror(errno));
    int rc = 0;
    while (rc == 0 && (de = readdir(dd))) {
        char ddir[1700];
        if (de->d_name[0] == '.')
            continue;
        snprintf(ddir, sizeof ddir, "%s/%s", pdir, de->d_name);
        DIR *fd = opendir(ddir);
        if (!fd)
            continue;
        while (rc == 0 && (fe = readdir(fd))) {
            char rel[1400];
            if (fe->d_name[0] == '.')
                continue;
            snprintf(rel, sizeof rel, "segments/%s/%s/%s", point, de->d_name, fe->d_name);
            if (list_add(l, dir, rel) < 0)
                rc = rw_err(err, RW_ENOMEM, "out of memory listing %s", pdir);
        }
        closedir(fd);
    }
    closedir(dd);
    return rc;
}

int arc_segname_list(const char *dir, const char *point, struct arc_segname **out, size_t *n,
                     char *err)
{
    struct list l = {0};
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (point) {
        rc = list_point(&l, dir, point, err);
    } else {
        char top[1100];
        struct dirent *pe;
        snprintf(top, sizeof top, "%s/segments", dir);
        DIR *pd = opendir(top);
        if (!pd)
            return rw_err(err, RW_EIO, "%s: %s", top, strerror(errno));
        while (rc == 0 && (pe = readdir(pd)))
            if (pe->d_name[0] != '.' && rw_point_name_ok(pe->d_name))
                rc = list_point(&l, dir, pe->d_name, err);
        closedir(pd);
    }
    if (rc < 0) {
        free(l.v);
        return rc;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, by_write_order);
    *out = l.v;
    *n = l.n;
    return 0;
}
