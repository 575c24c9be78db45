/*
 * Small helpers shared by every daemon: clocks, strings, ids.
 */
#ifndef AR_LIB_UTIL_H
#define AR_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Wall clock and monotonic clock in milliseconds. */
int64_t util_now_ms(void);
int64_t util_mono_ms(void);

/* Copy src into dst of size dsize, always NUL-terminated; strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t dsize);
/* qsort/bsearch comparison of two char * elements (strcmp order). */
int util_strp_cmp(const void *a, const void *b);
/* strdup that aborts the process on out-of-memory. */
char *util_xstrdup(const char *s);
void *util_xcalloc(size_t n, size_t size);
/* reallocarray(3) that aborts on out-of-memory or overflow. */
void *util_xreallocarray(void *p, size_t n, size_t size);
/* A random RFC 4122 version 4 UUID, lower case, into out[37]. */
void util_uuid_v4(char out[37]);
/* b as a UUID of version (4 random, 8 derived), its bits set in b. */
void util_uuid_format(uint8_t b[16], unsigned version, char out[37]);
/* Uniform random integer in [0, n). n > 0. */
uint64_t util_random_below(uint64_t n);
/* Split "host:port" ("[v6]:port" too); 0 or -EINVAL. */
int util_split_hostport(const char *s, char *host, size_t hostlen,
    uint16_t *port);
/* Parse a whole decimal integer in [min, max]; 0 or -EINVAL/-ERANGE. */
int util_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Parse a boolean spelled 1/0, true/false, yes/no, on/off. */
int util_parse_bool(const char *s, bool *out);
/* True when s is a syntactically plausible e-mail address. */
bool util_is_email(const char *s);
/*
 * printf into a caller's err[] (nothing when err is NULL or errlen 0): how
 * lib/ code hands over what a person should read.
 */
void util_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Directory of the running executable into out (no trailing slash). */
int util_self_dir(char *out, size_t outlen);

#endif
