/* case.c -- a case document: parsed and checked field by field, written
 * back as JSON, and turned into the BPF expression that selects its
 * packets (intercept.h). */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int ic_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > IC_ID_MAX || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

const char *ic_case_state(const struct ic_case *c, int64_t now)
{
    if (c->ended || now >= c->to)
        return "ended";
    return now < c->from ? "pending" : "active";
}

int64_t ic_case_end_ns(const struct ic_case *c)
{
    return c->ended && c->ended < c->to ? c->ended : c->to;
}

/* A printable string of at most max-1 bytes (no control characters). */
static int text_field(json_t *v, const char *name, char *out, size_t max, char *err)
{
    if (!json_is_string(v))
        return rw_err(err, RW_EINPUT, "%s: expected a string", name);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= max)
        return rw_err(err, RW_EINPUT, "%s: longer than %zu bytes", name, max - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rw_err(err, RW_EINPUT, "%s: control characters are not allowed", name);
    memcpy(out, s, n + 1);
    return 0;
}

static int time_field(json_t *v, const char *name, int64_t now, int64_t *out, char *err)
{
    char e2[RW_ERRSZ];
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) < INT64_MAX / RW_NS_PER_SEC) {
        *out = (int64_t)json_integer_value(v) * RW_NS_PER_SEC;
        return 0;
    }
    if (!json_is_string(v))
        return rw_err(err, RW_EINPUT, "%s: expected a time (RFC 3339, Unix seconds or -15m)",
                      name);
    if (rw_time_parse(json_string_value(v), now, out, e2) < 0)
        return rw_err(err, RW_EINPUT, "%s: %s", name, e2);
    return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char sep[5], tail;
    if (strlen(s) != 17 || sscanf(s, "%2x%c%2x%c%2x%c%2x%c%2x%c%2x%c", &v[0], &sep[0], &v[1],
                                  &sep[1], &v[2], &sep[2], &v[3], &sep[3], &v[4], &sep[4], &v[5],
                                  &tail) != 11)
        return -1;
    for (int i = 0; i < 5; i++)
        if (sep[i] != sep[0] || (sep[i] != ':' && sep[i] != '-'))
            return -1;
    for (int i = 0; i < 17; i++)
        if (i % 3 != 2 && rw_hexval(s[i]) < 0)
            return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)v[i];
    return 0;
}

/* "A.B.C.D", "X::Y": its family and bytes. */
static int parse_addr(const char *s, struct ic_target *t)
{
    if (inet_pton(AF_INET, s, t->addr) == 1) {
        t->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, t->addr) == 1) {
        t->family = AF_INET6;
        return 0;
    }
    return -1;
}

static int parse_target(json_t *o, size_t i, struct ic_target *t, char *err)
{
    char name[48], buf[128];
    const char *key;
    json_t *v;
    memset(t, 0, sizeof *t);
    if (!json_is_object(o) || json_object_size(o) != 1)
        return rw_err(err, RW_EINPUT, "targets[%zu]: expected an object with one of ip, prefix, "
                      "mac, user", i);
    json_object_foreach(o, key, v) {
        snprintf(name, sizeof name, "targets[%zu].%.16s", i, key);
        if (!strcmp(key, "user")) {
            t->kind = IC_TARGET_USER;
            if (text_field(v, name, t->user, sizeof t->user, err) < 0)
                return RW_EINPUT;
            if (!t->user[0])
                return rw_err(err, RW_EINPUT, "%s: empty user name", name);
            return 0;
        }
        if (strcmp(key, "ip") && strcmp(key, "prefix") && strcmp(key, "mac"))
            return rw_err(err, RW_EINPUT, "targets[%zu]: unknown target kind '%.32s': ip, prefix, "
                          "mac or user", i, key);
        if (text_field(v, name, buf, sizeof buf, err) < 0)
            return RW_EINPUT;
        if (!strcmp(key, "mac")) {
            t->kind = IC_TARGET_MAC;
            if (parse_mac(buf, t->mac) < 0)
                return rw_err(err, RW_EINPUT, "%s: '%s' is not a MAC address "
                              "(00:11:22:33:44:55)", name, buf);
            return 0;
        }
        if (!strcmp(key, "ip")) {
            t->kind = IC_TARGET_IP;
            if (parse_addr(buf, t) < 0)
                return rw_err(err, RW_EINPUT, "%s: '%s' is not an IPv4 or IPv6 address", name,
                              buf);
            t->plen = t->family == AF_INET ? 32 : 128;
            return 0;
        }
        t->kind = IC_TARGET_PREFIX;
        char *slash = strchr(buf, '/'), *end;
        if (!slash)
            return rw_err(err, RW_EINPUT, "%s: '%s' is not a prefix (ADDRESS/LENGTH)", name, buf);
        *slash = 0;
        if (parse_addr(buf, t) < 0)
            return rw_err(err, RW_EINPUT, "%s: '%s' is not an IPv4 or IPv6 address", name, buf);
        long l = strtol(slash + 1, &end, 10);
        int max = t->family == AF_INET ? 32 : 128;
        if (slash[1] < '0' || slash[1] > '9' || *end || l < 0 || l > max)
            return rw_err(err, RW_EINPUT, "%s: prefix length '%s' is not 0 to %d", name,
                          slash + 1, max);
        t->plen = (int)l;
        for (int b = t->plen; b < max; b++)
            if (t->addr[b / 8] & (0x80 >> (b % 8)))
                return rw_err(err, RW_EINPUT, "%s: %s/%d has bits set beyond its length", name,
                              buf, t->plen);
        return 0;
    }
    return 0; /* not reached: the object has one member */
}

/* Check a BPF filter the way queries will judge it (libpcap). */
static int check_filter(const char *f, char *err)
{
    pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
    struct bpf_program prog;
    if (!p)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (pcap_compile(p, &prog, f, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        rw_err(err, RW_EINPUT, "filter: %s", pcap_geterr(p));
        pcap_close(p);
        return RW_EINPUT;
    }
    pcap_freecode(&prog);
    pcap_close(p);
    return 0;
}

/* A file the daemon reads: an absolute path, so that it does not depend
 * on the working directory of whoever sent the case. */
static int path_field(json_t *v, const char *name, char *out, size_t max, char *err)
{
    if (text_field(v, name, out, max, err) < 0)
        return RW_EINPUT;
    if (out[0] != '/')
        return rw_err(err, RW_EINPUT, "%s: '%s' is not an absolute path (the daemon reads the "
                      "file)", name, out);
    return 0;
}

/* delivery.tls: true, false, or an object of ca, cert, key, server_name
 * (every one optional; cert and key together). The files are read only by
 * ic_case_parse (ic_etsi_tls_check): a stored case names them as given. */
static int parse_tls(json_t *v, struct ic_case *c, char *err)
{
    const char *key;
    json_t *f;
    if (json_is_boolean(v)) {
        c->tls = json_is_true(v);
        return 0;
    }
    if (!json_is_object(v))
        return rw_err(err, RW_EINPUT, "delivery.tls: expected an object (ca, cert, key, "
                      "server_name) or true");
    c->tls = 1;
    json_object_foreach(v, key, f) {
        char name[64];
        snprintf(name, sizeof name, "delivery.tls.%.24s", key);
        if (!strcmp(key, "ca")) {
            if (path_field(f, name, c->tls_ca, sizeof c->tls_ca, err) < 0)
                return RW_EINPUT;
        } else if (!strcmp(key, "cert")) {
            if (path_field(f, name, c->tls_cert, sizeof c->tls_cert, err) < 0)
                return RW_EINPUT;
        } else if (!strcmp(key, "key")) {
            if (path_field(f, name, c->tls_key, sizeof c->tls_key, err) < 0)
                return RW_EINPUT;
        } else if (!strcmp(key, "server_name")) {
            if (text_field(f, name, c->tls_server_name, sizeof c->tls_server_name, err) < 0)
                return RW_EINPUT;
            for (const char *p = c->tls_server_name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == ':'))
                    return rw_err(err, RW_EINPUT, "%s: '%s' is not a host name", name,
                                  c->tls_server_name);
        } else {
            return rw_err(err, RW_EINPUT, "%s: unknown setting: tls takes ca, cert, key, "
                          "server_name", name);
        }
    }
    if (!c->tls_cert[0] != !c->tls_key[0])
        return rw_err(err, RW_EINPUT, "delivery.tls.%s: a client certificate needs both cert "
                      "and key", c->tls_cert[0] ? "key" : "cert");
    return 0;
}

static int parse_delivery(json_t *d, struct ic_case *c, char *err)
{
    const char *key;
    json_t *v;
    if (!json_is_object(d))
        return rw_err(err, RW_EINPUT, "delivery: expected an object");
    json_t *type = json_object_get(d, "type");
    if (!type)
        return rw_err(err, RW_EINPUT, "delivery.type: missing (pull or etsi)");
    if (!json_is_string(type) || (strcmp(json_string_value(type), "pull") &&
                                  strcmp(json_string_value(type), "etsi")))
        return rw_err(err, RW_EINPUT, "delivery.type: unknown delivery type %s%.32s%s: pull or "
                      "etsi", json_is_string(type) ? "'" : "",
                      json_is_string(type) ? json_string_value(type) : "(not a string)",
                      json_is_string(type) ? "'" : "");
    c->delivery = strcmp(json_string_value(type), "pull") ? IC_ETSI : IC_PULL;
    json_object_foreach(d, key, v) {
        char name[48];
        snprintf(name, sizeof name, "delivery.%.24s", key);
        if (!strcmp(key, "type"))
            continue;
        if (c->delivery == IC_PULL)
            return rw_err(err, RW_EINPUT, "%s: pull delivery takes no settings", name);
        if (!strcmp(key, "address")) {
            if (text_field(v, name, c->deliver_to, sizeof c->deliver_to, err) < 0)
                return RW_EINPUT;
        } else if (!strcmp(key, "country")) {
            if (text_field(v, name, c->country, sizeof c->country, err) < 0 ||
                strlen(c->country) != 2 || c->country[0] < 'A' || c->country[0] > 'Z' ||
                c->country[1] < 'A' || c->country[1] > 'Z')
                return rw_err(err, RW_EINPUT, "%s: expected two capital letters (ISO 3166)",
                              name);
        } else if (!strcmp(key, "operator")) {
            if (text_field(v, name, c->operator_id, sizeof c->operator_id, err) < 0)
                return RW_EINPUT;
        } else if (!strcmp(key, "network_element")) {
            if (text_field(v, name, c->element_id, sizeof c->element_id, err) < 0)
                return RW_EINPUT;
        } else if (!strcmp(key, "tls")) {
            if (parse_tls(v, c, err) < 0)
                return RW_EINPUT;
        } else {
            return rw_err(err, RW_EINPUT, "%s: unknown setting: etsi takes address, country, "
                          "operator, network_element, tls", name);
        }
    }
    if (c->delivery == IC_ETSI) {
        const char *colon = strrchr(c->deliver_to, ':');
        if (!c->deliver_to[0] || !colon || colon == c->deliver_to || atoi(colon + 1) <= 0 ||
            atoi(colon + 1) > 65535)
            return rw_err(err, RW_EINPUT, "delivery.address: etsi delivery needs the agency's "
                          "HOST:PORT");
        if (!c->country[0])
            return rw_err(err, RW_EINPUT, "delivery.country: etsi delivery needs the "
                          "authorisation country code");
    }
    return 0;
}

/* The document's fields of object j into c (zeroed first). */
static int case_from_json(json_t *j, int64_t now, struct ic_case *c, char *err)
{
    const char *key;
    json_t *v;
    int rc = RW_EINPUT, have_from = 0, have_to = 0;
    memset(c, 0, sizeof *c);
    if (!json_is_object(j))
        return rw_err(err, RW_EINPUT, "body: expected a JSON object");
    json_object_foreach(j, key, v) {
        if (!strcmp(key, "id")) {
            if (text_field(v, "id", c->id, sizeof c->id, err) < 0)
                goto out;
            if (!ic_id_ok(c->id)) {
                rw_err(err, RW_EINPUT, "id: '%s' is not a case id: 1 to %d of letters, digits, "
                       "'.', '_', '-', not starting with '.'", c->id, IC_ID_MAX);
                goto out;
            }
        } else if (!strcmp(key, "authority")) {
            if (text_field(v, "authority", c->authority, sizeof c->authority, err) < 0)
                goto out;
        } else if (!strcmp(key, "warrant")) {
            if (text_field(v, "warrant", c->warrant, sizeof c->warrant, err) < 0)
                goto out;
        } else if (!strcmp(key, "from")) {
            if (time_field(v, "from", now, &c->from, err) < 0)
                goto out;
            have_from = 1;
        } else if (!strcmp(key, "to")) {
            if (time_field(v, "to", now, &c->to, err) < 0)
                goto out;
            have_to = 1;
        } else if (!strcmp(key, "type")) {
            if (!json_is_string(v) || (strcmp(json_string_value(v), "content") &&
                                       strcmp(json_string_value(v), "iri"))) {
                rw_err(err, RW_EINPUT, "type: must be content or iri");
                goto out;
            }
            c->type = strcmp(json_string_value(v), "iri") ? IC_CONTENT : IC_IRI;
        } else if (!strcmp(key, "targets")) {
            if (!json_is_array(v) || json_array_size(v) == 0) {
                rw_err(err, RW_EINPUT, "targets: expected a non-empty array of targets");
                goto out;
            }
            if (json_array_size(v) > IC_MAX_TARGETS) {
                rw_err(err, RW_EINPUT, "targets: at most %d", IC_MAX_TARGETS);
                goto out;
            }
            for (size_t i = 0; i < json_array_size(v); i++)
                if (parse_target(json_array_get(v, i), i, &c->targets[c->ntargets++], err) < 0)
                    goto out;
        } else if (!strcmp(key, "filter")) {
            if (text_field(v, "filter", c->filter, sizeof c->filter, err) < 0)
                goto out;
            if (c->filter[0] && (rc = check_filter(c->filter, err)) < 0)
                goto out;
            rc = RW_EINPUT;
        } else if (!strcmp(key, "delivery")) {
            if (parse_delivery(v, c, err) < 0)
                goto out;
        } else {
            rw_err(err, RW_EINPUT, "%.40s: unknown field: a case has id, authority, warrant, "
                   "from, to, type, targets, filter, delivery", key);
            goto out;
        }
    }
    if (!c->id[0])
        rw_err(err, RW_EINPUT, "id: missing (the case's LIID)");
    else if (!c->authority[0])
        rw_err(err, RW_EINPUT, "authority: missing");
    else if (!c->warrant[0])
        rw_err(err, RW_EINPUT, "warrant: missing (the warrant's reference)");
    else if (!have_from)
        rw_err(err, RW_EINPUT, "from: missing (when the warrant starts)");
    else if (!have_to)
        rw_err(err, RW_EINPUT, "to: missing (when the warrant ends)");
    else if (c->from >= c->to)
        rw_err(err, RW_EINPUT, "to: the window is reversed or empty: 'to' must be after 'from'");
    else if (!c->ntargets)
        rw_err(err, RW_EINPUT, "targets: missing (ip, prefix, mac or user)");
    else
        rc = 0;
out:
    return rc;
}

int ic_case_parse(const char *text, size_t n, int64_t now, struct ic_case *c, char *err)
{
    json_error_t je;
    memset(c, 0, sizeof *c);
    if (n > IC_BODY_MAX)
        return rw_err(err, RW_EINPUT, "body: a case is at most %u bytes", IC_BODY_MAX);
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return rw_err(err, RW_EINPUT, "body: not JSON: %s (line %d, column %d)", je.text,
                      je.line, je.column);
    int rc = case_from_json(j, now, c, err);
    json_decref(j);
    if (rc == 0 && c->delivery == IC_ETSI && c->tls)
        rc = ic_etsi_tls_check(c, err); /* the files, as the pusher will read them */
    return rc;
}

/* A stored time member of o, removed from it. */
static int take_time(json_t *o, const char *k, int64_t *out, char *err)
{
    json_t *v = json_object_get(o, k);
    char e2[RW_ERRSZ];
    if (!v)
        return 0;
    if (!json_is_string(v) || rw_time_parse(json_string_value(v), 0, out, e2) < 0)
        return rw_err(err, RW_ECORRUPT, "%s is not a time", k);
    json_object_del(o, k);
    return 0;
}

static int take_text(json_t *o, const char *k, char *out, size_t n, char *err)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= n)
        return rw_err(err, RW_ECORRUPT, "%s is not a string of at most %zu bytes", k, n - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    json_object_del(o, k);
    return 0;
}

int ic_case_load(const char *text, size_t n, struct ic_case *c, char *err)
{
    json_error_t je;
    struct ic_case extra = {0};
    int rc = RW_ECORRUPT;
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je), *p;
    if (!j)
        return rw_err(err, RW_ECORRUPT, "not JSON: %s (line %d, column %d)", je.text, je.line,
                      je.column);
    if (!json_is_object(j)) {
        rw_err(err, RW_ECORRUPT, "not a JSON object");
        goto out;
    }
    json_object_del(j, "state"); /* derived from the times when shown */
    if (take_time(j, "created", &extra.created, err) < 0 ||
        take_text(j, "created_by", extra.creator, sizeof extra.creator, err) < 0 ||
        take_time(j, "ended", &extra.ended, err) < 0 ||
        take_text(j, "ended_by", extra.ended_by, sizeof extra.ended_by, err) < 0)
        goto out;
    if ((p = json_object_get(j, "preserved"))) {
        json_t *pk = json_object_get(p, "packets"), *pb = json_object_get(p, "bytes");
        if (!json_is_object(p) || take_time(p, "from", &extra.retro_from, err) < 0 ||
            take_time(p, "to", &extra.retro_to, err) < 0 ||
            take_text(p, "sha256", extra.retro_sha256, sizeof extra.retro_sha256, err) < 0 ||
            !json_is_integer(pk) || !json_is_integer(pb)) {
            rw_err(err, RW_ECORRUPT, "preserved: malformed");
            goto out;
        }
        extra.retro_packets = (uint64_t)json_integer_value(pk);
        extra.retro_bytes = (uint64_t)json_integer_value(pb);
        json_object_del(j, "preserved");
    }
    if ((rc = case_from_json(j, 0, c, err)) < 0) {
        rc = RW_ECORRUPT;
        goto out;
    }
    c->created = extra.created;
    memcpy(c->creator, extra.creator, sizeof c->creator);
    c->ended = extra.ended;
    memcpy(c->ended_by, extra.ended_by, sizeof c->ended_by);
    c->retro_from = extra.retro_from;
    c->retro_to = extra.retro_to;
    c->retro_packets = extra.retro_packets;
    c->retro_bytes = extra.retro_bytes;
    memcpy(c->retro_sha256, extra.retro_sha256, sizeof c->retro_sha256);
out:
    json_decref(j);
    return rc;
}

static json_t *target_json(const struct ic_target *t)
{
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN + 8];
    switch (t->kind) {
    case IC_TARGET_IP:
        inet_ntop(t->family, t->addr, a, sizeof a);
        return json_pack("{s:s}", "ip", a);
    case IC_TARGET_PREFIX:
        inet_ntop(t->family, t->addr, a, sizeof a);
        snprintf(b, sizeof b, "%s/%d", a, t->plen);
        return json_pack("{s:s}", "prefix", b);
    case IC_TARGET_MAC:
        snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", t->mac[0], t->mac[1], t->mac[2],
                 t->mac[3], t->mac[4], t->mac[5]);
        return json_pack("{s:s}", "mac", b);
    default:
        return json_pack("{s:s}", "user", t->user);
    }
}

static json_t *jtime(int64_t ns)
{
    char b[48];
    return json_string(rw_time_fmt(ns, b, sizeof b));
}

char *ic_case_json(const struct ic_case *c, int64_t now)
{
    json_t *targets = json_array();
    for (size_t i = 0; i < c->ntargets; i++)
        json_array_append_new(targets, target_json(&c->targets[i]));
    json_t *d = json_pack("{s:s}", "type", c->delivery == IC_ETSI ? "etsi" : "pull");
    if (c->delivery == IC_ETSI) {
        json_object_set_new(d, "address", json_string(c->deliver_to));
        json_object_set_new(d, "country", json_string(c->country));
        if (c->operator_id[0])
            json_object_set_new(d, "operator", json_string(c->operator_id));
        if (c->element_id[0])
            json_object_set_new(d, "network_element", json_string(c->element_id));
        if (c->tls) {
            json_t *t = json_object();
            if (c->tls_ca[0])
                json_object_set_new(t, "ca", json_string(c->tls_ca));
            if (c->tls_cert[0])
                json_object_set_new(t, "cert", json_string(c->tls_cert));
            if (c->tls_key[0])
                json_object_set_new(t, "key", json_string(c->tls_key));
            if (c->tls_server_name[0])
                json_object_set_new(t, "server_name", json_string(c->tls_server_name));
            json_object_set_new(d, "tls", t);
        }
    }
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:o,s:s,s:o,s:s,s:o,s:s,s:o,s:s}", "id", c->id,
                          "authority", c->authority, "warrant", c->warrant, "from",
                          jtime(c->from), "to", jtime(c->to), "type",
                          c->type == IC_IRI ? "iri" : "content", "targets", targets, "filter",
                          c->filter, "delivery", d, "state", ic_case_state(c, now), "created",
                          jtime(c->created), "created_by", c->creator);
    if (!j)
        return NULL;
    if (c->ended) {
        json_object_set_new(j, "ended", jtime(c->ended));
        json_object_set_new(j, "ended_by", json_string(c->ended_by));
    }
    json_t *p = json_pack("{s:o,s:o,s:I,s:I}", "from", jtime(c->retro_from), "to",
                          jtime(c->retro_to), "packets", (json_int_t)c->retro_packets, "bytes",
                          (json_int_t)c->retro_bytes);
    if (c->retro_sha256[0]) {
        json_object_set_new(p, "file", json_string("retro.pcapng"));
        json_object_set_new(p, "sha256", json_string(c->retro_sha256));
    }
    json_object_set_new(j, "preserved", p);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

int ic_targets_bpf(const struct ic_case *c, char *out, size_t n)
{
    size_t l = 0;
    int terms = 0;
    out[0] = 0;
    for (size_t i = 0; i < c->ntargets && l < n; i++) {
        const struct ic_target *t = &c->targets[i];
        char a[INET6_ADDRSTRLEN];
        const char *sep = terms ? " or " : "";
        if (t->kind == IC_TARGET_USER)
            continue;
        terms++;
        if (t->kind == IC_TARGET_MAC)
            l += (size_t)snprintf(out + l, n - l, "%sether host %02x:%02x:%02x:%02x:%02x:%02x",
                                  sep, t->mac[0], t->mac[1], t->mac[2], t->mac[3], t->mac[4],
                                  t->mac[5]);
        else if (t->kind == IC_TARGET_IP)
            l += (size_t)snprintf(out + l, n - l, "%shost %s", sep,
                                  inet_ntop(t->family, t->addr, a, sizeof a));
        else
            l += (size_t)snprintf(out + l, n - l, "%snet %s/%d", sep,
                                  inet_ntop(t->family, t->addr, a, sizeof a), t->plen);
    }
    if (l >= n) {
        out[0] = 0;
        return -1;
    }
    return terms;
}

int ic_case_bpf(const struct ic_case *c, char *out, size_t n, char *err)
{
    int terms = ic_targets_bpf(c, out, n);
    if (terms < 0)
        return rw_err(err, RW_EINPUT, "case %s: its targets are too long", c->id);
    if (!terms)
        return rw_err(err, RW_EINPUT, "case %s has no address, prefix or MAC target", c->id);
    if (c->filter[0]) {
        size_t l = strlen(out);
        if (l + strlen(c->filter) + 12 >= n) {
            out[0] = 0;
            return rw_err(err, RW_EINPUT, "case %s: its filter is too long", c->id);
        }
        memmove(out + 1, out, l + 1);
        out[0] = '(';
        snprintf(out + l + 1, n - l - 1, ") and (%s)", c->filter);
    }
    return 0;
}
