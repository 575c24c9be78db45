/*
 * Pure helpers of the Google simulator: RFC 3339 times, the opaque page
 * token of the Reports API and small deterministic hashes. No I/O, no
 * global state: the unit tests compile this file on its own.
 */
#ifndef AR_TESTS_GOOGLE_SIM_SIM_PAGE_H
#define AR_TESTS_GOOGLE_SIM_SIM_PAGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * A position in a listing: the last (time, uniqueQualifier) returned, the
 * visibility cutoff of the snapshot the listing started from, and a hash of
 * the query so a token cannot be replayed against another query.
 */
struct sim_page_pos {
	int64_t	 time_us;
	int64_t	 uq;
	int64_t	 cutoff_us;
	uint32_t qhash;
};

#define SIM_PAGE_TOKEN_MAX 96

/*
 * Write the token of pos into out (NUL-terminated, at most
 * SIM_PAGE_TOKEN_MAX bytes), shaped like Google's
 * "A:<µs>:<uniqueQualifier>:<cutoff µs>:<query hash>". Returns 0 or
 * -ENOSPC.
 */
int sim_page_encode(const struct sim_page_pos *pos, char *out, size_t outlen);
/*
 * Parse a token written by sim_page_encode() into *pos. Strict: the prefix,
 * five fields, decimal integers without overflow and an 8-hex-digit hash.
 * Returns 0 or -EINVAL.
 */
int sim_page_decode(const char *tok, struct sim_page_pos *pos);
/*
 * Hash of the query parts that must stay the same across the pages of one
 * listing (NULL parts allowed).
 */
uint32_t sim_page_query_hash(const char *const *parts, size_t nparts);

/*
 * Parse an RFC 3339 date-time ("2026-01-02T03:04:05.678Z" or with an
 * offset "+01:00"; fraction optional, up to 9 digits) into microseconds
 * since the epoch. Returns 0 or -EINVAL.
 */
int sim_time_parse(const char *s, int64_t *us);
/*
 * Format us as Google's id.time: UTC with millisecond precision,
 * "2026-01-02T03:04:05.678Z" (24 chars + NUL). Returns out.
 */
char *sim_time_format(int64_t us, char out[32]);

/* 64-bit mixing (splitmix64 finaliser). */
uint64_t sim_mix64(uint64_t x);
/* FNV-1a 64 of a string (NULL hashes like ""). */
uint64_t sim_hash_str(const char *s, uint64_t h);

#endif
