/*
 * RSA keys on libgcrypt: a strict DER reader for PEM PKCS#8 PrivateKeyInfo
 * holding a PKCS#1 RSAPrivateKey (what Google's service-account key files
 * hold), a small DER writer for PKCS#8 and SubjectPublicKeyInfo, key
 * generation, and RSASSA-PKCS1-v1_5 SHA-256 signatures.
 *
 * libgcrypt's private key S-expression wants p < q and u = p^-1 mod q,
 * while PKCS#1 stores coefficient = q^-1 mod p with no order on p and q:
 * the reader orders the primes and computes u itself, the writer computes
 * the PKCS#1 coefficient itself (larger prime first, as OpenSSL does).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gcrypt.h>

#include "lib/crypto.h"
#include "lib/util.h"

#define RSA_BITS_MIN		2048
#define RSA_BITS_MAX		4096
#define DER_SEQUENCE		0x30
#define DER_INTEGER		0x02
#define DER_BIT_STRING		0x03
#define DER_OCTET_STRING	0x04
#define DER_NULL		0x05
#define DER_OID			0x06
#define PEM_MAX			(64 * 1024)
#define PEM_PRIV_BEGIN		"-----BEGIN PRIVATE KEY-----"
#define PEM_PRIV_END		"-----END PRIVATE KEY-----"
#define PEM_PUB_BEGIN		"-----BEGIN PUBLIC KEY-----"
#define PEM_PUB_END		"-----END PUBLIC KEY-----"

struct rsa_key {
	gcry_sexp_t	priv;
	gcry_sexp_t	pub;
	unsigned	bits;
};

/* DER encoding of OID 1.2.840.113549.1.1.1 (rsaEncryption), content only. */
static const unsigned char oid_rsa[] = {
	0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01
};

/* A read cursor over DER bytes. */
struct der {
	const unsigned char	*p;
	size_t			 len;
};

/* A growable write buffer for DER; secret content, zeroed when freed. */
struct derbuf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
	bool		 failed;
};

/*
 * LeakSanitizer hook: libgcrypt 1.10 keeps one 128 KiB block for the life
 * of the process after the first key generation (its entropy collector)
 * and LSan cannot see the pointer. Every ASan binary that generates keys
 * links this file, so the suppression lives here. Not called by our code.
 */
const char	*__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:libgcrypt.so\n";
}

/*
 * Read one DER element of the expected tag from d: definite, minimal
 * length only. On success *content covers its content and d moves past it.
 * 0 or -EINVAL with what went wrong in *why.
 */
static int
der_read(struct der *d, unsigned char tag, struct der *content,
    const char **why)
{
	size_t	len, i, nlen;

	if (d->len < 2) {
		*why = "truncated";
		return -EINVAL;
	}
	if (d->p[0] != tag) {
		*why = "unexpected element";
		return -EINVAL;
	}
	len = d->p[1];
	i = 2;
	if (len == 0x80) {
		*why = "indefinite length";
		return -EINVAL;
	}
	if (len & 0x80) {
		nlen = len & 0x7f;
		if (nlen > 3 || nlen > d->len - 2) {
			*why = nlen > 3 ? "length too large" : "truncated";
			return -EINVAL;
		}
		if (d->p[2] == 0) {
			*why = "non-minimal length";
			return -EINVAL;
		}
		len = 0;
		for (; i < 2 + nlen; i++)
			len = len << 8 | d->p[i];
		if (len < 0x80) {
			*why = "non-minimal length";
			return -EINVAL;
		}
	}
	if (len > d->len - i) {
		*why = "truncated";
		return -EINVAL;
	}
	content->p = d->p + i;
	content->len = len;
	d->p += i + len;
	d->len -= i + len;
	return 0;
}

/*
 * Read a DER INTEGER that must be non-negative and minimally encoded into
 * a new MPI. 0 or -EINVAL / -ENOMEM.
 */
static int
der_read_mpi(struct der *d, gcry_mpi_t *out, const char **why)
{
	struct der	c;
	int		rc;

	*out = NULL;
	if ((rc = der_read(d, DER_INTEGER, &c, why)) != 0)
		return rc;
	if (c.len == 0) {
		*why = "empty integer";
		return -EINVAL;
	}
	if (c.p[0] & 0x80) {
		*why = "negative integer";
		return -EINVAL;
	}
	if (c.len > 1 && c.p[0] == 0 && !(c.p[1] & 0x80)) {
		*why = "non-minimal integer";
		return -EINVAL;
	}
	if (c.len > RSA_BITS_MAX / 8 + 1) {
		*why = "integer too large";
		return -EINVAL;
	}
	/* The MPI lands in secure memory when c.p is in secure memory. */
	if (gcry_mpi_scan(out, GCRYMPI_FMT_USG, c.p, c.len, NULL) != 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Read an INTEGER that must be the small value want (a version). */
static int
der_read_version(struct der *d, unsigned want, const char **why)
{
	struct der	c;
	int		rc;

	if ((rc = der_read(d, DER_INTEGER, &c, why)) != 0)
		return rc;
	if (c.len != 1 || c.p[0] != want) {
		*why = "unsupported version";
		return -EINVAL;
	}
	return 0;
}

/* Release the MPIs of an array of n. */
static void
mpis_release(gcry_mpi_t *m, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		gcry_mpi_release(m[i]);
		m[i] = NULL;
	}
}

/*
 * Build a key from the PKCS#1 parts: order the primes for libgcrypt,
 * compute u = p^-1 mod q, check the parts agree, and self-test one
 * signature. 0 or -EINVAL with err[] set, -ENOMEM.
 */
static int
rsa_key_build(gcry_mpi_t n, gcry_mpi_t e, gcry_mpi_t d, gcry_mpi_t p1,
    gcry_mpi_t p2, gcry_mpi_t dp, gcry_mpi_t dq, gcry_mpi_t qinv,
    struct rsa_key **out, char *err, size_t errlen)
{
	struct rsa_key	*key = NULL;
	gcry_mpi_t	 p, q, u = NULL, t = NULL, one = NULL;
	unsigned char	 sigtest[] = "auditrelay rsa key self-test";
	unsigned char	*sig = NULL;
	size_t		 siglen = 0;
	unsigned	 bits;
	int		 rc;

	*out = NULL;
	bits = gcry_mpi_get_nbits(n);
	if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX) {
		util_errf(err, errlen, "RSA key is %u bits; %d to %d bits "
		    "required", bits, RSA_BITS_MIN, RSA_BITS_MAX);
		return -EINVAL;
	}
	if (gcry_mpi_cmp_ui(e, 3) < 0 || !gcry_mpi_test_bit(e, 0)) {
		util_errf(err, errlen, "RSA key has an invalid public "
		    "exponent");
		return -EINVAL;
	}
	/* libgcrypt wants p < q. */
	if (gcry_mpi_cmp(p1, p2) < 0) {
		p = p1;
		q = p2;
	} else {
		p = p2;
		q = p1;
	}
	u = gcry_mpi_snew(bits);
	t = gcry_mpi_snew(bits);
	one = gcry_mpi_set_ui(NULL, 1);
	if (u == NULL || t == NULL || one == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	/* n = p * q, and the CRT parts agree with d, p and q. */
	gcry_mpi_mul(t, p, q);
	if (gcry_mpi_cmp(t, n) != 0 || gcry_mpi_cmp(p, q) == 0)
		goto inconsistent;
	gcry_mpi_sub_ui(t, p1, 1);
	gcry_mpi_mod(t, d, t);
	if (gcry_mpi_cmp(t, dp) != 0)
		goto inconsistent;
	gcry_mpi_sub_ui(t, p2, 1);
	gcry_mpi_mod(t, d, t);
	if (gcry_mpi_cmp(t, dq) != 0)
		goto inconsistent;
	gcry_mpi_mulm(t, qinv, p2, p1);
	if (gcry_mpi_cmp(t, one) != 0)
		goto inconsistent;
	if (!gcry_mpi_invm(u, p, q))
		goto inconsistent;

	if ((key = calloc(1, sizeof(*key))) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	key->bits = bits;
	if (gcry_sexp_build(&key->priv, NULL,
	    "(private-key(rsa(n%m)(e%m)(d%m)(p%m)(q%m)(u%m)))",
	    n, e, d, p, q, u) != 0 ||
	    gcry_sexp_build(&key->pub, NULL, "(public-key(rsa(n%m)(e%m)))",
	    n, e) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_pk_testkey(key->priv) != 0)
		goto inconsistent;
	/* A key whose d does not match e signs wrongly: catch it here. */
	if ((rc = rsa_sign_sha256(key, sigtest, sizeof(sigtest), &sig,
	    &siglen)) == -ENOMEM)
		goto fail;
	if (rc != 0)		/* libgcrypt checks its own signature */
		goto inconsistent;
	if (rsa_verify_sha256(key, sigtest, sizeof(sigtest), sig,
	    siglen) != 0)
		goto inconsistent;
	free(sig);
	gcry_mpi_release(u);
	gcry_mpi_release(t);
	gcry_mpi_release(one);
	*out = key;
	return 0;
inconsistent:
	util_errf(err, errlen, "RSA key parts are inconsistent (corrupted "
	    "key)");
	rc = -EINVAL;
fail:
	free(sig);
	gcry_mpi_release(u);
	gcry_mpi_release(t);
	gcry_mpi_release(one);
	rsa_key_free(key);
	return rc;
}

/*
 * Parse DER PKCS#8 PrivateKeyInfo holding an RSA key. 0 or -EINVAL with
 * err[] set, -ENOMEM.
 */
static int
pkcs8_parse_der(const unsigned char *der, size_t len, struct rsa_key **out,
    char *err, size_t errlen)
{
	struct der	 d = { der, len }, pki, alg, oid, nul, octets, rsa, rpk;
	const char	*why = "malformed";
	gcry_mpi_t	 m[8] = { NULL };
	size_t		 i;
	int		 rc;

	*out = NULL;
	/* PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey } */
	if ((rc = der_read(&d, DER_SEQUENCE, &pki, &why)) != 0)
		goto bad;
	if (d.len != 0) {
		why = "trailing bytes after the key";
		goto bad;
	}
	if ((rc = der_read_version(&pki, 0, &why)) != 0)
		goto bad;
	if ((rc = der_read(&pki, DER_SEQUENCE, &alg, &why)) != 0)
		goto bad;
	if ((rc = der_read(&alg, DER_OID, &oid, &why)) != 0)
		goto bad;
	if (oid.len != sizeof(oid_rsa) ||
	    memcmp(oid.p, oid_rsa, sizeof(oid_rsa)) != 0) {
		util_errf(err, errlen, "not an RSA key (the PKCS#8 algorithm "
		    "is not rsaEncryption; Google service-account keys are "
		    "RSA)");
		return -EINVAL;
	}
	if ((rc = der_read(&alg, DER_NULL, &nul, &why)) != 0)
		goto bad;
	if (nul.len != 0 || alg.len != 0) {
		why = "bad algorithm parameters";
		goto bad;
	}
	if ((rc = der_read(&pki, DER_OCTET_STRING, &octets, &why)) != 0)
		goto bad;
	if (pki.len != 0) {
		why = "unexpected attributes after the private key";
		goto bad;
	}
	/* RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qinv } */
	if ((rc = der_read(&octets, DER_SEQUENCE, &rsa, &why)) != 0)
		goto bad;
	if (octets.len != 0) {
		why = "trailing bytes after the RSA key";
		goto bad;
	}
	rpk = rsa;
	if ((rc = der_read_version(&rpk, 0, &why)) != 0) {
		why = "unsupported RSAPrivateKey version (multi-prime?)";
		goto bad;
	}
	for (i = 0; i < 8; i++) {
		rc = der_read_mpi(&rpk, &m[i], &why);
		if (rc == -ENOMEM)
			goto fail;
		if (rc != 0)
			goto bad;
	}
	if (rpk.len != 0) {
		why = "trailing bytes in the RSA key";
		goto bad;
	}
	rc = rsa_key_build(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7],
	    out, err, errlen);
	goto fail;
bad:
	util_errf(err, errlen, "malformed PKCS#8 RSA private key: %s", why);
	rc = -EINVAL;
fail:
	mpis_release(m, 8);
	return rc;
}

/* Find needle in the first hlen bytes of hay, or NULL. */
static const char *
pem_find(const char *hay, size_t hlen, const char *needle)
{
	return memmem(hay, hlen, needle, strlen(needle));
}

/*
 * Parse a PEM PKCS#8 RSA private key (LF or CRLF line ends, surrounding
 * whitespace allowed). Other PEM types get a message saying what they are
 * and, for PKCS#1, how to convert. 0 or -EINVAL with err[] set, -ENOMEM.
 */
int
rsa_key_from_pem(const char *pem, size_t len, struct rsa_key **out,
    char *err, size_t errlen)
{
	const char	*p, *end, *body, *bend;
	char		*b64 = NULL;
	unsigned char	*der = NULL, *sder = NULL;
	size_t		 b64len = 0, derlen = 0, i;
	int		 rc;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((rc = crypto_init()) != 0) {
		util_errf(err, errlen, "libgcrypt initialisation failed");
		return rc;
	}
	if (pem == NULL || len == 0) {
		util_errf(err, errlen, "empty private key");
		return -EINVAL;
	}
	if (len > PEM_MAX) {
		util_errf(err, errlen, "private key too large");
		return -EINVAL;
	}
	p = pem;
	end = pem + len;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
	    *p == '\n'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if ((size_t)(end - p) < strlen(PEM_PRIV_BEGIN) ||
	    memcmp(p, PEM_PRIV_BEGIN, strlen(PEM_PRIV_BEGIN)) != 0) {
		if (pem_find(p, end - p, "-----BEGIN RSA PRIVATE KEY-----"))
			util_errf(err, errlen, "this is a PKCS#1 RSA key "
			    "(BEGIN RSA PRIVATE KEY); a PKCS#8 key is needed "
			    "(BEGIN PRIVATE KEY): convert it with \"openssl "
			    "pkcs8 -topk8 -nocrypt -in key.pem -out "
			    "key-pkcs8.pem\"");
		else if (pem_find(p, end - p, "-----BEGIN EC PRIVATE KEY"))
			util_errf(err, errlen, "not an RSA key (this is an "
			    "EC key)");
		else if (pem_find(p, end - p,
		    "-----BEGIN ENCRYPTED PRIVATE KEY"))
			util_errf(err, errlen, "the private key is encrypted; "
			    "decrypt it first (\"openssl pkey -in key.pem "
			    "-out plain.pem\")");
		else
			util_errf(err, errlen, "not a PKCS#8 PEM private key "
			    "(expected -----BEGIN PRIVATE KEY-----)");
		return -EINVAL;
	}
	body = p + strlen(PEM_PRIV_BEGIN);
	if (pem_find(body, end - body, "\\n") != NULL) {
		util_errf(err, errlen, "malformed PEM private key: it holds "
		    "literal \\n sequences (decode the JSON string first)");
		return -EINVAL;
	}
	if ((size_t)(end - body) < strlen(PEM_PRIV_END) ||
	    memcmp(end - strlen(PEM_PRIV_END), PEM_PRIV_END,
	    strlen(PEM_PRIV_END)) != 0) {
		util_errf(err, errlen, "truncated PEM private key (no "
		    "-----END PRIVATE KEY----- line)");
		return -EINVAL;
	}
	bend = end - strlen(PEM_PRIV_END);
	if (body >= end || (*body != '\n' && *body != '\r') ||
	    (bend[-1] != '\n')) {
		util_errf(err, errlen, "malformed PEM private key (BEGIN and "
		    "END must be on lines of their own)");
		return -EINVAL;
	}
	if ((b64 = malloc(bend - body + 1)) == NULL)
		return -ENOMEM;
	for (i = 0; body + i < bend; i++) {
		char	c = body[i];

		if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
			continue;
		if (c == '-' || c == '_') {
			util_errf(err, errlen, "malformed PEM private key "
			    "(unexpected characters or more than one PEM "
			    "block)");
			rc = -EINVAL;
			goto fail;
		}
		b64[b64len++] = c;
	}
	if ((rc = b64_decode(b64, b64len, &der, &derlen)) != 0) {
		if (rc == -EINVAL)
			util_errf(err, errlen, "malformed PEM private key "
			    "(bad base64)");
		goto fail;
	}
	/* Parse from secure memory so that the MPIs are secure too. */
	if ((sder = gcry_malloc_secure(derlen + 1)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	memcpy(sder, der, derlen);
	rc = pkcs8_parse_der(sder, derlen, out, err, errlen);
fail:
	crypto_free_secret(b64, bend - body + 1);
	crypto_free_secret(der, derlen);
	if (sder != NULL) {
		explicit_bzero(sder, derlen + 1);
		gcry_free(sder);
	}
	return rc;
}

/* Make room for n more bytes in b; records failure instead of returning. */
static bool
derbuf_grow(struct derbuf *b, size_t n)
{
	unsigned char	*np;
	size_t		 ncap;

	if (b->failed)
		return false;
	if (b->len + n <= b->cap)
		return true;
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + n)
		ncap *= 2;
	if ((np = malloc(ncap)) == NULL) {
		b->failed = true;
		return false;
	}
	if (b->len > 0)
		memcpy(np, b->p, b->len);
	if (b->p != NULL)
		crypto_free_secret(b->p, b->cap);
	b->p = np;
	b->cap = ncap;
	return true;
}

/* Append n bytes to b. */
static void
derbuf_put(struct derbuf *b, const void *data, size_t n)
{
	if (!derbuf_grow(b, n))
		return;
	if (n > 0)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* Free b's storage, zeroing it. */
static void
derbuf_clear(struct derbuf *b)
{
	crypto_free_secret(b->p, b->cap);
	memset(b, 0, sizeof(*b));
}

/* Append a DER tag and definite length header. */
static void
der_put_header(struct derbuf *b, unsigned char tag, size_t len)
{
	unsigned char	h[6];
	size_t		n = 0;

	h[n++] = tag;
	if (len < 0x80)
		h[n++] = (unsigned char)len;
	else if (len < 0x100) {
		h[n++] = 0x81;
		h[n++] = (unsigned char)len;
	} else if (len < 0x10000) {
		h[n++] = 0x82;
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	} else {
		h[n++] = 0x83;
		h[n++] = (unsigned char)(len >> 16);
		h[n++] = (unsigned char)(len >> 8);
		h[n++] = (unsigned char)len;
	}
	derbuf_put(b, h, n);
}

/* Append element tag wrapping the whole of inner. */
static void
der_put_wrapped(struct derbuf *b, unsigned char tag, const struct derbuf *in)
{
	if (in->failed) {
		b->failed = true;
		return;
	}
	der_put_header(b, tag, in->len);
	derbuf_put(b, in->p, in->len);
}

/* Append a non-negative MPI as a DER INTEGER. */
static void
der_put_mpi(struct derbuf *b, gcry_mpi_t m)
{
	unsigned char	*raw = NULL;
	size_t		 n = 0;

	if (gcry_mpi_cmp_ui(m, 0) == 0) {
		der_put_header(b, DER_INTEGER, 1);
		derbuf_put(b, "", 1);
		return;
	}
	/* FMT_STD is two's complement, minimal: DER's INTEGER content. */
	if (gcry_mpi_aprint(GCRYMPI_FMT_STD, &raw, &n, m) != 0) {
		b->failed = true;
		return;
	}
	der_put_header(b, DER_INTEGER, n);
	derbuf_put(b, raw, n);
	explicit_bzero(raw, n);
	gcry_free(raw);
}

/* Append AlgorithmIdentifier { rsaEncryption, NULL }. */
static void
der_put_rsa_alg(struct derbuf *b)
{
	static const unsigned char	alg[] = {
		DER_SEQUENCE, 13, DER_OID, 9,
		0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
		DER_NULL, 0
	};

	derbuf_put(b, alg, sizeof(alg));
}

/*
 * Wrap der in PEM armour of the given label, 64 base64 chars a line.
 * Returns malloc'd text or NULL.
 */
static char *
pem_wrap(const unsigned char *der, size_t len, const char *begin,
    const char *endl)
{
	char	*b64, *out, *o;
	size_t	 blen, i, n;

	if ((b64 = b64_encode(der, len, false, true)) == NULL)
		return NULL;
	blen = strlen(b64);
	n = strlen(begin) + 1 + blen + blen / 64 + 1 + strlen(endl) + 2;
	if ((out = malloc(n)) == NULL) {
		crypto_free_secret(b64, blen);
		return NULL;
	}
	o = out;
	memcpy(o, begin, strlen(begin));
	o += strlen(begin);
	*o++ = '\n';
	for (i = 0; i < blen; i += 64) {
		size_t	l = blen - i < 64 ? blen - i : 64;

		memcpy(o, b64 + i, l);
		o += l;
		*o++ = '\n';
	}
	memcpy(o, endl, strlen(endl));
	o += strlen(endl);
	*o++ = '\n';
	*o = '\0';
	crypto_free_secret(b64, blen);
	return out;
}

/*
 * PKCS#8 PEM of the private key (PKCS#1 inside, prime1 > prime2, the
 * coefficient prime2^-1 mod prime1). malloc'd, NULL on failure. Free it with
 * crypto_free_secret(pem, strlen(pem)).
 */
char *
rsa_key_to_pem(const struct rsa_key *key)
{
	gcry_mpi_t	 n = NULL, e = NULL, d = NULL, p = NULL, q = NULL;
	gcry_mpi_t	 u = NULL, dp = NULL, dq = NULL, t;
	struct derbuf	 rsa = { 0 }, octets = { 0 }, pki = { 0 }, out = { 0 };
	char		*pem = NULL;

	if (key == NULL)
		return NULL;
	if (gcry_sexp_extract_param(key->priv, NULL, "nedpq", &n, &e, &d,
	    &p, &q, NULL) != 0)
		return NULL;
	/* PKCS#1 prime1 is the larger prime (as OpenSSL writes it). */
	if (gcry_mpi_cmp(p, q) < 0) {
		t = p;
		p = q;
		q = t;
	}
	dp = gcry_mpi_snew(key->bits);
	dq = gcry_mpi_snew(key->bits);
	u = gcry_mpi_snew(key->bits);
	if (dp == NULL || dq == NULL || u == NULL)
		goto fail;
	gcry_mpi_sub_ui(dp, p, 1);
	gcry_mpi_mod(dp, d, dp);
	gcry_mpi_sub_ui(dq, q, 1);
	gcry_mpi_mod(dq, d, dq);
	if (!gcry_mpi_invm(u, q, p))
		goto fail;

	derbuf_put(&rsa, "\x02\x01\x00", 3);
	der_put_mpi(&rsa, n);
	der_put_mpi(&rsa, e);
	der_put_mpi(&rsa, d);
	der_put_mpi(&rsa, p);
	der_put_mpi(&rsa, q);
	der_put_mpi(&rsa, dp);
	der_put_mpi(&rsa, dq);
	der_put_mpi(&rsa, u);
	der_put_wrapped(&octets, DER_SEQUENCE, &rsa);
	derbuf_put(&pki, "\x02\x01\x00", 3);
	der_put_rsa_alg(&pki);
	der_put_wrapped(&pki, DER_OCTET_STRING, &octets);
	der_put_wrapped(&out, DER_SEQUENCE, &pki);
	if (out.failed)
		goto fail;
	pem = pem_wrap(out.p, out.len, PEM_PRIV_BEGIN, PEM_PRIV_END);
fail:
	derbuf_clear(&rsa);
	derbuf_clear(&octets);
	derbuf_clear(&pki);
	derbuf_clear(&out);
	gcry_mpi_release(n);
	gcry_mpi_release(e);
	gcry_mpi_release(d);
	gcry_mpi_release(p);
	gcry_mpi_release(q);
	gcry_mpi_release(u);
	gcry_mpi_release(dp);
	gcry_mpi_release(dq);
	return pem;
}

/* SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"), malloc'd; NULL on failure. */
char *
rsa_key_public_pem(const struct rsa_key *key)
{
	gcry_mpi_t	 n = NULL, e = NULL;
	struct derbuf	 rsa = { 0 }, bits = { 0 }, spki = { 0 }, out = { 0 };
	char		*pem = NULL;

	if (key == NULL)
		return NULL;
	if (gcry_sexp_extract_param(key->pub, NULL, "ne", &n, &e, NULL) != 0)
		return NULL;
	der_put_mpi(&rsa, n);
	der_put_mpi(&rsa, e);
	derbuf_put(&bits, "", 1);	/* no unused bits */
	der_put_wrapped(&bits, DER_SEQUENCE, &rsa);
	der_put_rsa_alg(&spki);
	der_put_wrapped(&spki, DER_BIT_STRING, &bits);
	der_put_wrapped(&out, DER_SEQUENCE, &spki);
	if (!out.failed)
		pem = pem_wrap(out.p, out.len, PEM_PUB_BEGIN, PEM_PUB_END);
	derbuf_clear(&rsa);
	derbuf_clear(&bits);
	derbuf_clear(&spki);
	derbuf_clear(&out);
	gcry_mpi_release(n);
	gcry_mpi_release(e);
	return pem;
}

/*
 * Generate an RSA key of bits with e = 65537, without a size policy.
 * 0 or -errno.
 */
int
rsa_key_generate_unchecked(unsigned bits, struct rsa_key **out)
{
	struct rsa_key	*key = NULL;
	gcry_sexp_t	 parms = NULL, kp = NULL;
	int		 rc;

	*out = NULL;
	if ((rc = crypto_init()) != 0)
		return rc;
	if (bits < 512 || bits > 16384)
		return -EINVAL;
	if (gcry_sexp_build(&parms, NULL,
	    "(genkey(rsa(nbits %d)(rsa-use-e %d)))", (int)bits, 65537) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_pk_genkey(&kp, parms) != 0) {
		rc = -EIO;
		goto fail;
	}
	if ((key = calloc(1, sizeof(*key))) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	key->priv = gcry_sexp_find_token(kp, "private-key", 0);
	key->pub = gcry_sexp_find_token(kp, "public-key", 0);
	if (key->priv == NULL || key->pub == NULL) {
		rc = -EIO;
		goto fail;
	}
	key->bits = gcry_pk_get_nbits(key->pub);
	gcry_sexp_release(parms);
	gcry_sexp_release(kp);
	*out = key;
	return 0;
fail:
	rsa_key_free(key);
	gcry_sexp_release(parms);
	gcry_sexp_release(kp);
	return rc;
}

/* Generate an RSA key of bits (2048..4096), e = 65537. 0 or -errno. */
int
rsa_key_generate(unsigned bits, struct rsa_key **out)
{
	*out = NULL;
	if (bits < RSA_BITS_MIN || bits > RSA_BITS_MAX)
		return -EINVAL;
	return rsa_key_generate_unchecked(bits, out);
}

/* Modulus size in bits. */
unsigned
rsa_key_bits(const struct rsa_key *key)
{
	return key != NULL ? key->bits : 0;
}

/*
 * RSASSA-PKCS1-v1_5 with SHA-256 of msg. *sig is malloc'd and exactly the
 * modulus length. 0 or -errno.
 */
int
rsa_sign_sha256(const struct rsa_key *key, const void *msg, size_t len,
    unsigned char **sig, size_t *siglen)
{
	gcry_sexp_t	 data = NULL, s = NULL;
	gcry_mpi_t	 m = NULL;
	unsigned char	 md[32], *buf = NULL;
	size_t		 k, n = 0;
	int		 rc;

	*sig = NULL;
	*siglen = 0;
	if (key == NULL)
		return -EINVAL;
	if ((rc = crypto_init()) != 0)
		return rc;
	k = (key->bits + 7) / 8;
	gcry_md_hash_buffer(GCRY_MD_SHA256, md, msg, len);
	if (gcry_sexp_build(&data, NULL, "(data(flags pkcs1)(hash sha256 %b))",
	    (int)sizeof(md), md) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_pk_sign(&s, data, key->priv) != 0) {
		rc = -EIO;
		goto fail;
	}
	if (gcry_sexp_extract_param(s, "sig-val!rsa", "s", &m, NULL) != 0) {
		rc = -EIO;
		goto fail;
	}
	if ((buf = calloc(1, k)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_mpi_print(GCRYMPI_FMT_USG, NULL, 0, &n, m) != 0 || n > k ||
	    gcry_mpi_print(GCRYMPI_FMT_USG, buf + (k - n), n, NULL, m) != 0) {
		rc = -EIO;
		goto fail;
	}
	*sig = buf;
	*siglen = k;
	buf = NULL;
	rc = 0;
fail:
	free(buf);
	gcry_mpi_release(m);
	gcry_sexp_release(data);
	gcry_sexp_release(s);
	return rc;
}

/*
 * Verify an RSASSA-PKCS1-v1_5 SHA-256 signature of msg with the key's
 * public part. 0 valid, -EBADMSG invalid, -errno else.
 */
int
rsa_verify_sha256(const struct rsa_key *key, const void *msg, size_t len,
    const void *sig, size_t siglen)
{
	gcry_sexp_t	 data = NULL, s = NULL;
	gcry_mpi_t	 m = NULL;
	unsigned char	 md[32];
	gcry_error_t	 ge;
	int		 rc;

	if (key == NULL || (sig == NULL && siglen > 0))
		return -EINVAL;
	if ((rc = crypto_init()) != 0)
		return rc;
	if (siglen != (key->bits + 7) / 8)
		return -EBADMSG;
	gcry_md_hash_buffer(GCRY_MD_SHA256, md, msg, len);
	if (gcry_mpi_scan(&m, GCRYMPI_FMT_USG, sig, siglen, NULL) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_sexp_build(&data, NULL, "(data(flags pkcs1)(hash sha256 %b))",
	    (int)sizeof(md), md) != 0 ||
	    gcry_sexp_build(&s, NULL, "(sig-val(rsa(s%m)))", m) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	ge = gcry_pk_verify(s, data, key->pub);
	if (ge == 0)
		rc = 0;
	else if (gcry_err_code(ge) == GPG_ERR_ENOMEM)
		rc = -ENOMEM;
	else
		rc = -EBADMSG;
fail:
	gcry_mpi_release(m);
	gcry_sexp_release(data);
	gcry_sexp_release(s);
	return rc;
}

/* Free a key (its secret parts are in libgcrypt's secure memory). */
void
rsa_key_free(struct rsa_key *key)
{
	if (key == NULL)
		return;
	gcry_sexp_release(key->priv);
	gcry_sexp_release(key->pub);
	free(key);
}
