/* Method table and the generic request checks (see router.h). */
#include "server/router.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/base/log.h"

#define MAX_ROUTES 32
#define MAX_TAGS 32

static struct {
	struct { const char *method; router_cb cb; } routes[MAX_ROUTES];
	int nroutes;
	const char *supported[MAX_TAGS + 1]; /* NULL-terminated */
	int nsupported;
	char allow[512], allow_events[512], supported_hdr[512], accept[512];
	router_ack_cb stray_ack;
} RT = {.allow = "OPTIONS", .accept = ""};

static int append_list(char *list, size_t len, const char *item)
{
	size_t used = strlen(list);
	int n = snprintf(list + used, len - used, "%s%s", used ? ", " : "", item);
	return (n < 0 || (size_t)n >= len - used) ? -ENOSPC : 0;
}

int router_add(const char *method, router_cb cb)
{
	if (RT.nroutes >= MAX_ROUTES)
		return -ENOSPC;
	RT.routes[RT.nroutes].method = method;
	RT.routes[RT.nroutes].cb = cb;
	RT.nroutes++;
	if (strcmp(method, "ACK") == 0 || strcmp(method, "OPTIONS") == 0)
		return 0;
	return append_list(RT.allow, sizeof RT.allow, method);
}

int router_add_supported(const char *tag)
{
	if (RT.nsupported >= MAX_TAGS)
		return -ENOSPC;
	RT.supported[RT.nsupported++] = tag;
	RT.supported[RT.nsupported] = NULL;
	return append_list(RT.supported_hdr, sizeof RT.supported_hdr, tag);
}

int router_add_event(const char *package)
{
	return append_list(RT.allow_events, sizeof RT.allow_events, package);
}

int router_add_accept(const char *mime) { return append_list(RT.accept, sizeof RT.accept, mime); }

const char *router_allow(void) { return RT.allow; }
const char *router_allow_events(void) { return RT.allow_events; }
const char *router_supported(void) { return RT.supported_hdr; }

void router_set_stray_ack(router_ack_cb cb) { RT.stray_ack = cb; }

void router_stray_ack(sipmsg_t *ack)
{
	if (RT.stray_ack)
		RT.stray_ack(ack);
	else
		sipmsg_free(ack);
}

static void answer_options(txn_t *t)
{
	char extra[2048];
	int n = snprintf(extra, sizeof extra,
			 "Allow: %s\r\nAccept: %s\r\nAccept-Encoding: identity\r\n"
			 "Accept-Language: en\r\nSupported: %s\r\n",
			 RT.allow, RT.accept[0] ? RT.accept : "application/sdp", RT.supported_hdr);
	if (RT.allow_events[0] && n > 0 && (size_t)n < sizeof extra)
		snprintf(extra + n, sizeof extra - (size_t)n, "Allow-Events: %s\r\n", RT.allow_events);
	txn_reply(t, 200, NULL, extra, NULL, NULL, 0);
}

/* Require / Proxy-Require with options we do not know get 420 and an
 * Unsupported header naming them (RFC 3261 §8.2.2.3). */
static bool check_require(txn_t *t, sipmsg_t *req)
{
	char unsupported[512];
	static const char *const none[] = {NULL};
	const char *const *sup = RT.nsupported ? RT.supported : none;
	if (sipmsg_require_ok(req, sup, unsupported, sizeof unsupported)) {
		/* Proxy-Require: the same rule for the proxy role. */
		const char *pr = sipmsg_header(req, "proxy-require", NULL);
		if (!pr)
			return true;
		/* Reuse the Require parser by looking at tokens directly. */
		char copy[512];
		snprintf(copy, sizeof copy, "%s", pr);
		char *save = NULL;
		unsupported[0] = '\0';
		for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
			bool known = false;
			for (const char *const *s = sup; *s; s++)
				known |= strcasecmp(*s, tok) == 0;
			if (!known)
				append_list(unsupported, sizeof unsupported, tok);
		}
		if (!unsupported[0])
			return true;
	}
	char extra[600];
	snprintf(extra, sizeof extra, "Unsupported: %s\r\n", unsupported);
	txn_reply(t, 420, "Bad Extension", extra, NULL, NULL, 0);
	return false;
}

void router_dispatch(txn_t *t, sipmsg_t *req)
{
	const char *method = req->method;
	bool is_options = strcmp(method, "OPTIONS") == 0;

	/* Max-Forwards (RFC 3261 §16.3 step 3 / §8.1.1.6). */
	const char *mf = sipmsg_header(req, "max-forwards", NULL);
	if (mf) {
		const char *p = mf;
		while (*p == ' ' || *p == '\t')
			p++;
		char *end;
		long v = strtol(p, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (!isdigit((unsigned char)*p) || *end || v > 255) {
			txn_reply(t, 400, "Bad Request - Malformed Max-Forwards", NULL, NULL, NULL, 0);
			return;
		}
		if (v == 0 && !is_options) {
			txn_reply(t, 483, "Too Many Hops", NULL, NULL, NULL, 0);
			return;
		}
	}
	if (strcmp(method, "CANCEL") != 0 && !check_require(t, req))
		return;
	if (is_options) {
		for (int i = 0; i < RT.nroutes; i++) {
			if (strcmp(RT.routes[i].method, "OPTIONS") == 0) {
				RT.routes[i].cb(t, req);
				return;
			}
		}
		answer_options(t);
		return;
	}
	for (int i = 0; i < RT.nroutes; i++) {
		if (strcmp(RT.routes[i].method, method) == 0) {
			RT.routes[i].cb(t, req);
			return;
		}
	}
	char extra[600];
	snprintf(extra, sizeof extra, "Allow: %s\r\n", RT.allow);
	if (strcmp(method, "CANCEL") == 0) {
		/* A CANCEL matching no INVITE transaction (§9.2). */
		txn_reply(t, 481, "Call/Transaction Does Not Exist", NULL, NULL, NULL, 0);
		return;
	}
	LOGD("router", "method %s not implemented", method);
	txn_reply(t, 501, "Not Implemented", extra, NULL, NULL, 0);
}
