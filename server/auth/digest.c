/* Digest credentials: parsing the Authorization / Proxy-Authorization
 * value, computing HA1 and the expected response, checking it, and
 * formatting the challenge.
 *
 * Implements RFC 7616 §3.3 (challenge), §3.4 (credentials), §3.4.1
 * (response), §3.4.2 (A1, without the -sess variants), §3.4.3 (A2 for
 * qop=auth) and the RFC 2069 form without qop that RFC 7616 §3.4.1 still
 * describes; RFC 8760 brings SHA-256 to SIP.  The header grammar is
 * RFC 7235 §2.1 / RFC 3261 §25.1: a case-insensitive scheme, then
 * comma-separated name=value pairs whose value is a token or a
 * quoted-string with backslash escapes.
 *
 * The parser writes only into the fixed buffers of auth_creds_t, never
 * allocates, and never reads past the terminating NUL: every look-ahead
 * is guarded by the character before it being non-NUL. */
#include "server/auth/auth.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* ---- small ASCII helpers (locale-independent on purpose: header syntax
 * is ASCII whatever the process locale is) ---- */

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* True when the n bytes at s equal the NUL-terminated lit, ignoring case. */
static bool ascii_eq_n(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (lit[i] == '\0' || ascii_lower(s[i]) != ascii_lower(lit[i]))
			return false;
	}
	return lit[i] == '\0';
}

static bool ascii_eq(const char *s, const char *lit)
{
	return ascii_eq_n(s, strlen(s), lit);
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* tchar (RFC 7230 §3.2.6), the characters of a token. */
static bool is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Skips SP / HTAB, and CRLF followed by SP / HTAB: a folded line is
 * equivalent to a single SP (RFC 3261 §7.3.1), in case the caller hands
 * over the value before unfolding it. */
static const char *skip_lws(const char *p)
{
	for (;;) {
		if (*p == ' ' || *p == '\t')
			p++;
		else if (p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t'))
			p += 3;
		else
			return p;
	}
}

/* Reads the token or quoted-string at *pp and stores its unescaped text in
 * dst (dstlen bytes including the NUL), or only skips it when dst is
 * NULL (an unknown parameter).  Returns 0 or -EINVAL: bad syntax, an
 * unterminated string, or a value that does not fit in dst. */
static int read_value(const char **pp, char *dst, size_t dstlen)
{
	const char *p = *pp;
	size_t n = 0;

	if (*p == '"') {
		p++;
		for (;;) {
			unsigned char c = (unsigned char)*p;

			if (c == '"') {
				p++;
				break;
			}
			if (c == '\\') {
				/* quoted-pair = "\" (HTAB / SP / VCHAR / obs-text)
				 * (RFC 7230 §3.2.6); p[1] is readable because
				 * p[0] is not the NUL.  "\" then NUL is an
				 * unterminated string. */
				c = (unsigned char)p[1];
				if (c != '\t' && (c < 0x20 || c == 0x7f))
					return -EINVAL;
				p += 2;
			} else if (c == '\t' || (c >= 0x20 && c != 0x7f)) {
				/* qdtext, including UTF-8 (obs-text in RFC 7230,
				 * UTF8-NONASCII in RFC 3261 §25.1). */
				p++;
			} else {
				/* NUL (no closing quote) or a control character. */
				return -EINVAL;
			}
			if (dst) {
				if (n + 1 >= dstlen)
					return -EINVAL;
				dst[n] = (char)c;
			}
			n++;
		}
	} else {
		while (is_tchar(*p)) {
			if (dst) {
				if (n + 1 >= dstlen)
					return -EINVAL;
				dst[n] = *p;
			}
			n++;
			p++;
		}
		/* "name=" with nothing after it is not a value. */
		if (n == 0)
			return -EINVAL;
	}
	if (dst)
		dst[n] = '\0';
	*pp = p;
	return 0;
}

enum {
	F_USERNAME,
	F_REALM,
	F_NONCE,
	F_URI,
	F_RESPONSE,
	F_CNONCE,
	F_NC,
	F_QOP,
	F_OPAQUE,
	F_ALGORITHM,
	F_USERHASH,
	F_COUNT
};

#define BIT(f) (1u << (f))
/* RFC 7616 §3.4 lists these as required in every response. */
#define REQUIRED (BIT(F_USERNAME) | BIT(F_REALM) | BIT(F_NONCE) | BIT(F_URI) | BIT(F_RESPONSE))

int auth_parse_credentials(const char *value, auth_creds_t *out)
{
	char algo[32] = "";
	char userhash[8] = "";
	unsigned seen = 0;
	int err = 0;
	const char *p;

	if (!value || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);

	/* Indexed by the F_* values above, which are the bits of seen. */
	const struct {
		const char *name;
		char *dst;
		size_t size;
	} f[F_COUNT] = {
		[F_USERNAME] = { "username", out->username, sizeof out->username },
		[F_REALM] = { "realm", out->realm, sizeof out->realm },
		[F_NONCE] = { "nonce", out->nonce, sizeof out->nonce },
		[F_URI] = { "uri", out->uri, sizeof out->uri },
		[F_RESPONSE] = { "response", out->response, sizeof out->response },
		[F_CNONCE] = { "cnonce", out->cnonce, sizeof out->cnonce },
		[F_NC] = { "nc", out->nc, sizeof out->nc },
		[F_QOP] = { "qop", out->qop, sizeof out->qop },
		[F_OPAQUE] = { "opaque", out->opaque, sizeof out->opaque },
		[F_ALGORITHM] = { "algorithm", algo, sizeof algo },
		[F_USERHASH] = { "userhash", userhash, sizeof userhash },
	};

	/* The auth-scheme is case-insensitive and separated from its
	 * parameters by whitespace (RFC 7235 §2.1). */
	p = skip_lws(value);
	if (!ascii_eq_n(p, strnlen(p, 6), "Digest")) {
		err = -EINVAL;
		goto out;
	}
	p += 6;
	{
		const char *q = skip_lws(p);

		if (q == p) {
			err = -EINVAL;
			goto out;
		}
		p = q;
	}

	for (;;) {
		const char *name;
		size_t nlen;
		int idx = -1;

		/* Empty list elements ("a=1, , b=2") are legal and ignored
		 * (RFC 7230 §7). */
		while (*p == ',')
			p = skip_lws(p + 1);
		if (*p == '\0')
			break;

		name = p;
		while (is_tchar(*p))
			p++;
		nlen = (size_t)(p - name);
		if (nlen == 0) {
			err = -EINVAL;
			goto out;
		}
		p = skip_lws(p);
		if (*p != '=') {
			err = -EINVAL;
			goto out;
		}
		p = skip_lws(p + 1);

		/* Parameter names are case-insensitive (RFC 7616 §3.4). */
		for (int i = 0; i < F_COUNT; i++) {
			if (ascii_eq_n(name, nlen, f[i].name)) {
				idx = i;
				break;
			}
		}
		if (idx >= 0) {
			/* Two values for one parameter leave no right answer
			 * (which one did the client hash?), so refuse. */
			if (seen & BIT(idx)) {
				err = -EINVAL;
				goto out;
			}
			seen |= BIT(idx);
			err = read_value(&p, f[idx].dst, f[idx].size);
		} else {
			/* Unknown parameters are ignored (RFC 7616 §3.4,
			 * "auth-param" extensibility), username* included:
			 * a client using it still has to send "username"
			 * for us to accept it. */
			err = read_value(&p, NULL, 0);
		}
		if (err)
			goto out;

		p = skip_lws(p);
		if (*p == ',')
			p = skip_lws(p + 1);
		else if (*p != '\0') {
			err = -EINVAL;
			goto out;
		}
	}

	if ((seen & REQUIRED) != REQUIRED) {
		err = -EINVAL;
		goto out;
	}

	/* A missing algorithm means MD5 (RFC 7616 §3.4, "If this is not
	 * present, it is assumed to be MD5").  An empty or unknown one is
	 * something we cannot verify. */
	if (seen & BIT(F_ALGORITHM)) {
		err = auth_algo_parse(algo, &out->algo);
		if (err)
			goto out;
	} else {
		out->algo = AUTH_ALGO_MD5;
	}

	/* userhash=true (RFC 7616 §3.4.4) hides the username behind a hash
	 * we would have to search for; we never offer it in the challenge. */
	if (seen & BIT(F_USERHASH)) {
		if (ascii_eq(userhash, "true")) {
			err = -ENOTSUP;
			goto out;
		}
		if (!ascii_eq(userhash, "false")) {
			err = -EINVAL;
			goto out;
		}
	}

	if (seen & BIT(F_QOP)) {
		/* The client picks one of the offered qop values (RFC 7616
		 * §3.4); we offer only "auth", and auth-int would need the
		 * body hash (§3.4.3). */
		if (ascii_eq(out->qop, "auth")) {
			memcpy(out->qop, "auth", sizeof "auth");
		} else if (ascii_eq(out->qop, "auth-int")) {
			err = -ENOTSUP;
			goto out;
		} else {
			err = -EINVAL;
			goto out;
		}

		/* With a qop, cnonce and nc are required, and nc is exactly
		 * 8 hex digits (RFC 7616 §3.4, nc-value = 8LHEX). */
		if (!(seen & BIT(F_CNONCE)) || !(seen & BIT(F_NC)) || strlen(out->nc) != 8) {
			err = -EINVAL;
			goto out;
		}
		for (int i = 0; i < 8; i++) {
			if (!is_hex(out->nc[i])) {
				err = -EINVAL;
				goto out;
			}
		}
	}

out:
	if (err)
		memset(out, 0, sizeof *out);
	return err;
}

const char *auth_algo_name(auth_algo_t algo)
{
	switch (algo) {
	case AUTH_ALGO_MD5:
		return "MD5";
	case AUTH_ALGO_SHA256:
		return "SHA-256";
	}
	return "";
}

int auth_algo_parse(const char *name, auth_algo_t *out)
{
	if (!name || !out)
		return -EINVAL;
	/* Algorithm names are case-insensitive (RFC 7616 §3.3).  The -sess
	 * variants need an HA1 per client nonce (§3.4.2) and SHA-512-256 is
	 * not in RFC 8760's list for SIP; both land here as unsupported,
	 * like any name we do not know. */
	if (ascii_eq(name, "MD5")) {
		*out = AUTH_ALGO_MD5;
		return 0;
	}
	if (ascii_eq(name, "SHA-256")) {
		*out = AUTH_ALGO_SHA256;
		return 0;
	}
	return -ENOTSUP;
}

/* ---- hashing ---- */

static const EVP_MD *algo_md(auth_algo_t algo)
{
	switch (algo) {
	case AUTH_ALGO_MD5:
		return EVP_md5();
	case AUTH_ALGO_SHA256:
		return EVP_sha256();
	}
	return NULL;
}

/* Hex digits in a digest of algo, 0 for an unknown algo. */
static size_t algo_hex_len(auth_algo_t algo)
{
	switch (algo) {
	case AUTH_ALGO_MD5:
		return 32;
	case AUTH_ALGO_SHA256:
		return 64;
	}
	return 0;
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	/* Lower case: RFC 7616 §3.4.1 hashes the hex form of HA1 and HA2, so
	 * the case is part of the result. */
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

void auth_hash_hex(auth_algo_t algo, const void *data, size_t len, char *out)
{
	const EVP_MD *md = algo_md(algo);
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	out[0] = '\0';
	if (!md || EVP_Digest(data, len, d, &dlen, md, NULL) != 1 ||
	    dlen * 2 >= AUTH_HEX_MAX)
		return;
	to_hex(d, dlen, out);
}

/* out = hex(H(parts[0] ":" parts[1] ":" ...)), the shape of every value
 * in RFC 7616 §3.4.1-§3.4.3; NULL parts count as "".  Hashing piece by
 * piece needs no buffer big enough for the joined string. */
static void hash_join(auth_algo_t algo, const char *const *parts, size_t n, char *out)
{
	const EVP_MD *md = algo_md(algo);
	EVP_MD_CTX *ctx = NULL;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	out[0] = '\0';
	if (!md)
		goto out;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const char *s = parts[i] ? parts[i] : "";

		if (i > 0 && EVP_DigestUpdate(ctx, ":", 1) != 1)
			goto out;
		if (EVP_DigestUpdate(ctx, s, strlen(s)) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(ctx, d, &dlen) != 1 || dlen * 2 >= AUTH_HEX_MAX)
		goto out;
	to_hex(d, dlen, out);
out:
	EVP_MD_CTX_free(ctx);
	/* HA1 is as good as the password for this realm. */
	OPENSSL_cleanse(d, sizeof d);
}

void auth_ha1(auth_algo_t algo, const char *username, const char *realm,
	      const char *password, char *out)
{
	/* A1 = unq(username) ":" unq(realm) ":" passwd (RFC 7616 §3.4.2). */
	const char *parts[] = { username, realm, password };

	hash_join(algo, parts, 3, out);
}

void auth_response(auth_algo_t algo, const char *ha1, const char *nonce, const char *nc,
		   const char *cnonce, const char *qop, const char *method, const char *uri,
		   char *out)
{
	/* A2 = Method ":" request-uri for qop=auth or no qop (§3.4.3). */
	const char *a2[] = { method, uri };
	char ha2[AUTH_HEX_MAX];

	hash_join(algo, a2, 2, ha2);
	if (ha2[0] == '\0') {
		out[0] = '\0';
		return;
	}
	if (qop && qop[0]) {
		/* response = KD(HA1, nonce:nc:cnonce:qop:HA2) (§3.4.1). */
		const char *parts[] = { ha1, nonce, nc, cnonce, qop, ha2 };

		hash_join(algo, parts, 6, out);
	} else {
		/* RFC 2069 form: KD(HA1, nonce:HA2), kept by §3.4.1 for
		 * clients that ignore qop. */
		const char *parts[] = { ha1, nonce, ha2 };

		hash_join(algo, parts, 3, out);
	}
}

/* Copies exactly n hex digits of src into dst (n + 1 bytes), lower-cased.
 * Returns false if src is not n hex digits.  OR-ing 0x20 lower-cases a
 * hex letter and leaves a digit unchanged, so the copy does not branch on
 * the (secret) digits; only the validity verdict is computed from them. */
static bool lower_hex_copy(const char *src, size_t n, char *dst)
{
	unsigned bad = 0;

	if (strnlen(src, n + 1) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = (char)(src[i] | 0x20);

		bad |= (unsigned)!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
		dst[i] = c;
	}
	dst[n] = '\0';
	return bad == 0;
}

bool auth_check_response(const auth_creds_t *creds, const char *method, const char *ha1)
{
	char got[AUTH_HEX_MAX];
	char key[AUTH_HEX_MAX];
	char want[AUTH_HEX_MAX];
	size_t hexlen;
	bool ok = false;

	if (!creds || !method || !ha1)
		return false;
	/* The length follows from the algorithm, which is public; only the
	 * digits are secret. */
	hexlen = algo_hex_len(creds->algo);
	if (hexlen == 0)
		return false;
	/* Hex case is not meaningful to the client or the database, but the
	 * hash input of §3.4.1 is lower case, so normalise both sides. */
	if (!lower_hex_copy(creds->response, hexlen, got) || !lower_hex_copy(ha1, hexlen, key))
		goto out;
	auth_response(creds->algo, key, creds->nonce, creds->nc, creds->cnonce, creds->qop,
		      method, creds->uri, want);
	if (strlen(want) != hexlen)
		goto out;
	/* Constant time, so a client cannot find the response digit by
	 * digit from how long the comparison took. */
	ok = CRYPTO_memcmp(want, got, hexlen) == 0;
out:
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(want, sizeof want);
	return ok;
}

/* ---- challenge ---- */

typedef struct {
	char *p;
	size_t cap;
	size_t len;
	int err;
} writer_t;

static void put_char(writer_t *w, char c)
{
	if (w->err)
		return;
	/* Keep a byte for the NUL. */
	if (w->len + 1 >= w->cap) {
		w->err = -ENOSPC;
		return;
	}
	w->p[w->len++] = c;
}

static void put_str(writer_t *w, const char *s)
{
	while (*s)
		put_char(w, *s++);
}

/* s as a quoted-string: '"' and '\' escaped (RFC 3261 §25.1). */
static void put_quoted(writer_t *w, const char *s)
{
	put_char(w, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			put_char(w, '\\');
		put_char(w, *s);
	}
	put_char(w, '"');
}

static bool has_ctl(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

int auth_challenge(auth_algo_t algo, const char *realm, const char *nonce, bool stale,
		   char *out, size_t outlen)
{
	writer_t w = { .p = out, .cap = outlen };

	if (!out || outlen == 0)
		return -ENOSPC;
	out[0] = '\0';
	/* CR or LF in either would end the header line early: refuse
	 * rather than emit a header someone else could finish. */
	if (!realm || !nonce || algo_hex_len(algo) == 0 || has_ctl(realm) || has_ctl(nonce))
		return -EINVAL;

	/* RFC 7616 §3.3; algorithm is a token and qop a quoted list.
	 * stale=true tells the client its password was right and only the
	 * nonce expired, so it retries without asking the user. */
	put_str(&w, "Digest realm=");
	put_quoted(&w, realm);
	put_str(&w, ", nonce=");
	put_quoted(&w, nonce);
	put_str(&w, ", algorithm=");
	put_str(&w, auth_algo_name(algo));
	put_str(&w, ", qop=\"auth\"");
	if (stale)
		put_str(&w, ", stale=true");
	if (w.err) {
		out[0] = '\0';
		return w.err;
	}
	out[w.len] = '\0';
	return 0;
}
