/* intercept_int.h -- private to intercept/: reading a stored case record. */
#ifndef INTERCEPT_INT_H
#define INTERCEPT_INT_H

#include "intercept/intercept.h"

/* A stored case record (ic_case_json()'s output, as in DIR/cases/ID/case.json)
 * into c: the document's fields checked as ic_case_parse does, plus what the
 * store adds (created, ended, preserved). RW_ECORRUPT naming what is wrong. */
int ic_case_load(const char *text, size_t n, struct ic_case *c, char *err) RW_WUR;

#endif
