/* The presence.winfo template package (RFC 3857) with
 * application/watcherinfo+xml bodies (RFC 3858): a presentity subscribes
 * to the list of its own watchers.  Only the presentity itself may
 * subscribe (self_only).
 *
 * The first NOTIFY (and the one after a refresh or a failed NOTIFY)
 * carries full state: every presence subscription to the resource.  Later
 * ones carry partial state: the watchers that appeared, changed state or
 * left since the previous NOTIFY (RFC 3858 §4.2).  The version is the
 * NOTIFY's CSeq minus one: it grows by one per document sent in the
 * dialog, starts at 0, and after a restart jumps (CSeq is reserved ahead),
 * which the first document after the restart -- full state -- makes
 * harmless. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "presence/pkgs.h"
#include "server/base/log.h"

static const char *const TYPES[] = {"application/watcherinfo+xml", NULL};

typedef struct change {
	char *id, *uri;
	const char *status, *event;
	int64_t created, expires_at;
} change_t;

typedef struct wdata {
	change_t *v;
	size_t n, cap;
} wdata_t;

void xml_escape(buf_t *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(out, "&amp;"); break;
		case '<': buf_puts(out, "&lt;"); break;
		case '>': buf_puts(out, "&gt;"); break;
		case '"': buf_puts(out, "&quot;"); break;
		case '\'': buf_puts(out, "&apos;"); break;
		default:
			/* Control characters XML 1.0 cannot carry are dropped. */
			if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n' || *s == '\r')
				buf_append(out, s, 1);
		}
	}
}

int winfo_format(const char *resource, const char *package, unsigned version, bool full,
		 const winfo_entry_t *e, size_t n, buf_t *out)
{
	buf_printf(out,
		   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"%u\" state=\"%s\">\n"
		   "  <watcher-list resource=\"",
		   version, full ? "full" : "partial");
	xml_escape(out, resource);
	buf_puts(out, "\" package=\"");
	xml_escape(out, package);
	buf_puts(out, "\">\n");
	for (size_t i = 0; i < n; i++) {
		buf_puts(out, "    <watcher id=\"");
		xml_escape(out, e[i].id);
		buf_printf(out, "\" event=\"%s\" status=\"%s\" duration-subscribed=\"%" PRId64 "\"",
			   e[i].event, e[i].status, e[i].duration < 0 ? 0 : e[i].duration);
		if (strcmp(e[i].status, "terminated") != 0)
			buf_printf(out, " expiration=\"%" PRId64 "\"", e[i].expiration < 0 ? 0 : e[i].expiration);
		buf_puts(out, ">");
		xml_escape(out, e[i].uri);
		buf_puts(out, "</watcher>\n");
	}
	buf_puts(out, "  </watcher-list>\n</watcherinfo>\n");
	return out->err;
}

static const char *status_of(const ev_sub_t *s)
{
	switch (ev_sub_state(s)) {
	case EV_STATE_ACTIVE: return "active";
	case EV_STATE_PENDING: return "pending";
	case EV_STATE_TERMINATED: return "terminated";
	}
	return "terminated";
}

static void wdata_clear(wdata_t *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].id);
		free(w->v[i].uri);
	}
	w->n = 0;
}

static void sub_free(ev_sub_t *sub, void *data)
{
	(void)sub;
	wdata_t *w = data;
	wdata_clear(w);
	free(w->v);
	free(w);
}

static wdata_t *wdata_of(ev_sub_t *winfo_sub)
{
	wdata_t *w = ev_sub_data(winfo_sub);
	if (!w) {
		w = calloc(1, sizeof *w);
		if (w)
			ev_sub_set_data(winfo_sub, w);
	}
	return w;
}

struct full {
	winfo_entry_t *v;
	size_t n, cap;
	int64_t now;
};

static void add_full(ev_sub_t *s, void *arg)
{
	struct full *f = arg;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		winfo_entry_t *p = realloc(f->v, cap * sizeof *p);
		if (!p)
			return;
		f->v = p;
		f->cap = cap;
	}
	winfo_entry_t *e = &f->v[f->n++];
	e->id = ev_sub_id(s);
	e->uri = ev_sub_watcher_uri(s);
	e->status = status_of(s);
	e->event = ev_sub_auth(s) == EV_AUTH_PENDING ? "subscribe" : "approved";
	e->duration = f->now - ev_sub_created(s);
	e->expiration = ev_sub_expires_at(s) - f->now;
}

static int body_for(ev_sub_t *sub, buf_t *out, const char **ctype)
{
	*ctype = TYPES[0];
	wdata_t *w = wdata_of(sub);
	unsigned version = ev_sub_cseq(sub) ? ev_sub_cseq(sub) - 1 : 0;
	int err;
	if (ev_sub_full_state(sub) || !w) {
		struct full f = {.now = (int64_t)time(NULL)};
		ev_foreach(pkg_presence.name, ev_sub_resource(sub), add_full, &f);
		err = winfo_format(ev_sub_resource(sub), pkg_presence.name, version, true, f.v, f.n, out);
		free(f.v);
	} else {
		winfo_entry_t *v = calloc(w->n ? w->n : 1, sizeof *v);
		if (!v)
			return -ENOMEM;
		int64_t now = (int64_t)time(NULL);
		for (size_t i = 0; i < w->n; i++) {
			v[i].id = w->v[i].id;
			v[i].uri = w->v[i].uri;
			v[i].status = w->v[i].status;
			v[i].event = w->v[i].event;
			v[i].duration = now - w->v[i].created;
			v[i].expiration = w->v[i].expires_at - now;
		}
		err = winfo_format(ev_sub_resource(sub), pkg_presence.name, version, false, v, w->n, out);
		free(v);
	}
	if (w)
		wdata_clear(w);
	return err;
}

/* A presence subscription changed: record it for every winfo subscriber
 * of that resource and queue their NOTIFYs. */
struct change_arg {
	ev_sub_t *watcher;
	const char *event;
};

static void record(ev_sub_t *winfo_sub, void *arg)
{
	struct change_arg *c = arg;
	if (ev_sub_state(winfo_sub) != EV_STATE_ACTIVE)
		return;
	wdata_t *w = wdata_of(winfo_sub);
	if (!w)
		return;
	change_t *slot = NULL;
	for (size_t i = 0; i < w->n; i++) {
		if (strcmp(w->v[i].id, ev_sub_id(c->watcher)) == 0)
			slot = &w->v[i];
	}
	if (!slot) {
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 8;
			change_t *p = realloc(w->v, cap * sizeof *p);
			if (!p)
				return;
			w->v = p;
			w->cap = cap;
		}
		slot = &w->v[w->n];
		memset(slot, 0, sizeof *slot);
		slot->id = strdup(ev_sub_id(c->watcher));
		slot->uri = strdup(ev_sub_watcher_uri(c->watcher));
		if (!slot->id || !slot->uri) {
			free(slot->id);
			free(slot->uri);
			return;
		}
		w->n++;
	}
	slot->status = status_of(c->watcher);
	/* RFC 3857 §3.3 events are a fixed set: keep the pointer static. */
	static const char *const EVENTS[] = {"subscribe", "approved", "deactivated", "probation",
					     "rejected", "timeout", "giveup", "noresource"};
	slot->event = "subscribe";
	for (size_t i = 0; i < sizeof EVENTS / sizeof EVENTS[0]; i++) {
		if (strcmp(EVENTS[i], c->event) == 0)
			slot->event = EVENTS[i];
	}
	slot->created = ev_sub_created(c->watcher);
	slot->expires_at = ev_sub_expires_at(c->watcher);
	ev_sub_schedule(winfo_sub);
}

static void on_subscription(void *arg, ev_sub_t *sub, const char *event)
{
	(void)arg;
	if (ev_sub_package(sub) != &pkg_presence)
		return;
	struct change_arg c = {sub, event};
	ev_foreach(pkg_winfo.name, ev_sub_resource(sub), record, &c);
}

const ev_package_t pkg_winfo = {
	.name = "presence.winfo",
	.notify_types = TYPES,
	.publish_types = NULL,
	.default_expires = 3600,
	.self_only = true,
	.authorize = NULL,
	.body_for = body_for,
	.sub_free = sub_free,
};

int pkg_winfo_init(void) { return ev_on_subscription(on_subscription, NULL); }
