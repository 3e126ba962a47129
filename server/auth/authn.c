/* Request authentication (RFC 3261 §22, RFC 7616, RFC 8760): see authn.h. */
#include "server/auth/authn.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/auth/auth.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"

#define CACHE_MAX 200000
#define NEGATIVE_TTL_S 5

typedef struct cred_entry {
	hnode_t node;
	char *key; /* user@realm */
	bool exists;
	char ha1_md5[AUTH_HEX_MAX];
	char ha1_sha256[AUTH_HEX_MAX];
	time_t fetched_at;
} cred_entry_t;

typedef struct pending {
	txn_t *t;
	char realm[AUTH_FIELD_MAX];
	bool proxy, stale;
	auth_creds_t creds;
	authn_cb cb;
	void *arg;
} pending_t;

static struct {
	authn_options_t opts;
	htable_t cache;
	bool ready;
} A;

static const char *const SQL_USER =
	"SELECT ha1_md5, ha1_sha256 FROM users WHERE username = $1 AND domain = $2";

static bool entry_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, cred_entry_t, node)->key, key) == 0;
}

static void entry_free(cred_entry_t *e)
{
	free(e->key);
	free(e);
}

static void free_node(hnode_t *n, void *arg)
{
	(void)arg;
	entry_free(container_of(n, cred_entry_t, node));
}

static void cache_clear(void)
{
	htable_foreach(&A.cache, free_node, NULL);
	A.cache.count = 0;
	memset(A.cache.buckets, 0, A.cache.nbuckets * sizeof *A.cache.buckets);
}

void authn_forget(const char *key)
{
	hnode_t *n = htable_find(&A.cache, hash_str(key), entry_eq, key);
	if (n) {
		htable_remove(&A.cache, n);
		entry_free(container_of(n, cred_entry_t, node));
	}
}

static void users_changed(void *ctx, const char *channel, const char *payload)
{
	(void)ctx;
	(void)channel;
	LOGD("authn", "credentials of %s changed", payload);
	authn_forget(payload);
}

int authn_init(const authn_options_t *opts)
{
	A.opts = *opts;
	int err = htable_init(&A.cache, 1024);
	if (err)
		return err;
	err = auth_nonce_init(opts->nonce_secret && *opts->nonce_secret ? opts->nonce_secret : NULL);
	if (err)
		return err;
	err = db_prepare("authn_user", SQL_USER);
	if (err)
		return err;
	if (opts->enabled)
		db_listen("simpled_users", users_changed, NULL);
	A.ready = true;
	return 0;
}

void authn_shutdown(void)
{
	if (!A.ready)
		return;
	cache_clear();
	htable_destroy(&A.cache);
	A.ready = false;
}

bool authn_enabled(void) { return A.opts.enabled; }

/* --- responses ---------------------------------------------------------- */

/* 401/407 with one challenge per algorithm, the preferred (SHA-256) first
 * (RFC 8760 §2.4), both qop=auth. */
static void challenge(txn_t *t, const char *realm, bool proxy, bool stale)
{
	char nonce[128], c1[512], c2[512], extra[1200];
	const char *hdr = proxy ? "Proxy-Authenticate" : "WWW-Authenticate";
	auth_nonce_make(realm, time(NULL), nonce, sizeof nonce);
	auth_challenge(AUTH_ALGO_SHA256, realm, nonce, stale, c1, sizeof c1);
	auth_challenge(AUTH_ALGO_MD5, realm, nonce, stale, c2, sizeof c2);
	snprintf(extra, sizeof extra, "%s: %s\r\n%s: %s\r\n", hdr, c1, hdr, c2);
	txn_reply(t, proxy ? 407 : 401, NULL, extra, NULL, NULL, 0);
}

static void reply_unavailable(txn_t *t)
{
	char extra[64];
	snprintf(extra, sizeof extra, "Retry-After: %u\r\n", A.opts.retry_after_s);
	txn_reply(t, 503, "Service Unavailable - Database Unavailable", extra, NULL, NULL, 0);
}

/* --- credentials lookup ------------------------------------------------- */

/* Finds the credentials for our realm among the request's Authorization
 * (or Proxy-Authorization) headers and parses them.  Returns 0, -ENOENT
 * (none for this realm), -EINVAL (malformed) or -ENOTSUP (algorithm). */
static int find_creds(sipmsg_t *req, const char *realm, bool proxy, auth_creds_t *out)
{
	osip_list_t *list = proxy ? &req->m->proxy_authorizations : &req->m->authorizations;
	int result = -ENOENT;
	for (int i = 0;; i++) {
		osip_authorization_t *a = osip_list_get(list, i);
		if (!a)
			break;
		char *s = NULL;
		if (osip_authorization_to_str(a, &s) != 0 || !s)
			continue;
		int err = auth_parse_credentials(s, out);
		osip_free(s);
		if (err == 0 && strcasecmp(out->realm, realm) == 0)
			return 0;
		if (err != 0 && result == -ENOENT)
			result = err;
	}
	return result;
}

static authn_result_t verify(txn_t *t, const char *realm, bool proxy, bool stale,
			     const auth_creds_t *creds, const cred_entry_t *e, const char *method)
{
	const char *ha1 = creds->algo == AUTH_ALGO_SHA256 ? e->ha1_sha256 : e->ha1_md5;
	if (!e->exists || !auth_check_response(creds, method, ha1)) {
		LOGI("authn", "authentication of %s@%s failed (%s)", creds->username, realm,
		     e->exists ? "wrong response" : "unknown user");
		txn_reply(t, 403, "Forbidden - Bad Credentials", NULL, NULL, NULL, 0);
		return AUTHN_ANSWERED;
	}
	if (stale) {
		/* The digest was right but the nonce too old: ask again
		 * without making the user retype anything (RFC 7616 §3.3). */
		challenge(t, realm, proxy, true);
		return AUTHN_ANSWERED;
	}
	return AUTHN_OK;
}

static void lookup_done(void *arg, int err, PGresult *res)
{
	pending_t *p = arg;
	authn_result_t result = AUTHN_ANSWERED;
	if (err) {
		reply_unavailable(p->t);
	} else {
		cred_entry_t *e = calloc(1, sizeof *e);
		char key[2 * AUTH_FIELD_MAX + 2];
		snprintf(key, sizeof key, "%s@%s", p->creds.username, p->realm);
		if (!e || !(e->key = strdup(key))) {
			free(e);
			txn_reply(p->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
			goto out;
		}
		if (PQntuples(res) == 1) {
			e->exists = true;
			snprintf(e->ha1_md5, sizeof e->ha1_md5, "%s", PQgetvalue(res, 0, 0));
			snprintf(e->ha1_sha256, sizeof e->ha1_sha256, "%s", PQgetvalue(res, 0, 1));
		}
		e->fetched_at = time(NULL);
		sipmsg_t *req = txn_request(p->t);
		result = req ? verify(p->t, p->realm, p->proxy, p->stale, &p->creds, e,
				      req->method)
			     : AUTHN_ANSWERED;
		if (A.cache.count >= CACHE_MAX)
			cache_clear();
		authn_forget(key);
		htable_insert(&A.cache, &e->node, hash_str(e->key));
	}
out:
	p->cb(p->arg, result, p->creds.username);
	txn_unref(p->t);
	free(p);
}

authn_result_t authn_check(txn_t *t, const char *realm, bool proxy, char *user, size_t userlen,
			   authn_cb cb, void *arg)
{
	if (userlen)
		user[0] = '\0';
	if (!A.opts.enabled)
		return AUTHN_OK;
	/* Realms are domains: compared and looked up lower-cased, as
	 * simplectl stores them, whatever case the request used. */
	char lrealm[AUTH_FIELD_MAX];
	size_t i = 0;
	for (; realm[i] && i + 1 < sizeof lrealm; i++)
		lrealm[i] = (char)tolower((unsigned char)realm[i]);
	lrealm[i] = '\0';
	realm = lrealm;
	sipmsg_t *req = txn_request(t);
	auth_creds_t creds;
	int err = find_creds(req, realm, proxy, &creds);
	if (err == -ENOENT || err == -ENOTSUP) {
		challenge(t, realm, proxy, false);
		return AUTHN_ANSWERED;
	}
	if (err) {
		txn_reply(t, 400, "Bad Request - Malformed Authorization Header", NULL, NULL, NULL, 0);
		return AUTHN_ANSWERED;
	}
	err = auth_nonce_check(creds.nonce, realm, time(NULL), A.opts.nonce_ttl_s);
	if (err == -EINVAL) {
		/* Not our nonce (forged, another realm, or a restarted server
		 * with a random secret): a fresh challenge. */
		challenge(t, realm, proxy, false);
		return AUTHN_ANSWERED;
	}
	bool stale = err == -ETIMEDOUT;

	char key[2 * AUTH_FIELD_MAX + 2];
	snprintf(key, sizeof key, "%s@%s", creds.username, realm);
	hnode_t *n = htable_find(&A.cache, hash_str(key), entry_eq, key);
	if (n) {
		cred_entry_t *e = container_of(n, cred_entry_t, node);
		time_t ttl = e->exists ? (time_t)A.opts.cache_ttl_s
				       : (A.opts.cache_ttl_s < NEGATIVE_TTL_S ? (time_t)A.opts.cache_ttl_s
									      : NEGATIVE_TTL_S);
		if (time(NULL) - e->fetched_at < ttl) {
			authn_result_t r = verify(t, realm, proxy, stale, &creds, e, req->method);
			if (r == AUTHN_OK)
				snprintf(user, userlen, "%s", creds.username);
			return r;
		}
	}

	pending_t *p = calloc(1, sizeof *p);
	if (!p) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return AUTHN_ANSWERED;
	}
	p->t = t;
	snprintf(p->realm, sizeof p->realm, "%s", realm);
	p->proxy = proxy;
	p->stale = stale;
	p->creds = creds;
	p->cb = cb;
	p->arg = arg;
	const char *params[2] = {creds.username, realm};
	err = db_exec("authn_user", 2, params, lookup_done, p);
	if (err) {
		free(p);
		reply_unavailable(t);
		return AUTHN_ANSWERED;
	}
	txn_ref(t);
	return AUTHN_PENDING;
}

/* --- without a transaction (XCAP) ------------------------------------------ */

typedef struct vpending {
	auth_creds_t creds;
	char realm[AUTH_FIELD_MAX];
	char method[16];
	authn_verify_cb cb;
	void *arg;
} vpending_t;

static int verify_entry(const auth_creds_t *creds, const cred_entry_t *e, const char *method)
{
	const char *ha1 = creds->algo == AUTH_ALGO_SHA256 ? e->ha1_sha256 : e->ha1_md5;
	bool ok = e->exists && auth_check_response(creds, method, ha1);
	if (!ok)
		LOGI("authn", "authentication of %s failed (%s)", e->key,
		     e->exists ? "wrong response" : "unknown user");
	return ok ? 1 : 0;
}

static void verify_lookup_done(void *arg, int err, PGresult *res)
{
	vpending_t *p = arg;
	int result = -EIO;
	if (!err) {
		cred_entry_t *e = calloc(1, sizeof *e);
		char key[2 * AUTH_FIELD_MAX + 2];
		snprintf(key, sizeof key, "%s@%s", p->creds.username, p->realm);
		if (e && (e->key = strdup(key))) {
			if (PQntuples(res) == 1) {
				e->exists = true;
				snprintf(e->ha1_md5, sizeof e->ha1_md5, "%s", PQgetvalue(res, 0, 0));
				snprintf(e->ha1_sha256, sizeof e->ha1_sha256, "%s", PQgetvalue(res, 0, 1));
			}
			e->fetched_at = time(NULL);
			result = verify_entry(&p->creds, e, p->method);
			if (A.cache.count >= CACHE_MAX)
				cache_clear();
			authn_forget(key);
			htable_insert(&A.cache, &e->node, hash_str(e->key));
		} else {
			free(e);
		}
	}
	p->cb(p->arg, result);
	free(p);
}

int authn_verify(const auth_creds_t *creds, const char *realm, const char *method,
		 authn_verify_cb cb, void *arg)
{
	char lrealm[AUTH_FIELD_MAX];
	size_t i = 0;
	for (; realm[i] && i + 1 < sizeof lrealm; i++)
		lrealm[i] = (char)tolower((unsigned char)realm[i]);
	lrealm[i] = '\0';
	char key[2 * AUTH_FIELD_MAX + 2];
	snprintf(key, sizeof key, "%s@%s", creds->username, lrealm);
	hnode_t *n = htable_find(&A.cache, hash_str(key), entry_eq, key);
	if (n) {
		cred_entry_t *e = container_of(n, cred_entry_t, node);
		time_t ttl = e->exists ? (time_t)A.opts.cache_ttl_s
				       : (A.opts.cache_ttl_s < NEGATIVE_TTL_S ? (time_t)A.opts.cache_ttl_s
									      : NEGATIVE_TTL_S);
		if (time(NULL) - e->fetched_at < ttl)
			return verify_entry(creds, e, method);
	}
	vpending_t *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->creds = *creds;
	snprintf(p->realm, sizeof p->realm, "%s", lrealm);
	snprintf(p->method, sizeof p->method, "%s", method);
	p->cb = cb;
	p->arg = arg;
	const char *params[2] = {p->creds.username, p->realm};
	int err = db_exec("authn_user", 2, params, verify_lookup_done, p);
	if (err) {
		free(p);
		return err;
	}
	return -EINPROGRESS;
}
