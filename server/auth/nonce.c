/* Stateless digest nonces (RFC 7616 §3.3, §5.4).
 *
 *   nonce = base64url(ts || tag)          32 characters, no padding
 *   ts    = issue time, 8 bytes big endian (seconds since the epoch)
 *   tag   = HMAC-SHA256(key, ts || realm), first 16 bytes
 *
 * The server keeps no table of issued nonces: the tag proves that we (or
 * a node with the same secret) issued the nonce for this realm, and ts
 * says how old it is, which is what stale=true needs (§3.3).  The price
 * is that a nonce can be replayed until it goes stale, so the ttl should
 * stay short; §5.4 accepts that trade-off for a timestamp nonce.
 *
 * The key lives in this file only.  Not thread-safe: the server calls
 * auth_nonce_init once at start and everything else from the loop
 * thread. */
#include "server/auth/auth.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define KEY_LEN 32 /* a full SHA-256 block's worth of key is plenty */
#define TS_LEN 8
/* 128 bits of tag: forging one means guessing it online, one request per
 * guess, within the nonce's lifetime. */
#define TAG_LEN 16
#define RAW_LEN (TS_LEN + TAG_LEN) /* 24 bytes = 32 base64 chars exactly */

static unsigned char nonce_key[KEY_LEN];
static bool nonce_ready;

int auth_nonce_init(const char *secret_or_null)
{
	unsigned char k[KEY_LEN];
	int err = 0;

	if (secret_or_null) {
		/* An empty secret is a configuration mistake, not a key. */
		if (secret_or_null[0] == '\0')
			return -EINVAL;
		/* SHA-256 turns a passphrase of any length into a key of
		 * fixed size, the same on every node given the same text. */
		if (EVP_Digest(secret_or_null, strlen(secret_or_null), k, NULL, EVP_sha256(),
			       NULL) != 1) {
			err = -EIO;
			goto out;
		}
	} else if (RAND_bytes(k, sizeof k) != 1) {
		err = -EIO;
		goto out;
	}
	memcpy(nonce_key, k, sizeof k);
	nonce_ready = true;
out:
	OPENSSL_cleanse(k, sizeof k);
	return err;
}

/* A server that forgot auth_nonce_init still gets an unguessable key
 * rather than an all-zero one. */
static bool key_ready(void)
{
	return nonce_ready || auth_nonce_init(NULL) == 0;
}

/* tag = HMAC-SHA256(key, ts || realm)[0..TAG_LEN).  ts has a fixed size,
 * so the concatenation is unambiguous.  Returns 0 or -EINVAL (realm too
 * long for the stack buffer, or the HMAC failed). */
static int nonce_tag(const unsigned char ts[TS_LEN], const char *realm,
		     unsigned char tag[TAG_LEN])
{
	unsigned char msg[TS_LEN + AUTH_FIELD_MAX];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t rlen = strnlen(realm, AUTH_FIELD_MAX);

	/* Parsed credentials hold at most AUTH_FIELD_MAX - 1 realm bytes, so
	 * a longer realm could never be checked anyway. */
	if (rlen >= AUTH_FIELD_MAX)
		return -EINVAL;
	memcpy(msg, ts, TS_LEN);
	memcpy(msg + TS_LEN, realm, rlen);
	if (!HMAC(EVP_sha256(), nonce_key, KEY_LEN, msg, TS_LEN + rlen, md, &mdlen) ||
	    mdlen < TAG_LEN)
		return -EINVAL;
	memcpy(tag, md, TAG_LEN);
	OPENSSL_cleanse(md, sizeof md);
	return 0;
}

/* base64url (RFC 4648 §5), chosen so the nonce needs no escaping in a
 * quoted-string or a URI. */
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* RAW_LEN is a multiple of 3, so there is never a partial group and
 * never padding. */
static void b64url_encode(const unsigned char in[RAW_LEN], char out[AUTH_NONCE_LEN + 1])
{
	size_t o = 0;

	for (size_t i = 0; i < RAW_LEN; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64url[(v >> 18) & 0x3f];
		out[o++] = b64url[(v >> 12) & 0x3f];
		out[o++] = b64url[(v >> 6) & 0x3f];
		out[o++] = b64url[v & 0x3f];
	}
	out[o] = '\0';
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes exactly AUTH_NONCE_LEN characters; 0 or -EINVAL. */
static int b64url_decode(const char *in, unsigned char out[RAW_LEN])
{
	size_t o = 0;

	for (size_t i = 0; i < AUTH_NONCE_LEN; i += 4) {
		uint32_t v = 0;

		for (size_t j = 0; j < 4; j++) {
			int d = b64url_value(in[i + j]);

			if (d < 0)
				return -EINVAL;
			v = v << 6 | (uint32_t)d;
		}
		out[o++] = (unsigned char)(v >> 16);
		out[o++] = (unsigned char)(v >> 8);
		out[o++] = (unsigned char)v;
	}
	return 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = TS_LEN - 1; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < TS_LEN; i++)
		v = v << 8 | p[i];
	return v;
}

/* The two's complement reading of u, without the implementation-defined
 * conversion of an out-of-range value to a signed type. */
static int64_t u64_to_i64(uint64_t u)
{
	if (u <= (uint64_t)INT64_MAX)
		return (int64_t)u;
	return -(int64_t)(~u) - 1;
}

void auth_nonce_make(const char *realm, time_t now, char *out, size_t outlen)
{
	unsigned char raw[RAW_LEN];

	if (!out || outlen == 0)
		return;
	out[0] = '\0';
	if (!realm || outlen < AUTH_NONCE_LEN + 1 || !key_ready())
		return;
	put_be64(raw, (uint64_t)(int64_t)now);
	if (nonce_tag(raw, realm, raw + TS_LEN) != 0)
		return;
	b64url_encode(raw, out);
}

int auth_nonce_check(const char *nonce, const char *realm, time_t now, unsigned ttl_s)
{
	unsigned char raw[RAW_LEN];
	unsigned char tag[TAG_LEN];
	int64_t ts, t_now = (int64_t)now;

	if (!nonce || !realm)
		return -EINVAL;
	/* strnlen keeps the length check from reading past a short string
	 * or scanning a long one. */
	if (strnlen(nonce, AUTH_NONCE_LEN + 1) != AUTH_NONCE_LEN ||
	    b64url_decode(nonce, raw) != 0)
		return -EINVAL;
	if (!key_ready() || nonce_tag(raw, realm, tag) != 0)
		return -EINVAL;
	/* Constant time, so the tag cannot be learnt byte by byte from
	 * response timing.  Another realm or another secret gives another
	 * tag and lands here too. */
	if (CRYPTO_memcmp(tag, raw + TS_LEN, TAG_LEN) != 0)
		return -EINVAL;

	/* Only authentic timestamps get this far, but compare through
	 * unsigned differences anyway so no value can overflow. */
	ts = u64_to_i64(get_be64(raw));
	if (ts > t_now) {
		/* Nodes sharing the secret may disagree on the time by a
		 * little; beyond that the nonce cannot be ours. */
		if ((uint64_t)ts - (uint64_t)t_now > AUTH_NONCE_FUTURE_S)
			return -EINVAL;
		return 0;
	}
	/* Authentic but too old: the client should retry with a new nonce
	 * and the same password (stale=true, RFC 7616 §3.3). */
	if ((uint64_t)t_now - (uint64_t)ts > ttl_s)
		return -ETIMEDOUT;
	return 0;
}
