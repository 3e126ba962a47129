/* Digest authentication (RFC 7616, RFC 8760 for SIP): MD5 and SHA-256,
 * qop=auth, and stateless nonces.
 *
 * A nonce is  base64url(timestamp(8 bytes, big endian) || HMAC-SHA256(
 * secret, timestamp || realm)[0..15]): the server verifies it without
 * storing anything, every node sharing the secret accepts it, and its age
 * tells when it is stale (RFC 7616 §3.3, stale=true). */
#ifndef SD_AUTH_H
#define SD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum { AUTH_ALGO_MD5 = 1, AUTH_ALGO_SHA256 = 2 } auth_algo_t;

#define AUTH_HEX_MAX 65 /* SHA-256 hex digest + NUL */
#define AUTH_FIELD_MAX 256
/* Length of a nonce from auth_nonce_make: 24 bytes in base64url. */
#define AUTH_NONCE_LEN 32
/* How far in the future a nonce's timestamp may be (clock skew between
 * nodes sharing the secret) before auth_nonce_check calls it forged. */
#define AUTH_NONCE_FUTURE_S 5

/* Parsed Authorization / Proxy-Authorization header (Digest scheme). */
typedef struct auth_creds {
	char username[AUTH_FIELD_MAX];
	char realm[AUTH_FIELD_MAX];
	char nonce[AUTH_FIELD_MAX];
	char uri[AUTH_FIELD_MAX * 2];
	char response[AUTH_HEX_MAX];
	char cnonce[AUTH_FIELD_MAX];
	char nc[16];
	char qop[32];    /* "" when absent (RFC 2069 compatibility) */
	char opaque[AUTH_FIELD_MAX];
	auth_algo_t algo; /* MD5 when the parameter is absent */
} auth_creds_t;

/* Parses the header value ("Digest username=..., ...").  Every field is
 * bounded; returns 0, -EINVAL (not Digest / malformed / field too long /
 * duplicate or missing parameter / qop=auth without cnonce and a valid
 * 8-hex-digit nc), or -ENOTSUP (unknown algorithm, including the -sess
 * variants and SHA-512-256; qop=auth-int; userhash=true).  out is
 * borrowed and zeroed on error; no memory is allocated. */
int auth_parse_credentials(const char *value, auth_creds_t *out);

/* Returns "MD5" or "SHA-256" ("" for anything else). */
const char *auth_algo_name(auth_algo_t algo);
/* Maps an algorithm name (case-insensitive, e.g. from the configuration
 * or the algorithm parameter) to its value; 0 or -ENOTSUP. */
int auth_algo_parse(const char *name, auth_algo_t *out);
/* Lower-case hex digest of data; out must hold AUTH_HEX_MAX bytes.  The
 * digest functions below write "" when the digest is unavailable (e.g.
 * MD5 under a FIPS provider), which no response check accepts. */
void auth_hash_hex(auth_algo_t algo, const void *data, size_t len, char *out);

/* HA1 = H(username ":" realm ":" password). */
void auth_ha1(auth_algo_t algo, const char *username, const char *realm,
	      const char *password, char *out);

/* Expected response for the given HA1 and request (RFC 7616 §3.4.1).
 * qop is "auth" or "" (legacy RFC 2069 form without cnonce/nc). */
void auth_response(auth_algo_t algo, const char *ha1, const char *nonce, const char *nc,
		   const char *cnonce, const char *qop, const char *method, const char *uri,
		   char *out);

/* Checks creds->response against the expected value in constant time.
 * ha1 is the stored H(username:realm:password) for creds->algo; hex
 * case does not matter in either. */
bool auth_check_response(const auth_creds_t *creds, const char *method, const char *ha1);

/* Nonce secret: random at start unless the configuration gives one (so
 * several nodes accept each other's nonces).  Returns 0, -EINVAL (empty
 * secret) or -EIO (no randomness).  Calling it again replaces the secret,
 * which makes every outstanding nonce invalid.  If it was never called,
 * the first nonce operation makes a random secret. */
int auth_nonce_init(const char *secret_or_null);
/* Writes a nonce for realm at time now into out (>= 64 bytes).  Writes ""
 * when out is too small (< AUTH_NONCE_LEN + 1), the realm is longer than
 * AUTH_FIELD_MAX - 1 or the HMAC fails. */
void auth_nonce_make(const char *realm, time_t now, char *out, size_t outlen);
/* 0 = valid and fresh (age <= ttl_s); -ETIMEDOUT = authentic but older
 * than ttl (stale); -EINVAL = forged, malformed, from another realm/secret,
 * or dated more than AUTH_NONCE_FUTURE_S seconds after now. */
int auth_nonce_check(const char *nonce, const char *realm, time_t now, unsigned ttl_s);

/* Formats a WWW-Authenticate / Proxy-Authenticate value:
 * Digest realm="..", nonce="..", algorithm=SHA-256, qop="auth"[, stale=true]
 * realm and nonce are written as quoted-strings ('"' and '\\' escaped).
 * Returns 0, -ENOSPC (out too small; out is then "") or -EINVAL (unknown
 * algo, or a control character in realm/nonce, which would let the value
 * break out of its header). */
int auth_challenge(auth_algo_t algo, const char *realm, const char *nonce, bool stale,
		   char *out, size_t outlen);

#endif
