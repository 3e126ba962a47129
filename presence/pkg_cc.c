/* The call-completion event package (RFC 6910): automatic callbacks for
 * calls to local users that found them busy (CCBS) or went unanswered
 * (CCNR).  simpled is the callee's CC monitor; the caller's phone is the
 * CC agent.
 *
 *   alice (agent)            simpled (monitor for bob)               bob
 *     |-- INVITE bob ----------->|------------------------------------>|
 *     |<-- 486 ------------------|<----------------------------- 486 --|  remembered: BS
 *     |-- SUBSCRIBE bob -------->|  Event: call-completion: queued (FIFO per callee)
 *     |<-- 200, NOTIFY ----------|  cc-state: queued
 *     |         ... bob's other call ends: no dialog of bob is active ...
 *     |<-- NOTIFY ---------------|  cc-state: ready, cc-URI: sip:bob@d;m=BS
 *     |-- INVITE sip:bob@d;m=BS->|  the CC call: alice leaves the queue, her
 *     |<-- NOTIFY terminated ----|  subscription ends (reason=noresource)
 *
 * The queue of a callee is the set of its call-completion subscriptions
 * in the order they were created, so it survives a restart with them.
 * The first entry that is not suspended gets "ready" when the callee has
 * no active dialog (dlg_active_count) -- and, for a CCNR entry, only
 * after the callee showed activity since the entry was queued (one of
 * their calls ended, or they registered).  One entry is ready at a time;
 * the others stay "queued".  The service (BS or NR) is the failure of
 * the caller's last call to the callee (486: BS; 480/408/487 after it
 * rang: NR), remembered for CC_FAILURE_TTL_S; BS without one.
 *
 * A call from the caller to the callee whose Request-URI carries the m
 * parameter (RFC 6910 §9.3, the cc-URI we sent), or any call of a caller
 * that was told "ready", is the CC call: that queue entry ends.
 *
 * Suspend and resume (§7): the caller PUBLISHes Event: call-completion
 * to the callee's URI, application/call-completion, "cc-state:
 * suspended" or "cc-state: queued"; the publisher is the From user
 * (publish_by_watcher).  A suspended entry keeps its place but is
 * skipped.  The suspension is held in memory (a restart resumes every
 * entry, which at worst calls a caller back early).
 *
 * Bounds: CC_MAX_QUEUE entries per callee (more get 403); an entry lives
 * at most queue_expires seconds (cc_queue_expires, default 1 h), whatever
 * the subscription's refreshes ask, then ends with reason=timeout. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "presence/pkgs.h"
#include "presence/rules.h"
#include "server/base/log.h"
#include "server/proxy/dlgtrack.h"
#include "server/registrar/location.h"

static const char *const TYPES[] = {"application/call-completion", NULL};

#define CC_MAX_QUEUE 32
#define CC_MAX_BODY 1024
#define CC_FAILURES 256
#define CC_FAILURE_TTL_S 600

typedef struct cc {
	ev_sub_t *sub;
	struct cc *prev, *next; /* every entry, for the expiry walk */
	bool nr;                /* CCNR: waits for the callee's activity */
	bool activity;          /* the callee was active since it was queued */
	bool suspended, ready;
} ccreq_t;

static struct {
	ccreq_t *head;
	unsigned queue_expires;
	uv_timer_t timer;
	bool timer_up;
	struct failure {
		char caller[256], callee[256];
		bool nr;
		int64_t at;
	} failures[CC_FAILURES];
	unsigned next_failure;
} C;

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* --- the body (pure) ----------------------------------------------------- */

int cc_format(const char *state, const char *cc_uri, buf_t *out)
{
	buf_printf(out, "cc-state: %s\r\ncc-service-retention: true\r\n", state);
	if (cc_uri && *cc_uri)
		buf_printf(out, "cc-URI: %s\r\n", cc_uri);
	return out->err;
}

int cc_parse_state(const char *body, size_t len, bool *suspended, char *why, size_t whylen)
{
	if (len > CC_MAX_BODY) {
		snprintf(why, whylen, "Call-Completion Body Too Large");
		return -EMSGSIZE;
	}
	bool seen = false;
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *line = p;
		size_t n = (size_t)(le - line);
		if (n && line[n - 1] == '\r')
			n--;
		p = nl ? nl + 1 : end;
		if (!n)
			continue;
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)line[i] < 0x20 && line[i] != '\t') {
				snprintf(why, whylen, "Control Character In Call-Completion Body");
				return -EINVAL;
			}
		}
		const char *colon = memchr(line, ':', n);
		if (!colon) {
			snprintf(why, whylen, "Malformed Call-Completion Line");
			return -EINVAL;
		}
		size_t nl_name = (size_t)(colon - line);
		while (nl_name && (line[nl_name - 1] == ' ' || line[nl_name - 1] == '\t'))
			nl_name--;
		const char *v = colon + 1, *ve = line + n;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		size_t vlen = (size_t)(ve - v);
		if (nl_name == 8 && strncasecmp(line, "cc-state", 8) == 0) {
			if (seen) {
				snprintf(why, whylen, "cc-state Repeated");
				return -EINVAL;
			}
			seen = true;
			if (vlen == 9 && strncasecmp(v, "suspended", 9) == 0)
				*suspended = true;
			else if (vlen == 6 && strncasecmp(v, "queued", 6) == 0)
				*suspended = false;
			else {
				snprintf(why, whylen, "cc-state Must Be suspended Or queued");
				return -EINVAL;
			}
		}
		/* Other lines (cc-service-retention, extensions) are ignored. */
	}
	if (!seen) {
		snprintf(why, whylen, "No cc-state");
		return -EINVAL;
	}
	return 0;
}

/* --- entries -------------------------------------------------------------- */

static bool failure_nr(const char *caller, const char *callee)
{
	int64_t now = now_s();
	bool nr = false;
	int64_t newest = 0;
	for (unsigned i = 0; i < CC_FAILURES; i++) {
		const struct failure *f = &C.failures[i];
		if (f->at && now - f->at < CC_FAILURE_TTL_S && f->at >= newest &&
		    strcmp(f->caller, caller) == 0 && strcmp(f->callee, callee) == 0) {
			newest = f->at;
			nr = f->nr;
		}
	}
	return nr;
}

static ccreq_t *cc_of(ev_sub_t *sub)
{
	ccreq_t *c = ev_sub_data(sub);
	if (c || ev_sub_state(sub) == EV_STATE_TERMINATED)
		return c;
	c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->sub = sub;
	c->nr = failure_nr(ev_sub_watcher(sub), ev_sub_resource(sub));
	c->next = C.head;
	if (C.head)
		C.head->prev = c;
	C.head = c;
	ev_sub_set_data(sub, c);
	return c;
}

static void sub_free(ev_sub_t *sub, void *data)
{
	(void)sub;
	ccreq_t *c = data;
	if (c->prev)
		c->prev->next = c->next;
	else if (C.head == c)
		C.head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

struct scan {
	ev_sub_t *first;  /* oldest waiting entry */
	bool any_ready;
	unsigned count;
	const char *watcher;
	ev_sub_t *found;  /* the watcher's entry */
};

static void scan_one(ev_sub_t *sub, void *arg)
{
	struct scan *s = arg;
	if (ev_sub_state(sub) != EV_STATE_ACTIVE)
		return;
	ccreq_t *c = cc_of(sub);
	if (!c)
		return;
	s->count++;
	if (s->watcher && strcmp(ev_sub_watcher(sub), s->watcher) == 0)
		s->found = sub;
	if (c->suspended)
		return;
	if (c->ready)
		s->any_ready = true;
	/* The list runs newest first: the last one seen (ties included)
	 * is the oldest. */
	else if (!s->first || ev_sub_created(sub) <= ev_sub_created(s->first))
		s->first = sub;
}

/* Tells the first waiting caller of callee "ready" when the callee is
 * free and nobody else was told already. */
static void evaluate(const char *callee)
{
	if (dlg_active_count(callee) > 0)
		return;
	struct scan s = {0};
	ev_foreach(pkg_cc.name, callee, scan_one, &s);
	if (s.any_ready || !s.first)
		return;
	ccreq_t *c = ev_sub_data(s.first);
	if (!c || (c->nr && !c->activity))
		return;
	c->ready = true;
	LOGI("cc", "%s may call %s back now (%s)", ev_sub_watcher(s.first), callee, c->nr ? "CCNR" : "CCBS");
	ev_sub_schedule(s.first);
}

static void mark_activity(ev_sub_t *sub, void *arg)
{
	(void)arg;
	ccreq_t *c = cc_of(sub);
	if (c)
		c->activity = true;
}

static void on_dialog(void *arg, const dlg_record_t *r)
{
	(void)arg;
	if (r->initiator)
		return; /* the callee's record says all the monitor needs */
	if (r->state == DLG_TRYING && r->peer_aor[0]) {
		struct scan s = {.watcher = r->peer_aor};
		ev_foreach(pkg_cc.name, r->aor, scan_one, &s);
		ccreq_t *c = s.found ? ev_sub_data(s.found) : NULL;
		if (c && (c->ready || r->cc_call)) {
			LOGI("cc", "CC call from %s to %s: request served", r->peer_aor, r->aor);
			ev_sub_end(s.found, "noresource");
		}
		return;
	}
	if (r->state != DLG_TERMINATED)
		return;
	if (r->peer_aor[0] && (r->code == 486 || (r->rang && (r->code == 480 || r->code == 408 ||
							      r->code == 487)))) {
		struct failure *f = &C.failures[C.next_failure++ % CC_FAILURES];
		snprintf(f->caller, sizeof f->caller, "%s", r->peer_aor);
		snprintf(f->callee, sizeof f->callee, "%s", r->aor);
		f->nr = r->code != 486;
		f->at = now_s();
	}
	/* The callee's call ended: activity for CCNR, maybe free now. */
	ev_foreach(pkg_cc.name, r->aor, mark_activity, NULL);
	evaluate(r->aor);
}

static void on_registration(void *arg, const char *aor, const loc_aor_t *now)
{
	(void)arg;
	if (!now)
		return;
	ev_foreach(pkg_cc.name, aor, mark_activity, NULL);
	evaluate(aor);
}

static void on_subscription(void *arg, ev_sub_t *sub, const char *event)
{
	(void)arg;
	(void)event;
	if (ev_sub_package(sub) != &pkg_cc)
		return;
	ccreq_t *c = ev_sub_data(sub);
	if (ev_sub_state(sub) == EV_STATE_TERMINATED) {
		/* The ready caller left (unsubscribed, CC call, expiry): next. */
		if (c && c->ready) {
			c->ready = false;
			evaluate(ev_sub_resource(sub));
		}
		return;
	}
	cc_of(sub);
	evaluate(ev_sub_resource(sub));
}

/* --- the package ---------------------------------------------------------- */

static int body_for(ev_sub_t *sub, buf_t *out, const char **ctype)
{
	*ctype = TYPES[0];
	ccreq_t *c = cc_of(sub);
	bool ready = c && c->ready && !c->suspended;
	char uri[600] = "";
	if (ready)
		snprintf(uri, sizeof uri, "%s;m=%s", ev_sub_resource(sub), c->nr ? "NR" : "BS");
	return cc_format(ready ? "ready" : "queued", uri, out);
}

static void count_active(ev_sub_t *sub, void *arg)
{
	if (ev_sub_state(sub) == EV_STATE_ACTIVE)
		(*(unsigned *)arg)++;
}

static ev_auth_t authorize(const char *watcher, const char *resource)
{
	if (rules_eval(resource, watcher) == EV_AUTH_BLOCK)
		return EV_AUTH_BLOCK;
	unsigned n = 0;
	ev_foreach(pkg_cc.name, resource, count_active, &n);
	if (n >= CC_MAX_QUEUE) {
		LOGI("cc", "queue of %s is full (%u): %s refused", resource, n, watcher);
		return EV_AUTH_BLOCK;
	}
	return EV_AUTH_ALLOW;
}

static int on_publish_by(const char *publisher, const char *resource, const char *ctype,
			 const char *body, size_t len, char *why, size_t whylen)
{
	(void)ctype;
	bool suspended = false;
	switch (cc_parse_state(body, len, &suspended, why, whylen)) {
	case 0: break;
	case -EMSGSIZE: return 413;
	default: return 400;
	}
	struct scan s = {.watcher = publisher};
	ev_foreach(pkg_cc.name, resource, scan_one, &s);
	ccreq_t *c = s.found ? ev_sub_data(s.found) : NULL;
	if (!c) {
		snprintf(why, whylen, "No Call-Completion Request Of %s Queued", publisher);
		return 404;
	}
	if (c->suspended != suspended) {
		LOGI("cc", "%s %s its request for %s", publisher, suspended ? "suspends" : "resumes", resource);
		c->suspended = suspended;
		bool was_ready = c->ready;
		if (suspended)
			c->ready = false;
		if (was_ready)
			ev_sub_schedule(s.found);
		evaluate(resource);
	}
	return 0;
}

const ev_package_t pkg_cc = {
	.name = "call-completion",
	.notify_types = TYPES,
	.publish_types = TYPES,
	.default_expires = 3600,
	.self_only = false,
	.authorize = authorize,
	.body_for = body_for,
	.sub_free = sub_free,
	.publish_by_watcher = true,
	.on_publish_by = on_publish_by,
};

/* Ends entries older than queue_expires. */
static void on_tick(uv_timer_t *h)
{
	(void)h;
	int64_t now = now_s();
	ev_sub_t *due[64];
	size_t n = 0;
	for (ccreq_t *c = C.head; c && n < 64; c = c->next) {
		if (ev_sub_state(c->sub) != EV_STATE_TERMINATED &&
		    now - ev_sub_created(c->sub) >= (int64_t)C.queue_expires)
			due[n++] = c->sub;
	}
	for (size_t i = 0; i < n; i++) {
		LOGI("cc", "request of %s for %s expired", ev_sub_watcher(due[i]), ev_sub_resource(due[i]));
		ev_sub_end(due[i], "timeout");
	}
}

int pkg_cc_init(uv_loop_t *loop, unsigned queue_expires)
{
	C.queue_expires = queue_expires ? queue_expires : 3600;
	int err = ev_register_package(&pkg_cc);
	if (!err)
		err = dlg_on_change(on_dialog, NULL);
	if (!err)
		err = ev_on_subscription(on_subscription, NULL);
	if (!err)
		err = loc_on_change(on_registration, NULL);
	if (err) {
		LOGE("presence", "call-completion package: initialisation failed (%d)", err);
		return err;
	}
	uv_timer_init(loop, &C.timer);
	uv_timer_start(&C.timer, on_tick, 5000, 5000);
	C.timer_up = true;
	return 0;
}

void pkg_cc_shutdown(void)
{
	if (!C.timer_up)
		return;
	uv_timer_stop(&C.timer);
	uv_close((uv_handle_t *)&C.timer, NULL);
	C.timer_up = false;
}
