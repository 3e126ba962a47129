/* Registrar: RFC 3261 §10.3 processing of REGISTER, RFC 3327 Path,
 * RFC 5626 +sip.instance stored.  A 200 is sent only after the bindings
 * are committed in PostgreSQL (the location service batches the writes). */
#include "server/registrar/registrar.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/auth/authn.h"
#include "server/base/log.h"
#include "server/registrar/location.h"

#define AOR_MAX 512

static reg_options_t R;

typedef struct reg_ctx {
	txn_t *t;
	char aor[AOR_MAX];
	bool echo_path;
	char *path; /* Path values to echo in the 200, if any */
} reg_ctx_t;

int reg_init(const reg_options_t *opts)
{
	R = *opts;
	return 0;
}

static void ctx_free(reg_ctx_t *c)
{
	txn_unref(c->t);
	free(c->path);
	free(c);
}

static void reply_503(txn_t *t, const char *why)
{
	char extra[64];
	snprintf(extra, sizeof extra, "Retry-After: %u\r\n", R.retry_after);
	txn_reply(t, 503, why, extra, NULL, NULL, 0);
}

/* 200 listing every current binding with its remaining time (§10.3 step 8). */
static void reply_bindings(reg_ctx_t *c)
{
	buf_t extra;
	buf_init(&extra, 0);
	const loc_aor_t *a = loc_find(c->aor);
	int64_t now = (int64_t)time(NULL);
	for (const loc_binding_t *b = a ? a->bindings : NULL; b; b = b->next) {
		int64_t left = b->expires_at - now;
		if (left <= 0)
			continue;
		buf_printf(&extra, "Contact: <%s>;expires=%" PRId64, b->contact, left);
		if (b->q < 1.0f)
			buf_printf(&extra, ";q=%.3g", (double)b->q);
		buf_puts(&extra, "\r\n");
	}
	if (c->echo_path && c->path)
		buf_printf(&extra, "Path: %s\r\n", c->path);
	char date[64];
	time_t tnow = (time_t)now;
	struct tm tm;
	gmtime_r(&tnow, &tm);
	strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	buf_puts(&extra, date);
	if (extra.err)
		txn_reply(c->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
	else
		txn_reply(c->t, 200, NULL, buf_cstr(&extra), NULL, NULL, 0);
	buf_free(&extra);
}

static void committed(void *arg, int err)
{
	reg_ctx_t *c = arg;
	if (err) {
		reply_503(c->t, "Service Unavailable - Database Unavailable");
	} else {
		reply_bindings(c);
		loc_announce(c->aor);
	}
	ctx_free(c);
}

/* Joins every Path header value (RFC 3327 §5.3: stored in order). */
static char *join_path(const sipmsg_t *req)
{
	buf_t b;
	buf_init(&b, 8192);
	for (int i = 0;; i++) {
		const char *v = sipmsg_header_nth(req, "path", NULL, i);
		if (!v)
			break;
		if (b.len)
			buf_puts(&b, ", ");
		buf_puts(&b, v);
	}
	if (!b.len || b.err) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

static const char *param_value(osip_contact_t *ct, const char *name)
{
	osip_generic_param_t *p = NULL;
	osip_contact_param_get_byname(ct, (char *)name, &p);
	if (!p)
		return NULL;
	return p->gvalue ? p->gvalue : "";
}

/* Parses a q-value (RFC 3261 §20.10: 0 to 1, up to three decimals). */
static int parse_q(const char *s, float *out)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	double q = strtod(s, &end);
	if (*end || q < 0.0 || q > 1.0)
		return -EINVAL;
	*out = (float)q;
	return 0;
}

static int parse_delta(const char *s, uint32_t *out)
{
	if (!s || !*s)
		return -EINVAL;
	unsigned long long x = 0;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		if (x < 0xffffffffULL)
			x = x * 10 + (unsigned)(*s - '0');
	}
	*out = x > 0xffffffffULL ? 0xffffffffU : (uint32_t)x;
	return 0;
}

static const loc_binding_t *find_binding(const loc_aor_t *a, const char *contact)
{
	for (const loc_binding_t *b = a ? a->bindings : NULL; b; b = b->next) {
		if (strcmp(b->contact, contact) == 0)
			return b;
	}
	return NULL;
}

/* A request that is older than what we stored must not undo it (§10.3
 * step 7): same Call-ID and a CSeq that is not higher. */
static bool out_of_order(const loc_binding_t *b, const char *call_id, uint32_t cseq)
{
	return b && strcmp(b->call_id, call_id) == 0 && cseq <= b->cseq;
}

struct contact_plan {
	char *uri;
	uint32_t expires;
	float q;
	const char *instance;
};

static void process(reg_ctx_t *c, const char *auth_user)
{
	txn_t *t = c->t;
	sipmsg_t *req = txn_request(t);
	osip_message_t *m = req->m;
	struct contact_plan *plan = NULL;
	size_t nplan = 0;

	if (sip_uri_aor(m->to->url, c->aor, sizeof c->aor) != 0) {
		txn_reply(t, 400, "Bad Request - Invalid To URI", NULL, NULL, NULL, 0);
		goto out;
	}
	if (!R.is_local_domain(m->to->url->host)) {
		txn_reply(t, 404, "Not Found - Domain Not Served Here", NULL, NULL, NULL, 0);
		goto out;
	}
	/* §10.3 step 5: the authenticated user may only change its own
	 * bindings. */
	if (authn_enabled() && strcmp(auth_user, m->to->url->username) != 0) {
		LOGI("registrar", "%s may not register %s", auth_user, c->aor);
		txn_reply(t, 403, "Forbidden - Credentials Do Not Match To", NULL, NULL, NULL, 0);
		goto out;
	}

	uint32_t hdr_expires = R.default_expires;
	bool have_hdr_expires = false;
	int err = sipmsg_header_uint(req, "expires", &hdr_expires);
	if (err == -EINVAL) {
		txn_reply(t, 400, "Bad Request - Malformed Expires", NULL, NULL, NULL, 0);
		goto out;
	}
	have_hdr_expires = err == 0;
	if (!have_hdr_expires)
		hdr_expires = R.default_expires;

	const char *call_id = sipmsg_call_id(req);
	uint32_t cseq = req->cseq;
	const loc_aor_t *existing = loc_find(c->aor);
	int ncontacts = osip_list_size(&m->contacts);
	c->path = join_path(req);
	c->echo_path = c->path && sipmsg_has_option_tag(req, "supported", "k", "path");

	if (ncontacts <= 0) {
		/* A query: list the bindings, change nothing (§10.3 step 6). */
		reply_bindings(c);
		goto out;
	}

	osip_contact_t *first = osip_list_get(&m->contacts, 0);
	if (first && !first->url && first->displayname && strcmp(first->displayname, "*") == 0) {
		/* Contact: * — only alone and only with Expires: 0. */
		if (ncontacts != 1 || !have_hdr_expires || hdr_expires != 0) {
			txn_reply(t, 400, "Bad Request - Wildcard Contact Needs Expires 0 And No Other Contact",
				  NULL, NULL, NULL, 0);
			goto out;
		}
		if (loc_overloaded()) {
			reply_503(t, "Service Unavailable - Too Many Pending Writes");
			goto out;
		}
		/* Collect first: removing changes the list we walk. */
		size_t n = existing ? existing->count : 0;
		char **victims = calloc(n ? n : 1, sizeof *victims);
		size_t nv = 0;
		for (const loc_binding_t *b = existing ? existing->bindings : NULL; b && victims; b = b->next) {
			if (!out_of_order(b, call_id, cseq))
				victims[nv++] = strdup(b->contact);
		}
		for (size_t i = 0; i < nv; i++) {
			if (victims[i])
				loc_remove(c->aor, victims[i]);
			free(victims[i]);
		}
		free(victims);
		LOGD("registrar", "%s: all bindings removed", c->aor);
		goto commit;
	}

	plan = calloc((size_t)ncontacts, sizeof *plan);
	if (!plan) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		goto out;
	}
	unsigned resulting = existing ? existing->count : 0;
	for (int i = 0; i < ncontacts; i++) {
		osip_contact_t *ct = osip_list_get(&m->contacts, i);
		if (!ct || !ct->url) {
			txn_reply(t, 400, "Bad Request - Invalid Contact", NULL, NULL, NULL, 0);
			goto out;
		}
		char *uri = NULL;
		if (osip_uri_to_str(ct->url, &uri) != 0 || !uri) {
			txn_reply(t, 400, "Bad Request - Invalid Contact URI", NULL, NULL, NULL, 0);
			goto out;
		}
		plan[nplan].uri = uri;
		nplan++;
		if (strlen(uri) > 1024) {
			txn_reply(t, 400, "Bad Request - Contact URI Too Long", NULL, NULL, NULL, 0);
			goto out;
		}
		uint32_t exp = hdr_expires;
		const char *pe = param_value(ct, "expires");
		if (pe && parse_delta(pe, &exp) != 0) {
			txn_reply(t, 400, "Bad Request - Malformed Contact Expires", NULL, NULL, NULL, 0);
			goto out;
		}
		if (exp != 0 && exp < R.min_expires) {
			char extra[64];
			snprintf(extra, sizeof extra, "Min-Expires: %u\r\n", R.min_expires);
			txn_reply(t, 423, NULL, extra, NULL, NULL, 0);
			goto out;
		}
		if (exp > R.max_expires)
			exp = R.max_expires;
		float q = 1.0f;
		const char *pq = param_value(ct, "q");
		if (pq && parse_q(pq, &q) != 0) {
			txn_reply(t, 400, "Bad Request - Malformed q-value", NULL, NULL, NULL, 0);
			goto out;
		}
		const loc_binding_t *b = find_binding(existing, uri);
		if (out_of_order(b, call_id, cseq)) {
			txn_reply(t, 400, "Bad Request - CSeq Out Of Order", NULL, NULL, NULL, 0);
			goto out;
		}
		plan[nplan - 1].expires = exp;
		plan[nplan - 1].q = q;
		plan[nplan - 1].instance = param_value(ct, "+sip.instance");
		if (!b && exp)
			resulting++;
		else if (b && !exp)
			resulting--;
	}
	if (resulting > R.max_contacts) {
		txn_reply(t, 403, "Forbidden - Too Many Contacts For This AOR", NULL, NULL, NULL, 0);
		goto out;
	}
	if (loc_overloaded()) {
		reply_503(t, "Service Unavailable - Too Many Pending Writes");
		goto out;
	}

	int64_t now = (int64_t)time(NULL);
	const char *ua = sipmsg_header(req, "user-agent", NULL);
	for (size_t i = 0; i < nplan; i++) {
		if (plan[i].expires == 0) {
			loc_remove(c->aor, plan[i].uri);
			continue;
		}
		loc_binding_t *b = calloc(1, sizeof *b);
		if (!b) {
			txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
			goto out;
		}
		b->contact = strdup(plan[i].uri);
		b->expires_at = now + plan[i].expires;
		b->q = plan[i].q;
		b->call_id = strdup(call_id);
		b->cseq = cseq;
		b->source = req->src;
		b->user_agent = ua ? strndup(ua, 256) : NULL;
		b->instance = plan[i].instance ? strndup(plan[i].instance, 256) : NULL;
		b->path = c->path ? strdup(c->path) : NULL;
		b->updated_at = now;
		if (!b->contact || !b->call_id) {
			loc_binding_free(b);
			txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
			goto out;
		}
		loc_put(c->aor, b);
	}
	LOGD("registrar", "%s: %zu contact(s) updated", c->aor, nplan);

commit:
	if (loc_commit(committed, c) != 0) {
		reply_503(t, "Service Unavailable - Too Many Pending Writes");
		goto out;
	}
	c = NULL; /* answered when the batch commits */
out:
	for (size_t i = 0; i < nplan; i++)
		osip_free(plan[i].uri);
	free(plan);
	if (c)
		ctx_free(c);
}

static void auth_done(void *arg, authn_result_t result, const char *user)
{
	reg_ctx_t *c = arg;
	if (result != AUTHN_OK || txn_answered(c->t)) {
		ctx_free(c);
		return;
	}
	process(c, user ? user : "");
}

void reg_handle_register(txn_t *t, sipmsg_t *req)
{
	osip_uri_t *ruri = req->m->req_uri;
	osip_uri_t *to = req->m->to->url;
	if (!ruri->host || !R.is_local_target(ruri->host)) {
		txn_reply(t, 404, "Not Found - Domain Not Served Here", NULL, NULL, NULL, 0);
		return;
	}
	/* The realm is the domain of the address-of-record (the To
	 * header), which must be one of ours. */
	if (!to->host || !R.is_local_domain(to->host)) {
		txn_reply(t, 404, "Not Found - Domain Not Served Here", NULL, NULL, NULL, 0);
		return;
	}
	reg_ctx_t *c = calloc(1, sizeof *c);
	if (!c) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	c->t = t;
	txn_ref(t);
	char realm[256], user[AUTH_USER_MAX];
	snprintf(realm, sizeof realm, "%s", to->host);
	authn_result_t r = authn_check(t, realm, false, user, sizeof user, auth_done, c);
	if (r == AUTHN_OK)
		process(c, user);
	else if (r == AUTHN_ANSWERED)
		ctx_free(c);
	/* AUTHN_PENDING: auth_done continues. */
}
