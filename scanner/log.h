/*
 * log.h - diagnostics on stderr, by level. The level is set once from flags
 * (-v) at start-up; nothing else writes it.
 */
#ifndef MXSCAN_LOG_H
#define MXSCAN_LOG_H

#include <stdio.h>

extern int log_level; /* 0 errors, 1 info, 2 debug */

#define LOG_DEBUG(...)                                                                             \
    do {                                                                                           \
        if (log_level >= 2) {                                                                      \
            fprintf(stderr, "debug: " __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#endif
