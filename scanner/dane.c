/*
 * dane.c - which TLSA records count for SMTP, and rollover risk.
 */
#include "scanner/dane.h"

#include <stdio.h>

static const char *state_names[] = {"none", "insecure", "bogus", "unusable", "usable", "error"};

/* Name of a host's DANE state, as stored in hosts.dane. */
const char *dane_state_name(dane_state_t s)
{
    return (unsigned)s < sizeof state_names / sizeof *state_names ? state_names[s] : "?";
}

/* RFC 7672 3.1.3 usability; see dane.h. */
int dane_usable(const dane_rec_t *r)
{
    if (r->usage != 2 && r->usage != 3) {
        return 0; /* PKIX-TA(0) and PKIX-EE(1) are not used for SMTP */
    }
    if (r->selector > 1) {
        return 0;
    }
    switch (r->mtype) {
    case 0:
        return r->len > 0;
    case 1:
        return r->len == 32;
    case 2:
        return r->len == 64;
    default:
        return 0;
    }
}

/* Rollover risk; see dane.h. */
int dane_rollover_risk(const dane_rec_t *recs, int n)
{
    int usable = 0, ee = 0;
    for (int i = 0; i < n; i++) {
        if (dane_usable(&recs[i])) {
            usable++;
            ee += recs[i].usage == 3;
        }
    }
    return usable == 1 && ee == 1;
}

/* Text form of a record. */
void dane_rec_text(const dane_rec_t *r, char *out, size_t len)
{
    int o = snprintf(out, len, "%u %u %u ", r->usage, r->selector, r->mtype);
    for (size_t i = 0; i < r->len && o > 0 && (size_t)o + 3 < len; i++) {
        o += snprintf(out + o, len - (size_t)o, "%02x", r->data[i]);
    }
}
