/* cmd_case.c -- rewind case add|list|show|end: lawful intercept cases,
 * through the rewindd owning --dir (its control socket), else in the
 * archive directly when no daemon runs (intercept/intercept.h). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/audit.h"
#include "cli/cmds.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "ctl/ctl.h"
#include "intercept/intercept.h"
#include "query/read.h"

static const char case_help[] =
    "usage: rewind case add  --dir DIR --id LIID --authority TEXT --warrant REF\n"
    "                        --from TIME --to TIME TARGET... [--filter BPF]\n"
    "                        [--type content|iri]\n"
    "       rewind case add  --dir DIR --json FILE   (the case as JSON; - for stdin)\n"
    "       rewind case list --dir DIR\n"
    "       rewind case show --dir DIR LIID\n"
    "       rewind case end  --dir DIR LIID\n"
    "       rewind case OPERATION --url URL [--token T] ...  (the same, of a rewindd over HTTP)\n"
    "\n"
    "Lawful intercept cases (warrants). Adding a case copies the packets that\n"
    "match it in its window up to now into DIR/cases/LIID/retro.pcapng, which\n"
    "retention never deletes. 'end' ends a case now; its record stays. While a\n"
    "rewindd owns DIR the daemon makes the change (its peer must be root or the\n"
    "daemon's user); every change is in the audit trail. With --url the daemon's\n"
    "HTTP API (/api/v1/cases) is asked instead: changes need an admin token, an\n"
    "agency token lists and shows its own case.\n"
    "\n"
    "targets (at least one, each repeatable):\n"
    "      --ip ADDR          an IPv4 or IPv6 address\n"
    "      --prefix NET/LEN   an IPv4 or IPv6 prefix\n"
    "      --mac MAC          a MAC address (00:11:22:33:44:55)\n"
    "      --user NAME        a subscriber's user name (RADIUS User-Name)\n"
    "\n"
    "options:\n"
    "  -d, --dir DIR          the archive (default $REWIND_DIR)\n"
    "  -u, --url URL          a rewindd's HTTP API instead (or $REWIND_URL)\n"
    "      --token T          bearer token for --url (or $REWIND_TOKEN)\n"
    "      --id LIID          the case's id: 1 to 64 of letters, digits, '.', '_', '-'\n"
    "      --authority TEXT   the authority that issued the warrant\n"
    "      --warrant REF      the warrant's reference\n"
    "      --from TIME        the warrant's start (RFC 3339, Unix seconds, -15m)\n"
    "      --to TIME          the warrant's end\n"
    "      --filter BPF       narrow the case's packets further\n"
    "      --type TYPE        content (packets, the default) or iri (no payload)\n"
    "      --json FILE        the whole case as JSON (rewindd(8), LAWFUL INTERCEPT)\n"
    "  -h, --help             this help\n";

/* The document of `case add` from its options, as a JSON string (freed by
 * the caller); NULL with the usage error printed. */
static char *case_doc(json_t *j, json_t *targets)
{
    if (json_array_size(targets))
        json_object_set(j, "targets", targets);
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

static char *read_all(const char *path, char *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    char *buf = NULL;
    size_t len = 0;
    if (!f) {
        rw_err(err, RW_EINPUT, "%s: %s", path, strerror(errno));
        return NULL;
    }
    FILE *m = open_memstream(&buf, &len);
    char b[8192];
    size_t n;
    while (m && (n = fread(b, 1, sizeof b, f)) > 0 && len < IC_BODY_MAX)
        fwrite(b, 1, n, m);
    if (m)
        fclose(m);
    if (f != stdin)
        fclose(f);
    if (!buf)
        rw_err(err, RW_ENOMEM, "out of memory");
    return buf;
}

/* Without a daemon: the case store of dir itself, with the archive read as
 * a reader and the audit trail appended by this process. */
static int case_local(const char *dir, const char *op, const char *id, const char *json,
                      char **answer, char *err)
{
    idx_t *ix = NULL;
    audit_t *at = NULL;
    ic_t *ic = NULL;
    struct ic_case *k = NULL;
    char who[128], client[48], route[32];
    int rc, found = 1;
    *answer = NULL;
    if (!strcmp(op, "list") || !strcmp(op, "show")) {
        struct ic_case *v = NULL;
        size_t n = 0;
        if (!strcmp(op, "list"))
            rc = ic_list_dir(dir, &v, &n, err);
        else if ((v = malloc(sizeof *v)) == NULL)
            rc = rw_err(err, RW_ENOMEM, "out of memory");
        else
            n = (size_t)(rc = ic_get_dir(dir, id, v, err)) > 0 ? 1 : 0;
        char *buf = NULL;
        size_t len = 0;
        FILE *m = rc >= 0 ? open_memstream(&buf, &len) : NULL;
        for (size_t i = 0; m && i < n; i++) {
            char *s = ic_case_json(&v[i], rw_now_ns());
            fprintf(m, "%s\n", s ? s : "");
            free(s);
        }
        if (m)
            fclose(m);
        free(v);
        if (rc < 0)
            return rc;
        *answer = len ? buf : (free(buf), NULL);
        return 0;
    }
    if ((rc = qry_archive_open(dir, &ix, err)) < 0)
        return rc;
    if ((rc = audit_open(dir, &at, err)) < 0 && rc != AUDIT_RECOVERED)
        goto out;
    if ((rc = ic_open(dir, ix, at, &ic, err)) < 0)
        goto out;
    if (!(k = malloc(sizeof *k))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    rw_user_name(getuid(), who, sizeof who);
    snprintf(client, sizeof client, "local pid %d", (int)getpid());
    snprintf(route, sizeof route, "local case %.16s", op);
    struct ic_who w = {who, getuid() == 0 ? "admin" : "analyst", "uid", client, route};
    if (!strcmp(op, "add"))
        rc = ic_create(ic, json, strlen(json), &w, k, err);
    else
        rc = ic_end(ic, id, &w, k, &found, err);
    if (rc == 0 && found && !(*answer = ic_case_json(k, rw_now_ns())))
        rc = rw_err(err, RW_ENOMEM, "out of memory");
out:
    free(k);
    ic_close(ic);
    audit_close(at);
    qry_archive_close(ix);
    return rc;
}

struct membuf {
    char *p;
    size_t n;
};

static int to_mem(void *arg, const void *buf, size_t n)
{
    struct membuf *m = arg;
    if (m->n + n > IC_BODY_MAX * 16u)
        return -1;
    char *np = realloc(m->p, m->n + n + 1);
    if (!np)
        return -1;
    memcpy(np + m->n, buf, n);
    m->n += n;
    np[m->n] = 0;
    m->p = np;
    return 0;
}

/* The same operations through a rewindd's HTTP API: *answer as case_local
 * gives it (one case, or one case per line for list; NULL: no such case). */
static int case_url(const char *url, const char *op, const char *id, const char *json,
                    char **answer, char *err)
{
    struct membuf m = {NULL, 0};
    char path[128];
    long status = 0;
    int rc;
    *answer = NULL;
    if (id)
        snprintf(path, sizeof path, "/api/v1/cases/%s", id); /* ic_id_ok: nothing to escape */
    else
        snprintf(path, sizeof path, "/api/v1/cases");
    if (id && !ic_id_ok(id))
        return rw_err(err, RW_EINPUT, "'%s' is not a case id: 1 to %d of letters, digits, '.', "
                      "'_', '-'", id, IC_ID_MAX);
    rc = httpc_send(url, !strcmp(op, "add") ? "POST" : !strcmp(op, "end") ? "DELETE" : "GET",
                    path, json, json ? strlen(json) : 0, to_mem, &m, &status, err);
    if (rc < 0) {
        free(m.p);
        return status == 404 ? 0 : rc == RW_EINPUT && status == 409 ? RW_ESTATE : rc;
    }
    if (strcmp(op, "list")) {
        *answer = m.p;
        return 0;
    }
    json_t *j = json_loads(m.p ? m.p : "", 0, NULL), *v;
    size_t i;
    free(m.p);
    json_t *cases = json_object_get(j, "cases");
    if (!json_is_array(cases)) {
        json_decref(j);
        return rw_err(err, RW_EIO, "%s: the answer has no \"cases\" array", url);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_array_foreach(cases, i, v) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (f && s)
            fprintf(f, "%s\n", s);
        free(s);
    }
    if (f)
        fclose(f);
    json_decref(j);
    *answer = len ? buf : (free(buf), NULL);
    return 0;
}

/* One line per case for a terminal. */
static void print_case_line(const char *json)
{
    json_t *j = json_loads(json, 0, NULL);
    if (!j) {
        puts(json);
        return;
    }
    printf("%s  %s  %s .. %s  warrant '%s'  preserved %lld packets", 
           json_string_value(json_object_get(j, "id")),
           json_string_value(json_object_get(j, "state")),
           json_string_value(json_object_get(j, "from")),
           json_string_value(json_object_get(j, "to")),
           json_string_value(json_object_get(j, "warrant")),
           (long long)json_integer_value(json_object_get(json_object_get(j, "preserved"),
                                                         "packets")));
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(j, "targets"), i, t) {
        const char *k;
        json_t *v;
        json_object_foreach(t, k, v)
            printf("%s%s %s", i ? ", " : "  targets ", k, json_string_value(v));
    }
    putchar('\n');
    json_decref(j);
}

int cmd_case(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},   {"id", required_argument, 0, 'I'},
        {"authority", required_argument, 0, 'A'}, {"warrant", required_argument, 0, 'W'},
        {"from", required_argument, 0, 'f'},  {"to", required_argument, 0, 't'},
        {"filter", required_argument, 0, 'F'}, {"type", required_argument, 0, 'T'},
        {"json", required_argument, 0, 'j'},  {"ip", required_argument, 0, 1},
        {"prefix", required_argument, 0, 2},  {"mac", required_argument, 0, 3},
        {"user", required_argument, 0, 4},    {"help", no_argument, 0, 'h'},
        {"url", required_argument, 0, 'u'},   {"token", required_argument, 0, 5},
        {0, 0, 0, 0}};
    static const char *const kinds[] = {NULL, "ip", "prefix", "mac", "user"};
    const char *dir = NULL, *jsonfile = NULL, *op, *url = NULL, *token = getenv("REWIND_TOKEN");
    char err[RW_ERRSZ];
    json_t *doc = json_object(), *targets = json_array();
    int c, fields = 0, rc, status = 0;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(case_help, argc < 2 ? stderr : stdout);
        rc = argc < 2 ? EXIT_USAGE : 0;
        goto done_doc;
    }
    op = argv[1];
    if (strcmp(op, "add") && strcmp(op, "list") && strcmp(op, "show") && strcmp(op, "end")) {
        rc = cli_usage("case: unknown operation '%s': add, list, show or end", op);
        goto done_doc;
    }
    argc--;
    argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:u:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'u': url = optarg; break;
        case 5: token = optarg; break;
        case 'j': jsonfile = optarg; break;
        case 'I': json_object_set_new(doc, "id", json_string(optarg)), fields++; break;
        case 'A': json_object_set_new(doc, "authority", json_string(optarg)), fields++; break;
        case 'W': json_object_set_new(doc, "warrant", json_string(optarg)), fields++; break;
        case 'f': json_object_set_new(doc, "from", json_string(optarg)), fields++; break;
        case 't': json_object_set_new(doc, "to", json_string(optarg)), fields++; break;
        case 'F': json_object_set_new(doc, "filter", json_string(optarg)), fields++; break;
        case 'T': json_object_set_new(doc, "type", json_string(optarg)), fields++; break;
        case 1:
        case 2:
        case 3:
        case 4:
            json_array_append_new(targets, json_pack("{s:s}", kinds[c], optarg));
            fields++;
            break;
        case 'h':
            fputs(case_help, stdout);
            rc = 0;
            goto done_doc;
        default:
            rc = cli_usage("case: bad option%s", "");
            goto done_doc;
        }
    }
    if (dir && url) {
        rc = cli_usage("case: --dir or --url, not both%s", "");
        goto done_doc;
    }
    if (!url)
        dir = cli_env_dir(dir);
    if (!dir && !url)
        url = getenv("REWIND_URL");
    if (!dir && !url) {
        rc = cli_usage("case: --dir DIR or --url URL is required (or set REWIND_DIR)%s", "");
        goto done_doc;
    }
    const char *id = NULL;
    char *json = NULL;
    if (!strcmp(op, "show") || !strcmp(op, "end")) {
        if (optind != argc - 1 || fields || jsonfile) {
            rc = cli_usage("case %s takes the case's LIID and --dir (or --url) only", op);
            goto done_doc;
        }
        id = argv[optind];
    } else if (optind != argc) {
        rc = cli_usage("case: unexpected argument '%s'", argv[optind]);
        goto done_doc;
    } else if (!strcmp(op, "list") && (fields || jsonfile)) {
        rc = cli_usage("case list takes --dir (or --url) only%s", "");
        goto done_doc;
    } else if (!strcmp(op, "add")) {
        if (jsonfile && fields) {
            rc = cli_usage("case add: give the case as --json FILE or as options, not both%s",
                           "");
            goto done_doc;
        }
        json = jsonfile ? read_all(jsonfile, err) : case_doc(doc, targets);
        if (!json) {
            rc = cli_fail(RW_EINPUT, err);
            goto done_doc;
        }
    }
    char *answer = NULL;
    if (url) {
        if ((rc = httpc_set_token(token, err)) == 0)
            rc = case_url(url, op, id, json, &answer, err);
    } else {
        rc = ctl_case(dir, op, id, json, &answer, err);
        if (rc == RW_EBUSY)
            rc = case_local(dir, op, id, json, &answer, err);
    }
    free(json);
    if (rc < 0) {
        status = cli_fail(rc == RW_ESTATE ? RW_EINPUT : rc, err);
    } else if (!answer && strcmp(op, "list")) {
        fprintf(stderr, "rewind: no case %s in %s (rewind case list)\n", id, url ? url : dir);
        status = EXIT_RUNTIME;
    } else if (answer) {
        if (!strcmp(op, "list")) {
            for (char *l = strtok(answer, "\n"); l; l = strtok(NULL, "\n"))
                print_case_line(l);
        } else {
            fputs(answer, stdout);
            if (answer[strlen(answer) - 1] != '\n')
                putchar('\n');
        }
    }
    free(answer);
    rc = status;
done_doc:
    json_decref(doc);
    json_decref(targets);
    return rc;
}
