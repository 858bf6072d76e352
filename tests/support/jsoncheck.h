/*
 * jsoncheck.h - a small strict JSON string checker for the tests and fuzzers.
 *
 * The scanner writes JSON strings with sb_json_str (scanner/strbuf.c); the
 * tests check that output here, independently of how it was written: strict
 * UTF-8 (RFC 3629), JSON strings (RFC 8259 section 7, with \uXXXX escapes
 * and surrogate pairs decoded to UTF-8) and compact arrays of strings, as
 * smtp_ehlo_json writes them (no whitespace between tokens).
 */
#ifndef MXSCAN_TESTS_JSONCHECK_H
#define MXSCAN_TESTS_JSONCHECK_H

#include <stddef.h>

/* Flag: accept a raw byte C0-FF followed by one to three continuation bytes as one sequence
 * even when it is not strict UTF-8 (overlong, surrogate, above U+10FFFF, truncated). It lets
 * the fuzzer tolerate an old sb_json_str bug that copied such bytes raw. */
#define JC_LAX_UTF8 1

/* Length of the strict UTF-8 sequence at s (n > 0 bytes available), 0 if s does not start one:
 * RFC 3629 section 4, no overlong form, no surrogate, at most U+10FFFF. */
size_t jc_utf8_len(const unsigned char *s, size_t n);

/* Appends code point c (at most U+10FFFF) as UTF-8 at out[*o] and advances *o (1 to 4 bytes). */
void jc_put_utf8(unsigned c, unsigned char *out, size_t *o);

/* Decodes the JSON string that starts at s[*pos] (s holds n bytes) into out as UTF-8; out needs
 * room for n - *pos bytes, and the result is not NUL-terminated. On success returns 0, stores the
 * decoded length in *outlen and moves *pos past the closing quote. On error returns -1, leaves
 * *pos and *outlen alone and, if why is not NULL, points *why at the reason. flags: 0 or
 * JC_LAX_UTF8. */
int jc_json_string(const unsigned char *s, size_t n, size_t *pos, int flags, unsigned char *out,
                   size_t *outlen, const char **why);

/* Checks that the whole of text is one JSON array of strings ("[]" or ["a","b"], no whitespace)
 * and returns its strings decoded, each NUL-terminated and malloc'd, in a malloc'd list (*items,
 * NULL when empty; free it with jc_free_strings). On error returns -1 with *items NULL,
 * *count 0 and, if why is not NULL, *why set. flags as for jc_json_string. */
int jc_json_string_array(const char *text, int flags, char ***items, size_t *count,
                         const char **why);

/* Frees the list jc_json_string_array returned. */
void jc_free_strings(char **items, size_t count);

#endif
