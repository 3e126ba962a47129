/* Dialog records (see dlgtrack.h).
 *
 * Two indexes: groups by (Call-ID, caller's From tag), which is what
 * every response and BYE of the call carries, and the records of each
 * AOR in a list (oldest first) for dlg_foreach and dlg_active_count, so
 * neither walks other users' calls.  A 1 s timer walks a slice of the
 * group table and ends or removes the records that are due. */
#include "server/proxy/dlgtrack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/htable.h"
#include "server/base/log.h"

#define MOD "dialog"
#define MAX_OBSERVERS 4

typedef struct aor_node aor_node_t;
typedef struct group group_t;

typedef struct rec {
	dlg_record_t pub;
	group_t *group;
	aor_node_t *owner;
	struct rec *prev, *next; /* in owner's list */
	int64_t deadline;        /* when the record ends (or, terminated, goes) */
	char id[24];
	char *aor, *peer, *call_id, *local_tag, *remote_tag, *local_uri, *remote_uri, *remote_target;
} rec_t;

struct group {
	hnode_t node;
	char *call_id, *caller_tag;
	unsigned n;
	rec_t *r[2]; /* [0] the callee's (recipient), [1] the caller's, if local */
};

struct aor_node {
	hnode_t node;
	char *aor;
	rec_t *head, *tail;
	unsigned active;
};

static struct {
	bool up;
	htable_t groups, aors;
	uv_timer_t timer;
	size_t cursor;
	uint64_t seq, ids;
	unsigned long records;
	struct {
		dlg_change_cb cb;
		void *arg;
	} obs[MAX_OBSERVERS];
	int nobs;
} D;

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* --- pure helpers -------------------------------------------------------- */

bool dlg_state_advance(dlg_state_t from, dlg_state_t to)
{
	if (from == DLG_TERMINATED)
		return false;
	return to > from || (to == DLG_EARLY && from == DLG_EARLY);
}

const char *dlg_state_name(dlg_state_t s)
{
	switch (s) {
	case DLG_TRYING: return "trying";
	case DLG_PROCEEDING: return "proceeding";
	case DLG_EARLY: return "early";
	case DLG_CONFIRMED: return "confirmed";
	case DLG_TERMINATED: return "terminated";
	}
	return "terminated";
}

/* --- indexes ------------------------------------------------------------- */

typedef struct gkey {
	const char *call_id, *caller_tag;
} gkey_t;

static uint64_t group_hash(const char *call_id, const char *tag)
{
	return hash_mix(hash_str(call_id), hash_str(tag));
}

static bool group_eq(const hnode_t *n, const void *key)
{
	const group_t *g = container_of(n, group_t, node);
	const gkey_t *k = key;
	return strcmp(g->call_id, k->call_id) == 0 && strcmp(g->caller_tag, k->caller_tag) == 0;
}

static group_t *group_find(const char *call_id, const char *tag)
{
	if (!D.up || !call_id || !tag)
		return NULL;
	gkey_t k = {call_id, tag};
	hnode_t *n = htable_find(&D.groups, group_hash(call_id, tag), group_eq, &k);
	return n ? container_of(n, group_t, node) : NULL;
}

static bool aor_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, aor_node_t, node)->aor, key) == 0;
}

static aor_node_t *aor_find(const char *aor)
{
	if (!D.up)
		return NULL;
	hnode_t *n = htable_find(&D.aors, hash_str(aor), aor_eq, aor);
	return n ? container_of(n, aor_node_t, node) : NULL;
}

static aor_node_t *aor_get(const char *aor)
{
	aor_node_t *a = aor_find(aor);
	if (a)
		return a;
	a = calloc(1, sizeof *a);
	if (!a || !(a->aor = strdup(aor))) {
		free(a);
		return NULL;
	}
	htable_insert(&D.aors, &a->node, hash_str(aor));
	return a;
}

/* --- records ------------------------------------------------------------- */

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void rec_sync(rec_t *r)
{
	r->pub.id = r->id;
	r->pub.aor = r->aor;
	r->pub.peer_aor = r->peer;
	r->pub.call_id = r->call_id;
	r->pub.local_tag = r->local_tag;
	r->pub.remote_tag = r->remote_tag;
	r->pub.local_uri = r->local_uri;
	r->pub.remote_uri = r->remote_uri;
	r->pub.remote_target = r->remote_target;
}

static void rec_free(rec_t *r)
{
	free(r->aor);
	free(r->peer);
	free(r->call_id);
	free(r->local_tag);
	free(r->remote_tag);
	free(r->local_uri);
	free(r->remote_uri);
	free(r->remote_target);
	free(r);
}

static void announce(const rec_t *r)
{
	for (int i = 0; i < D.nobs; i++)
		D.obs[i].cb(D.obs[i].arg, &r->pub);
}

static rec_t *rec_new(group_t *g, const char *aor, const char *peer, bool initiator, const char *local_tag,
		      const char *local_uri, const char *remote_uri, const char *remote_target,
		      bool cc_call)
{
	aor_node_t *a = aor_get(aor);
	rec_t *r = a ? calloc(1, sizeof *r) : NULL;
	if (!r)
		return NULL;
	r->aor = strdup(aor);
	r->peer = dup_or_empty(peer);
	r->call_id = strdup(g->call_id);
	r->local_tag = dup_or_empty(local_tag);
	r->remote_tag = dup_or_empty(initiator ? NULL : g->caller_tag);
	r->local_uri = dup_or_empty(local_uri);
	r->remote_uri = dup_or_empty(remote_uri);
	r->remote_target = dup_or_empty(remote_target);
	if (!r->aor || !r->peer || !r->call_id || !r->local_tag || !r->remote_tag || !r->local_uri ||
	    !r->remote_uri || !r->remote_target) {
		rec_free(r);
		return NULL;
	}
	snprintf(r->id, sizeof r->id, "d%" PRIx64, ++D.ids);
	r->group = g;
	r->owner = a;
	r->prev = a->tail;
	if (a->tail)
		a->tail->next = r;
	else
		a->head = r;
	a->tail = r;
	a->active++;
	r->pub.initiator = initiator;
	r->pub.cc_call = cc_call;
	r->pub.state = DLG_TRYING;
	r->pub.seq = ++D.seq;
	r->pub.created = now_s();
	r->deadline = r->pub.created + DLG_EARLY_MAX_S;
	rec_sync(r);
	D.records++;
	return r;
}

static void rec_unlink(rec_t *r)
{
	aor_node_t *a = r->owner;
	if (r->prev)
		r->prev->next = r->next;
	else
		a->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		a->tail = r->prev;
	if (r->pub.state != DLG_TERMINATED)
		a->active--;
	if (!a->head) {
		htable_remove(&D.aors, &a->node);
		free(a->aor);
		free(a);
	}
	D.records--;
	rec_free(r);
}

static void group_free(group_t *g)
{
	htable_remove(&D.groups, &g->node);
	for (unsigned i = 0; i < g->n; i++)
		rec_unlink(g->r[i]);
	free(g->call_id);
	free(g->caller_tag);
	free(g);
}

/* Moves r to state st if that is forward; announces the change. */
static void rec_move(rec_t *r, dlg_state_t st, const char *event, int code)
{
	if (!dlg_state_advance(r->pub.state, st))
		return;
	r->pub.state = st;
	/* The code of terminated is what ended it (none for BYE, timeout). */
	if (code || st == DLG_TERMINATED)
		r->pub.code = code;
	if (st == DLG_EARLY || st == DLG_PROCEEDING)
		r->pub.rang = true;
	int64_t now = now_s();
	if (st == DLG_CONFIRMED)
		r->deadline = now + DLG_CONFIRMED_MAX_S;
	if (st == DLG_TERMINATED) {
		r->pub.event = event;
		r->owner->active--;
		r->deadline = now + DLG_LINGER_S;
	}
	r->pub.seq = ++D.seq;
	announce(r);
}

static void set_str(char **dst, const char *v)
{
	if (!v || strcmp(*dst, v) == 0)
		return;
	char *c = strdup(v);
	if (c) {
		free(*dst);
		*dst = c;
	}
}

static char *uri_text(const osip_uri_t *u)
{
	char *s = NULL;
	if (!u || osip_uri_to_str(u, &s) != 0 || !s)
		return NULL;
	char *c = strdup(s);
	osip_free(s);
	return c;
}

static char *contact_text(const sipmsg_t *m)
{
	osip_contact_t *ct = osip_list_get(&m->m->contacts, 0);
	return ct ? uri_text(ct->url) : NULL;
}

/* --- hooks --------------------------------------------------------------- */

void dlg_track_invite(const sipmsg_t *req, const char *callee_aor, const char *caller_aor)
{
	const char *call_id = sipmsg_call_id(req), *tag = sipmsg_from_tag(req);
	if (!D.up || !call_id || !tag || !callee_aor)
		return;
	if (group_find(call_id, tag))
		return; /* the same call again (a second q group, a retransmission) */
	if (D.records + 2 > DLG_MAX_RECORDS) {
		LOGW(MOD, "%lu dialog records held: call %s not tracked", D.records, call_id);
		return;
	}
	group_t *g = calloc(1, sizeof *g);
	if (!g)
		return;
	g->call_id = strdup(call_id);
	g->caller_tag = strdup(tag);
	char *from = uri_text(req->m->from->url), *to = uri_text(req->m->to->url);
	char *contact = contact_text(req);
	osip_uri_param_t *m = NULL;
	bool cc_call = osip_uri_uparam_get_byname(req->m->req_uri, "m", &m) == 0 && m;
	if (!g->call_id || !g->caller_tag || !from || !to) {
		free(g->call_id);
		free(g->caller_tag);
		free(g);
		goto out;
	}
	htable_insert(&D.groups, &g->node, group_hash(call_id, tag));
	rec_t *callee = rec_new(g, callee_aor, caller_aor, false, NULL, to, from, contact, cc_call);
	if (callee)
		g->r[g->n++] = callee;
	rec_t *caller = caller_aor ? rec_new(g, caller_aor, callee_aor, true, tag, from, to, NULL, cc_call) : NULL;
	if (caller)
		g->r[g->n++] = caller;
	if (!g->n) {
		group_free(g);
		goto out;
	}
	for (unsigned i = 0; i < g->n; i++)
		announce(g->r[i]);
out:
	free(from);
	free(to);
	free(contact);
}

void dlg_track_response(const sipmsg_t *resp, int code)
{
	if (code <= 100 || code >= 300)
		return;
	group_t *g = group_find(sipmsg_call_id(resp), sipmsg_from_tag(resp));
	if (!g)
		return;
	const char *to_tag = sipmsg_to_tag(resp);
	char *contact = NULL;
	dlg_state_t st = code >= 200 ? DLG_CONFIRMED : to_tag ? DLG_EARLY : DLG_PROCEEDING;
	for (unsigned i = 0; i < g->n; i++) {
		rec_t *r = g->r[i];
		if (!dlg_state_advance(r->pub.state, st))
			continue;
		/* The callee's tag is the To tag; with forking, the branch that
		 * answered last (or the 2xx) names the dialog. */
		if (to_tag)
			set_str(r->pub.initiator ? &r->remote_tag : &r->local_tag, to_tag);
		/* The caller's remote target: the first Contact, then the 2xx's
		 * (serialising a URI is the dearest step here: only when needed). */
		if (r->pub.initiator && (!r->remote_target[0] || code >= 200)) {
			if (!contact)
				contact = contact_text(resp);
			if (contact)
				set_str(&r->remote_target, contact);
		}
		rec_sync(r);
		rec_move(r, st, NULL, code >= 200 ? code : 0);
	}
	free(contact);
}

void dlg_track_final(const sipmsg_t *req, int code, bool cancelled)
{
	group_t *g = req ? group_find(sipmsg_call_id(req), sipmsg_from_tag(req)) : NULL;
	if (!g)
		return;
	for (unsigned i = 0; i < g->n; i++)
		rec_move(g->r[i], DLG_TERMINATED, cancelled ? "cancelled" : "rejected", code);
}

void dlg_track_bye(const sipmsg_t *req)
{
	const char *call_id = sipmsg_call_id(req), *ft = sipmsg_from_tag(req), *tt = sipmsg_to_tag(req);
	/* From the caller: From tag = caller's tag; from the callee: To tag. */
	bool by_caller = true;
	group_t *g = group_find(call_id, ft);
	if (!g) {
		g = group_find(call_id, tt);
		by_caller = false;
	}
	if (!g)
		return;
	for (unsigned i = 0; i < g->n; i++) {
		rec_t *r = g->r[i];
		bool by_this_side = r->pub.initiator == by_caller;
		rec_move(r, DLG_TERMINATED, by_this_side ? "local-bye" : "remote-bye", 0);
	}
}

/* --- observers ----------------------------------------------------------- */

int dlg_on_change(dlg_change_cb cb, void *arg)
{
	if (D.nobs >= MAX_OBSERVERS)
		return -ENOSPC;
	D.obs[D.nobs].cb = cb;
	D.obs[D.nobs].arg = arg;
	D.nobs++;
	return 0;
}

void dlg_foreach(const char *aor, void (*fn)(const dlg_record_t *r, void *arg), void *arg)
{
	aor_node_t *a = aor ? aor_find(aor) : NULL;
	for (rec_t *r = a ? a->head : NULL; r; r = r->next)
		fn(&r->pub, arg);
}

unsigned dlg_active_count(const char *aor)
{
	aor_node_t *a = aor ? aor_find(aor) : NULL;
	return a ? a->active : 0;
}

unsigned long dlg_record_count(void) { return D.records; }

/* --- expiry -------------------------------------------------------------- */

static bool group_due(hnode_t *n, void *arg)
{
	const group_t *g = container_of(n, group_t, node);
	int64_t now = *(const int64_t *)arg;
	for (unsigned i = 0; i < g->n; i++) {
		if (g->r[i]->deadline <= now)
			return true;
	}
	return false;
}

static void on_tick(uv_timer_t *h)
{
	(void)h;
	int64_t now = now_s();
	size_t n = 0;
	hnode_t **due = htable_slice_collect(&D.groups, &D.cursor, 1024, group_due, &now, &n);
	for (size_t i = 0; i < n; i++) {
		group_t *g = container_of(due[i], group_t, node);
		bool gone = true;
		for (unsigned k = 0; k < g->n; k++) {
			rec_t *r = g->r[k];
			if (r->pub.state != DLG_TERMINATED && r->deadline <= now) {
				LOGI(MOD, "dialog %s of %s (%s) ended without BYE after its maximum life",
				     r->pub.call_id, r->pub.aor, dlg_state_name(r->pub.state));
				rec_move(r, DLG_TERMINATED, "timeout", 0);
			}
			if (r->pub.state != DLG_TERMINATED || r->deadline > now)
				gone = false;
		}
		if (gone)
			group_free(g);
	}
	free(due);
}

int dlg_init(uv_loop_t *loop)
{
	if (D.up)
		return 0;
	int nobs = D.nobs;
	int err = htable_init(&D.groups, 1024);
	if (err)
		return err;
	err = htable_init(&D.aors, 1024);
	if (err) {
		htable_destroy(&D.groups);
		return err;
	}
	D.nobs = nobs;
	uv_timer_init(loop, &D.timer);
	uv_timer_start(&D.timer, on_tick, 1000, 1000);
	D.up = true;
	return 0;
}

static void free_group_cb(hnode_t *n, void *arg)
{
	(void)arg;
	group_free(container_of(n, group_t, node));
}

void dlg_shutdown(void)
{
	if (!D.up)
		return;
	uv_timer_stop(&D.timer);
	uv_close((uv_handle_t *)&D.timer, NULL);
	htable_foreach(&D.groups, free_group_cb, NULL);
	htable_destroy(&D.groups);
	htable_destroy(&D.aors);
	D.up = false;
	D.records = 0;
	D.nobs = 0;
}
