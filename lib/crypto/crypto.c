/*
 * Cryptography basics on libgcrypt: initialisation, random bytes,
 * constant-time comparison, hashes, HMAC, base64, the master key file and
 * AES-256-GCM sealing. RSA keys live in rsakey.c, JWTs in jwt.c, Standard
 * Webhooks signatures in webhook.c.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gcrypt.h>

#include "lib/crypto/crypto.h"

#define CRYPTO_SECMEM_SIZE (1024 * 1024)
#define CRYPTO_GCRYPT_MIN  "1.8.0"
#define CRYPTO_KEYFILE_MAX 4096

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int	      crypto_init_rc = -EIO;

static const char b64_std
    [] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url
    [] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * The one-time body of crypto_init(): check the library version, set up
 * secure memory and declare initialisation finished. Leaves the result in
 * crypto_init_rc. If something else in the process already initialised
 * libgcrypt, only the version is checked.
 */
static void
crypto_init_once(void)
{
	if (gcry_check_version(CRYPTO_GCRYPT_MIN) == NULL) {
		crypto_init_rc = -ENOTSUP;
		return;
	}
	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
		/*
		 * Without the memlock rlimit for it the pool is not locked
		 * and libgcrypt would print "using insecure memory" on
		 * stderr: lib/ code does not print, so silence it.
		 */
		gcry_control(GCRYCTL_DISABLE_SECMEM_WARN);
		(void)gcry_control(GCRYCTL_INIT_SECMEM, CRYPTO_SECMEM_SIZE, 0);
		gcry_control(GCRYCTL_AUTO_EXPAND_SECMEM, CRYPTO_SECMEM_SIZE, 0);
		gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	}
	crypto_init_rc = 0;
}

/*
 * Initialise libgcrypt once per process; safe to call again and from any
 * thread. 0 or -errno (-ENOTSUP for a too old libgcrypt).
 */
int
crypto_init(void)
{
	if (pthread_once(&crypto_once, crypto_init_once) != 0)
		return -EIO;
	return crypto_init_rc;
}

/* Fill buf with len bytes from libgcrypt's strong generator. */
void
crypto_random(void *buf, size_t len)
{
	(void)crypto_init();
	gcry_randomize(buf, len, GCRY_STRONG_RANDOM);
}

/*
 * Compare two buffers in time that depends only on their lengths. true when
 * the lengths and every byte are equal.
 */
bool
crypto_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile unsigned char *pa = a, *pb = b;
	volatile unsigned char	      diff = 0;
	size_t			      i;

	if (alen != blen)
		return false;
	for (i = 0; i < alen; i++)
		diff |= pa[i] ^ pb[i];
	return diff == 0;
}

/* Raw SHA-256 of data into out[32]. */
void
crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
	(void)crypto_init();
	gcry_md_hash_buffer(GCRY_MD_SHA256, out, data, len);
}

/* Lower-case hex SHA-256 of data into out[65], NUL-terminated. */
void
crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t		  md[32];
	size_t		  i;

	crypto_sha256(data, len, md);
	for (i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[64] = '\0';
}

/*
 * HMAC-SHA256 of data under key into out[32]. On an internal libgcrypt
 * failure (out of memory) out is zeroed, which never matches a real MAC
 * when compared by a verifier that recomputes it.
 */
void
crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
    uint8_t out[32])
{
	gcry_buffer_t iov[2];

	(void)crypto_init();
	memset(iov, 0, sizeof(iov));
	iov[0].data = (void *)(uintptr_t)key;
	iov[0].len = keylen;
	iov[1].data = (void *)(uintptr_t)data;
	iov[1].len = len;
	if (gcry_md_hash_buffers(GCRY_MD_SHA256, GCRY_MD_FLAG_HMAC, out, iov,
		2) != 0)
		memset(out, 0, 32);
}

/*
 * Base64-encode len bytes of data. url selects the URL-safe alphabet, pad
 * the trailing '='. Returns a malloc'd NUL-terminated string or NULL.
 */
char *
b64_encode(const void *data, size_t len, bool url, bool pad)
{
	const unsigned char *in = data;
	const char	    *alpha = url ? b64_url : b64_std;
	char		    *out, *o;
	size_t		     i, rem;
	uint32_t	     v;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*o++ = alpha[v >> 18 & 0x3f];
		*o++ = alpha[v >> 12 & 0x3f];
		*o++ = alpha[v >> 6 & 0x3f];
		*o++ = alpha[v & 0x3f];
	}
	rem = len - i;
	if (rem > 0) {
		v = (uint32_t)in[i] << 16;
		if (rem == 2)
			v |= (uint32_t)in[i + 1] << 8;
		*o++ = alpha[v >> 18 & 0x3f];
		*o++ = alpha[v >> 12 & 0x3f];
		if (rem == 2)
			*o++ = alpha[v >> 6 & 0x3f];
		if (pad) {
			if (rem == 1)
				*o++ = '=';
			*o++ = '=';
		}
	}
	*o = '\0';
	return out;
}

/* The 6-bit value of base64 character c (either alphabet), or -1. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/*
 * Decode slen characters of base64 (standard or URL-safe alphabet, padded
 * or not). Whitespace, misplaced or excess '=', an impossible length and
 * non-zero unused trailing bits are rejected, so each byte string has
 * exactly one accepted encoding per alphabet and padding choice.
 * 0, -EINVAL or -ENOMEM; *out malloc'd and NUL-terminated.
 */
int
b64_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
	const unsigned char *in = (const unsigned char *)s;
	unsigned char	    *buf = NULL;
	size_t		     n, npad = 0, i, o = 0;
	uint32_t	     acc = 0;
	int		     v, bits = 0;

	*out = NULL;
	*outlen = 0;
	if (s == NULL && slen > 0)
		return -EINVAL;
	n = slen;
	while (n > 0 && in[n - 1] == '=' && npad < 2) {
		n--;
		npad++;
	}
	if (npad > 0 && slen % 4 != 0)
		return -EINVAL;
	if (n % 4 == 1)
		return -EINVAL;
	if (npad > 0 && (4 - n % 4) % 4 != npad)
		return -EINVAL;
	if ((buf = malloc(n / 4 * 3 + 3 + 1)) == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if ((v = b64_value(in[i])) < 0)
			goto fail;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) /* non-canonical: unused bits set */
		goto fail;
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
fail:
	explicit_bzero(buf, n / 4 * 3 + 3 + 1);
	free(buf);
	return -EINVAL;
}

/* Zero len bytes at p, then free p. NULL is a no-op. */
void
crypto_free_secret(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

/*
 * Load the master key from path: 32 raw bytes, or base64 of 32 bytes
 * (surrounding whitespace allowed). The file must be a regular file and
 * have no permission bits for others. keyid gets the first 16 hex chars of
 * SHA-256(key). 0 or -errno with err[] set; never key material in err[].
 */
int
crypto_master_key_load(const char *path, uint8_t key[CRYPTO_KEY_LEN],
    char keyid[CRYPTO_KEYID_LEN + 1], char *err, size_t errlen)
{
	unsigned char  buf[CRYPTO_KEYFILE_MAX + 1];
	unsigned char *dec = NULL;
	size_t	       len = 0, declen = 0, start, end;
	struct stat    st;
	ssize_t	       r;
	char	       hex[65];
	int	       fd = -1, rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL || *path == '\0') {
		rc = -EINVAL;
		snprintf(err, errlen, "no master key file configured");
		goto fail;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		rc = -errno;
		snprintf(err, errlen, "master key file %s: %s", path,
		    strerror(-rc));
		goto fail;
	}
	if (fstat(fd, &st) == -1) {
		rc = -errno;
		snprintf(err, errlen, "master key file %s: %s", path,
		    strerror(-rc));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen,
		    "master key file %s is not a regular "
		    "file",
		    path);
		goto fail;
	}
	if (st.st_mode & 007) {
		rc = -EPERM;
		snprintf(err, errlen,
		    "master key file %s has mode %04o, "
		    "accessible by others; refusing it (run chmod 0640 %s)",
		    path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	while (len < sizeof(buf)) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			rc = -errno;
			snprintf(err, errlen, "master key file %s: %s", path,
			    strerror(-rc));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len == CRYPTO_KEY_LEN) {
		memcpy(key, buf, CRYPTO_KEY_LEN);
	} else {
		start = 0;
		end = len;
		while (start < end && strchr(" \t\r\n", buf[start]) != NULL &&
		    buf[start] != '\0')
			start++;
		while (end > start && strchr(" \t\r\n", buf[end - 1]) != NULL &&
		    buf[end - 1] != '\0')
			end--;
		if (len > CRYPTO_KEYFILE_MAX ||
		    b64_decode((const char *)buf + start, end - start, &dec,
			&declen) != 0 ||
		    declen != CRYPTO_KEY_LEN) {
			rc = -EINVAL;
			snprintf(err, errlen,
			    "master key file %s must hold "
			    "%d raw bytes or their base64 (e.g. from "
			    "\"openssl rand -base64 %d\")",
			    path, CRYPTO_KEY_LEN, CRYPTO_KEY_LEN);
			goto fail;
		}
		memcpy(key, dec, CRYPTO_KEY_LEN);
	}
	crypto_sha256_hex(key, CRYPTO_KEY_LEN, hex);
	memcpy(keyid, hex, CRYPTO_KEYID_LEN);
	keyid[CRYPTO_KEYID_LEN] = '\0';
	rc = 0;
fail:
	if (fd != -1)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	crypto_free_secret(dec, declen);
	return rc;
}

/*
 * Open an AES-256-GCM handle keyed with key and the given nonce.
 * 0 or -errno.
 */
static int
aead_cipher_open(gcry_cipher_hd_t *hd, const uint8_t key[CRYPTO_KEY_LEN],
    const uint8_t nonce[CRYPTO_NONCE_LEN], const void *aad, size_t aadlen)
{
	int rc;

	*hd = NULL;
	if ((rc = crypto_init()) != 0)
		return rc;
	if (gcry_cipher_open(hd, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM,
		GCRY_CIPHER_SECURE) != 0) {
		*hd = NULL;
		return -ENOMEM;
	}
	if (gcry_cipher_setkey(*hd, key, CRYPTO_KEY_LEN) != 0 ||
	    gcry_cipher_setiv(*hd, nonce, CRYPTO_NONCE_LEN) != 0 ||
	    (aadlen > 0 && gcry_cipher_authenticate(*hd, aad, aadlen) != 0)) {
		gcry_cipher_close(*hd);
		*hd = NULL;
		return -EINVAL;
	}
	return 0;
}

/*
 * Seal pt under key with AES-256-GCM and a fresh random nonce (written to
 * nonce[]); aad is authenticated, not encrypted. *out gets ciphertext||tag
 * (ptlen + 16 bytes, malloc'd). 0 or -errno.
 */
int
aead_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
    const void *pt, size_t ptlen, uint8_t nonce[CRYPTO_NONCE_LEN],
    unsigned char **out, size_t *outlen)
{
	gcry_cipher_hd_t hd = NULL;
	unsigned char	*buf = NULL;
	int		 rc;

	*out = NULL;
	*outlen = 0;
	if (ptlen > SIZE_MAX - CRYPTO_TAG_LEN)
		return -EINVAL;
	crypto_random(nonce, CRYPTO_NONCE_LEN);
	if ((rc = aead_cipher_open(&hd, key, nonce, aad, aadlen)) != 0)
		goto fail;
	if ((buf = malloc(ptlen + CRYPTO_TAG_LEN)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_cipher_final(hd) != 0 ||
	    gcry_cipher_encrypt(hd, buf, ptlen, pt, ptlen) != 0 ||
	    gcry_cipher_gettag(hd, buf + ptlen, CRYPTO_TAG_LEN) != 0) {
		rc = -EIO;
		goto fail;
	}
	gcry_cipher_close(hd);
	*out = buf;
	*outlen = ptlen + CRYPTO_TAG_LEN;
	return 0;
fail:
	if (hd != NULL)
		gcry_cipher_close(hd);
	free(buf);
	return rc;
}

/*
 * Open ciphertext||tag sealed by aead_seal(). On success *out is the
 * plaintext (malloc'd, *outlen bytes, plus a NUL not counted; free it with
 * crypto_free_secret(*out, *outlen + 1)). -EBADMSG when the tag does not
 * match (wrong key, AAD, nonce or tampered data), -errno else.
 */
int
aead_open(const uint8_t key[CRYPTO_KEY_LEN], const void *aad, size_t aadlen,
    const uint8_t nonce[CRYPTO_NONCE_LEN], const void *ct, size_t ctlen,
    unsigned char **out, size_t *outlen)
{
	gcry_cipher_hd_t     hd = NULL;
	const unsigned char *c = ct;
	unsigned char	    *buf = NULL;
	size_t		     ptlen = 0;
	int		     rc;

	*out = NULL;
	*outlen = 0;
	if (ctlen < CRYPTO_TAG_LEN)
		return -EBADMSG;
	ptlen = ctlen - CRYPTO_TAG_LEN;
	if ((rc = aead_cipher_open(&hd, key, nonce, aad, aadlen)) != 0)
		goto fail;
	if ((buf = malloc(ptlen + 1)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (gcry_cipher_final(hd) != 0 ||
	    gcry_cipher_decrypt(hd, buf, ptlen, c, ptlen) != 0) {
		rc = -EIO;
		goto fail;
	}
	if (gcry_cipher_checktag(hd, c + ptlen, CRYPTO_TAG_LEN) != 0) {
		rc = -EBADMSG;
		goto fail;
	}
	gcry_cipher_close(hd);
	buf[ptlen] = '\0';
	*out = buf;
	*outlen = ptlen;
	return 0;
fail:
	if (hd != NULL)
		gcry_cipher_close(hd);
	crypto_free_secret(buf, buf != NULL ? ptlen + 1 : 0);
	return rc;
}

/*
 * The AAD of a stored secret: "ar2" US source id US field US version
 * (US = 0x1f), so that a blob cannot be moved to another source, another
 * field, or rolled back to an older credentials version. Its length, or
 * 0 when it does not fit.
 */
static size_t
creds_aad(char *buf, size_t len, const char *id, const char *field,
    int64_t version)
{
	int n;

	n = snprintf(buf, len, "ar2\x1f%s\x1f%s\x1f%lld", id, field,
	    (long long)version);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

int
creds_seal(const uint8_t key[CRYPTO_KEY_LEN], const char *id, const char *field,
    int64_t version, const void *pt, size_t ptlen,
    uint8_t nonce[CRYPTO_NONCE_LEN], unsigned char **out, size_t *outlen)
{
	char   aad[512];
	size_t n = creds_aad(aad, sizeof(aad), id, field, version);

	*out = NULL;
	*outlen = 0;
	if (n == 0)
		return -EINVAL;
	return aead_seal(key, aad, n, pt, ptlen, nonce, out, outlen);
}

int
creds_open(const uint8_t key[CRYPTO_KEY_LEN], const char *id, const char *field,
    int64_t version, const uint8_t nonce[CRYPTO_NONCE_LEN], const void *ct,
    size_t ctlen, unsigned char **out, size_t *outlen, bool *legacy)
{
	char   aad[512];
	size_t n = creds_aad(aad, sizeof(aad), id, field, version);
	int    rc;

	if (legacy != NULL)
		*legacy = false;
	if (n == 0)
		return -EINVAL;
	rc = aead_open(key, aad, n, nonce, ct, ctlen, out, outlen);
	if (rc != -EBADMSG)
		return rc;
	/* A blob sealed before the AAD named the field: the source id. */
	rc = aead_open(key, id, strlen(id), nonce, ct, ctlen, out, outlen);
	if (rc == 0 && legacy != NULL)
		*legacy = true;
	return rc;
}
