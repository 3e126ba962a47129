/* Batched write-through (see pbatch.h). */
#include "presence/pbatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/log.h"
#include "server/db/db.h"

#define PB_MAX_ARRAYS 24

typedef struct pb_ctx {
	pbatch_t *b;
	pb_set_t set;
} pb_ctx_t;

static void set_reset(pb_set_t *s)
{
	memset(s, 0, sizeof *s);
	s->wtail = &s->waiters;
}

void pb_init(pbatch_t *b, const pb_ops_t *ops, const char *what, size_t max_pending)
{
	memset(b, 0, sizeof *b);
	b->ops = ops;
	b->what = what;
	b->max_pending = max_pending;
	set_reset(&b->next);
}

int pb_mark(pbatch_t *b, void *item)
{
	if (b->next.n == b->next.cap) {
		size_t cap = b->next.cap ? b->next.cap * 2 : 64;
		void **p = realloc(b->next.items, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		b->next.items = p;
		b->next.cap = cap;
	}
	b->next.items[b->next.n++] = item;
	return 0;
}

int pb_commit(pbatch_t *b, pb_commit_cb cb, void *arg)
{
	pb_waiter_t *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	*b->next.wtail = w;
	b->next.wtail = &w->next;
	return 0;
}

bool pb_overloaded(const pbatch_t *b)
{
	size_t pending = b->next.n + (b->inflight ? b->inflight->n : 0);
	return b->max_pending && pending >= b->max_pending;
}

bool pb_idle(const pbatch_t *b) { return !b->inflight && !b->next.n && !b->next.waiters; }

static void finish(pbatch_t *b, pb_set_t *s, int err)
{
	for (size_t i = 0; i < s->n; i++)
		b->ops->done(s->items[i], err);
	free(s->items);
	pb_waiter_t *w = s->waiters;
	while (w) {
		pb_waiter_t *next = w->next;
		w->cb(w->arg, err);
		free(w);
		w = next;
	}
}

static void batch_done(void *arg, int err, PGresult *res)
{
	pb_ctx_t *c = arg;
	pbatch_t *b = c->b;
	if (err)
		LOGW("presence", "writing %zu %s row(s) failed (%d%s%s); answering 503", c->set.n, b->what,
		     err, res ? ": " : "", res ? PQresultErrorMessage(res) : "");
	b->inflight = NULL;
	finish(b, &c->set, err);
	free(c);
}

void pb_flush(pbatch_t *b)
{
	if (b->inflight || (!b->next.n && !b->next.waiters))
		return;
	pb_ctx_t *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->b = b;
	c->set = b->next;
	if (!c->set.waiters)
		c->set.wtail = &c->set.waiters;
	set_reset(&b->next);
	for (size_t i = 0; i < c->set.n; i++)
		b->ops->taken(c->set.items[i]);
	if (!c->set.n) {
		finish(b, &c->set, 0);
		free(c);
		return;
	}
	int na = b->ops->narrays;
	buf_t arr[PB_MAX_ARRAYS];
	const char *params[PB_MAX_ARRAYS];
	for (int i = 0; i < na; i++) {
		buf_init(&arr[i], 0);
		db_array_begin(&arr[i]);
	}
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; i < c->set.n; i++)
		b->ops->add_row(c->set.items[i], arr, now);
	int err = 0;
	for (int i = 0; i < na; i++) {
		db_array_end(&arr[i]);
		if (arr[i].err)
			err = arr[i].err;
		params[i] = buf_cstr(&arr[i]);
	}
	if (!err)
		err = db_exec(b->ops->stmt, na, params, batch_done, c);
	for (int i = 0; i < na; i++)
		buf_free(&arr[i]);
	if (err) {
		LOGW("presence", "cannot write %zu %s row(s): %s", c->set.n, b->what,
		     err == -ENOTCONN ? "database unavailable" : strerror(-err));
		finish(b, &c->set, err);
		free(c);
		return;
	}
	b->inflight = &c->set;
}

void pb_shutdown(pbatch_t *b)
{
	/* A waiter may mark new rows while it is told: repeat until empty. */
	for (int round = 0; round < 8 && (b->next.n || b->next.waiters); round++) {
		pb_set_t s = b->next;
		if (!s.waiters)
			s.wtail = &s.waiters;
		set_reset(&b->next);
		for (size_t i = 0; i < s.n; i++)
			b->ops->taken(s.items[i]);
		finish(b, &s, -ECANCELED);
	}
}
