/*
 * Pure helpers of the Google simulator: RFC 3339 times, page tokens,
 * hashes. See sim_page.h.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_page.h"

uint64_t
sim_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t
sim_hash_str(const char *s, uint64_t h)
{
	if (h == 0)
		h = 0xcbf29ce484222325ULL;
	if (s == NULL)
		return h;
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint32_t
sim_page_query_hash(const char *const *parts, size_t nparts)
{
	uint64_t h = 0;
	size_t	 i;

	for (i = 0; i < nparts; i++) {
		h = sim_hash_str(parts[i], h);
		h = sim_hash_str("\x1f", h);
	}
	return (uint32_t)(sim_mix64(h) >> 32);
}

int
sim_page_encode(const struct sim_page_pos *pos, char *out, size_t outlen)
{
	int n;

	n = snprintf(out, outlen,
	    "A:%" PRId64 ":%" PRId64 ":%" PRId64 ":%08" PRIx32, pos->time_us,
	    pos->uq, pos->cutoff_us, pos->qhash);
	if (n < 0 || (size_t)n >= outlen)
		return -ENOSPC;
	return 0;
}

/*
 * Parse a decimal int64 from *sp up to the next ':' or the end; advance
 * *sp past it. Returns 0 or -EINVAL.
 */
static int
page_parse_i64(const char **sp, int64_t *out)
{
	const char *s = *sp;
	char	   *end;
	long long   v;

	if (*s != '-' && !isdigit((unsigned char)*s))
		return -EINVAL;
	if (*s == '-' && !isdigit((unsigned char)s[1]))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || (*end != ':' && *end != '\0'))
		return -EINVAL;
	*out = v;
	*sp = end;
	return 0;
}

int
sim_page_decode(const char *tok, struct sim_page_pos *pos)
{
	const char *s = tok;
	size_t	    i;
	uint32_t    h = 0;

	if (tok == NULL || strncmp(s, "A:", 2) != 0)
		return -EINVAL;
	s += 2;
	if (page_parse_i64(&s, &pos->time_us) < 0 || *s++ != ':')
		return -EINVAL;
	if (page_parse_i64(&s, &pos->uq) < 0 || *s++ != ':')
		return -EINVAL;
	if (page_parse_i64(&s, &pos->cutoff_us) < 0 || *s++ != ':')
		return -EINVAL;
	for (i = 0; i < 8; i++) {
		int c = (unsigned char)s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -EINVAL;
		h = (h << 4) | (uint32_t)d;
	}
	if (s[8] != '\0')
		return -EINVAL;
	if (pos->time_us < 0 || pos->cutoff_us < 0)
		return -EINVAL;
	pos->qhash = h;
	return 0;
}

/* Read exactly n digits at s into *v. Returns 0 or -EINVAL. */
static int
time_digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int
sim_time_parse(const char *s, int64_t *us)
{
	struct tm tm;
	int	  Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
	int64_t	  frac = 0, scale = 100000;
	time_t	  t;

	if (s == NULL || strlen(s) < 20)
		return -EINVAL;
	if (time_digits(s, 4, &Y) || s[4] != '-' || time_digits(s + 5, 2, &M) ||
	    s[7] != '-' || time_digits(s + 8, 2, &D) ||
	    (s[10] != 'T' && s[10] != 't') || time_digits(s + 11, 2, &h) ||
	    s[13] != ':' || time_digits(s + 14, 2, &m) || s[16] != ':' ||
	    time_digits(s + 17, 2, &sec))
		return -EINVAL;
	s += 19;
	if (*s == '.') {
		int n = 0;

		s++;
		while (isdigit((unsigned char)*s)) {
			if (n < 6) {
				frac += (*s - '0') * scale;
				scale /= 10;
			}
			n++;
			s++;
		}
		if (n == 0 || n > 9)
			return -EINVAL;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '+' ? 1 : -1;
		if (time_digits(s + 1, 2, &oh) || s[3] != ':' ||
		    time_digits(s + 4, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		s += 6;
	} else
		return -EINVAL;
	if (*s != '\0')
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 ||
	    sec > 60 || Y < 1970)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	t -= (time_t)sign * (oh * 3600 + om * 60);
	*us = (int64_t)t * 1000000 + frac;
	return 0;
}

char *
sim_time_format(int64_t us, char out[32])
{
	struct tm tm;
	time_t	  t = (time_t)(us / 1000000);
	int	  ms = (int)((us % 1000000) / 1000);

	char   buf[96];
	size_t n;

	gmtime_r(&t, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ms);
	n = strnlen(buf, 31);
	memcpy(out, buf, n);
	out[n] = '\0';
	return out;
}
