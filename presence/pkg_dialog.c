/* The dialog event package (RFC 4235): busy lamps.  A watcher subscribes
 * to a user's AOR and gets application/dialog-info+xml documents about
 * the calls the proxy routes for that user (server/proxy/dlgtrack.h).
 *
 *   watcher               simpled (proxy + presence)            bob
 *     |-- SUBSCRIBE bob --->|  rules (as presence): 403 when blocked
 *     |<-- 200, NOTIFY -----|  version 0, state="full": bob's dialogs now
 *     |        alice --INVITE--> proxy --INVITE--------------------->|
 *     |<-- NOTIFY ----------|  partial: <dialog ...><state>trying</state>
 *     |                     |<-------------------------- 180 (To tag)|
 *     |<-- NOTIFY ----------|  partial: early
 *     |        ... 200: confirmed, BYE: terminated ...
 *
 * Versions: the NOTIFY's CSeq minus one, like presence.winfo: it grows by
 * one per document in the dialog and, since the framework persists a
 * CSeq mark reserved ahead and resumes past it after a restart, never
 * goes back -- the first document after a restart is full state anyway.
 *
 * Order: the proxy's records only move forward (dlg_state_advance) and
 * number every change with one growing sequence; each subscription keeps
 * the changes since its last NOTIFY, one per dialog, and replaces a held
 * change only by one with a higher sequence, so a late "early" can never
 * overwrite "terminated" whatever order callbacks and NOTIFYs take.  Full
 * state lists the dialogs that are not terminated; partial state lists
 * every dialog that changed, terminated ones included (RFC 4235 §4.1).
 *
 * Authorization: the presence rules (rules_eval), as for presence: block
 * gets 403, polite-block an empty full document, pending no body. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pkgs.h"
#include "presence/rules.h"
#include "server/base/log.h"
#include "server/proxy/dlgtrack.h"

static const char *const TYPES[] = {"application/dialog-info+xml", NULL};

/* --- the document (pure) ------------------------------------------------- */

static void attr(buf_t *out, const char *name, const char *v)
{
	if (!v || !*v)
		return;
	buf_printf(out, " %s=\"", name);
	xml_escape(out, v);
	buf_puts(out, "\"");
}

static void party(buf_t *out, const char *elem, const char *identity, const char *target)
{
	buf_printf(out, "    <%s>\n", elem);
	if (identity && *identity) {
		buf_puts(out, "      <identity>");
		xml_escape(out, identity);
		buf_puts(out, "</identity>\n");
	}
	if (target && *target) {
		buf_puts(out, "      <target");
		attr(out, "uri", target);
		buf_puts(out, "/>\n");
	}
	buf_printf(out, "    </%s>\n", elem);
}

int dialoginfo_format(const char *entity, unsigned version, bool full, const dlg_record_t *d, size_t n,
		      buf_t *out)
{
	buf_printf(out,
		   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"%u\" state=\"%s\"",
		   version, full ? "full" : "partial");
	attr(out, "entity", entity);
	buf_puts(out, ">\n");
	for (size_t i = 0; i < n; i++) {
		const dlg_record_t *r = &d[i];
		buf_puts(out, "  <dialog");
		attr(out, "id", r->id);
		/* §4.1.1: call-id and local-tag identify the dialog once our
		 * side's tag is known; remote-tag once the other side's is. */
		if (r->local_tag && *r->local_tag) {
			attr(out, "call-id", r->call_id);
			attr(out, "local-tag", r->local_tag);
			attr(out, "remote-tag", r->remote_tag);
		}
		buf_printf(out, " direction=\"%s\">\n", r->initiator ? "initiator" : "recipient");
		buf_puts(out, "    <state");
		if (r->state == DLG_TERMINATED && r->event)
			attr(out, "event", r->event);
		if (r->code >= 100 && r->code < 700 && (r->state == DLG_TERMINATED || r->state == DLG_CONFIRMED))
			buf_printf(out, " code=\"%d\"", r->code);
		buf_printf(out, ">%s</state>\n", dlg_state_name(r->state));
		party(out, "local", r->local_uri, NULL);
		party(out, "remote", r->remote_uri, r->remote_target);
		buf_puts(out, "  </dialog>\n");
	}
	buf_puts(out, "</dialog-info>\n");
	return out->err;
}

/* --- held changes -------------------------------------------------------- */

static void rec_clear(dlg_record_t *r)
{
	free((char *)r->id);
	free((char *)r->aor);
	free((char *)r->peer_aor);
	free((char *)r->call_id);
	free((char *)r->local_tag);
	free((char *)r->remote_tag);
	free((char *)r->local_uri);
	free((char *)r->remote_uri);
	free((char *)r->remote_target);
	memset(r, 0, sizeof *r);
}

/* A deep copy; event is one of dlgtrack's static strings. */
static int rec_copy(dlg_record_t *dst, const dlg_record_t *src)
{
	*dst = *src;
	dst->id = strdup(src->id);
	dst->aor = strdup(src->aor);
	dst->peer_aor = strdup(src->peer_aor);
	dst->call_id = strdup(src->call_id);
	dst->local_tag = strdup(src->local_tag);
	dst->remote_tag = strdup(src->remote_tag);
	dst->local_uri = strdup(src->local_uri);
	dst->remote_uri = strdup(src->remote_uri);
	dst->remote_target = strdup(src->remote_target);
	if (!dst->id || !dst->aor || !dst->peer_aor || !dst->call_id || !dst->local_tag || !dst->remote_tag ||
	    !dst->local_uri || !dst->remote_uri || !dst->remote_target) {
		rec_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

/* Keeps the newest change per dialog: a change with a sequence not above
 * the held one is older news and is dropped.  Returns 1 when held, 0 when
 * dropped, -ENOMEM. */
int dialog_pending_merge(pending_t *p, const dlg_record_t *r)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->v[i].id, r->id) != 0)
			continue;
		if (r->seq <= p->v[i].seq)
			return 0;
		dlg_record_t c;
		if (rec_copy(&c, r) != 0)
			return -ENOMEM;
		rec_clear(&p->v[i]);
		p->v[i] = c;
		return 1;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 4;
		dlg_record_t *v = realloc(p->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	if (rec_copy(&p->v[p->n], r) != 0)
		return -ENOMEM;
	p->n++;
	return 1;
}

void dialog_pending_clear(pending_t *p)
{
	for (size_t i = 0; i < p->n; i++)
		rec_clear(&p->v[i]);
	p->n = 0;
}

static void sub_free(ev_sub_t *sub, void *data)
{
	(void)sub;
	pending_t *p = data;
	dialog_pending_clear(p);
	free(p->v);
	free(p);
}

static pending_t *pending_of(ev_sub_t *sub)
{
	pending_t *p = ev_sub_data(sub);
	if (!p && (p = calloc(1, sizeof *p)) != NULL)
		ev_sub_set_data(sub, p);
	return p;
}

/* --- the package --------------------------------------------------------- */

struct live {
	dlg_record_t *v;
	size_t n, cap;
};

static void add_live(const dlg_record_t *r, void *arg)
{
	struct live *l = arg;
	if (r->state == DLG_TERMINATED)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		dlg_record_t *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *r; /* borrowed: formatted before anything changes */
}

static int body_for(ev_sub_t *sub, buf_t *out, const char **ctype)
{
	*ctype = TYPES[0];
	const char *aor = ev_sub_resource(sub);
	unsigned version = ev_sub_cseq(sub) ? ev_sub_cseq(sub) - 1 : 0;
	pending_t *p = pending_of(sub);
	int err;
	if (ev_sub_auth(sub) == EV_AUTH_POLITE) {
		err = dialoginfo_format(aor, version, true, NULL, 0, out);
	} else if (ev_sub_full_state(sub) || !p) {
		struct live l = {0};
		dlg_foreach(aor, add_live, &l);
		err = dialoginfo_format(aor, version, true, l.v, l.n, out);
		free(l.v);
	} else {
		err = dialoginfo_format(aor, version, false, p->v, p->n, out);
	}
	if (p)
		dialog_pending_clear(p);
	return err;
}

static void hold_change(ev_sub_t *sub, void *arg)
{
	if (ev_sub_state(sub) != EV_STATE_ACTIVE || ev_sub_auth(sub) == EV_AUTH_POLITE)
		return;
	pending_t *p = pending_of(sub);
	if (p && dialog_pending_merge(p, arg) > 0)
		ev_sub_schedule(sub);
}

static void on_dialog(void *arg, const dlg_record_t *r)
{
	(void)arg;
	ev_foreach(pkg_dialog.name, r->aor, hold_change, (void *)r);
}

static ev_auth_t authorize(const char *watcher, const char *resource)
{
	return rules_eval(resource, watcher);
}

const ev_package_t pkg_dialog = {
	.name = "dialog",
	.notify_types = TYPES,
	.publish_types = NULL,
	.default_expires = 3600,
	.self_only = false,
	.authorize = authorize,
	.body_for = body_for,
	.sub_free = sub_free,
};

int pkg_dialog_init(void)
{
	int err = ev_register_package(&pkg_dialog);
	if (!err)
		err = dlg_on_change(on_dialog, NULL);
	if (err)
		LOGE("presence", "dialog package: initialisation failed (%d)", err);
	return err;
}
