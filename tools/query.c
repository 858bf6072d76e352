/*
 * query.c - one-value SQL queries, shared by the tools.
 */
#include <sqlite3.h>

#include "tools/tools.h"

/* See tools.h. */
int tools_query_int(sqlite3 *c, const char *sql, int64_t p1, int64_t p2, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);

    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 1) {
        rc = sqlite3_bind_int64(st, 1, p1);
    }
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 2) {
        rc = sqlite3_bind_int64(st, 2, p2);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            ret = 1;
        } else if (rc == SQLITE_DONE) {
            ret = 0;
        }
    }
    sqlite3_finalize(st);
    return ret;
}
