/* intercept_int.h -- private to intercept/: reading a stored case record. */
#ifndef INTERCEPT_INT_H
#define INTERCEPT_INT_H

#include "intercept/intercept.h"

/* A stored case record (ic_case_json()'s output, as in DIR/cases/ID/case.json)
 * into c: the document's fields checked as ic_case_parse does, plus what the
 * store adds (created, ended, preserved). RW_ECORRUPT naming what is wrong. */
int ic_case_load(const char *text, size_t n, struct ic_case *c, char *err) RW_WUR;

/* The targets' part of a case's BPF ("host A or net P or ether host M",
 * no filter) into out: how many targets it has (0: user targets only, out
 * ""), -1 when it does not fit n. */
int ic_targets_bpf(const struct ic_case *c, char *out, size_t n);

#endif
