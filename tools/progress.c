/*
 * progress.c - the progress line of the tools (see tools.h): the same
 * shape as the scanner's, for exports, reports and diffs over large scans.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "tools/tools.h"

/* Milliseconds of a monotonic clock. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Starts counting; nothing is drawn before a second has passed. */
void progress_start(progress_t *p, const char *what, uint64_t total, int quiet)
{
    p->what = what;
    p->total = total;
    p->done = 0;
    p->t0_ms = p->last_ms = now_ms();
    p->tty = isatty(2);
    p->quiet = quiet;
    p->shown = 0;
}

/* Counts work done and redraws at most 4 times a second. */
void progress_add(progress_t *p, uint64_t n)
{
    p->done += n;
    if (p->quiet || !p->tty || (p->done & 63) != 0) {
        return;
    }
    uint64_t t = now_ms();
    if (t - p->t0_ms < 1000 || t - p->last_ms < 250) {
        return;
    }
    p->last_ms = t;
    double el = (double)(t - p->t0_ms) / 1000.0;
    double rate = (double)p->done / el;
    if (p->total) {
        double frac = (double)p->done / (double)p->total;
        double left = rate > 0 ? (double)(p->total - p->done) / rate : 0;
        fprintf(stderr, "\r%s: %llu/%llu (%.0f%%), %.0f/s, eta %ds   ", p->what,
                (unsigned long long)p->done, (unsigned long long)p->total, frac * 100, rate,
                (int)left);
    } else {
        fprintf(stderr, "\r%s: %llu, %.0f/s   ", p->what, (unsigned long long)p->done, rate);
    }
    p->shown = 1;
}

/* Clears the progress line. */
void progress_end(progress_t *p)
{
    if (p->shown) {
        fprintf(stderr, "\r%*s\r", 72, "");
        p->shown = 0;
    }
}
