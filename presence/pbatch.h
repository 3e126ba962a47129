/* Private to presence/: batched write-through to PostgreSQL, the pattern
 * of server/registrar/location.c made reusable for subscriptions and
 * publications.
 *
 * Objects changed in memory are marked (pb_mark); once per loop turn the
 * owner calls pb_flush(), which writes every marked object in ONE
 * statement (the rows are built from whatever memory holds at that
 * moment, so coalescing is free) and answers the waiters of that batch
 * (pb_commit) when it commits.  Only one batch is in flight at a time, so
 * two writes of the same row never commit out of order; the next batch
 * grows meanwhile. */
#ifndef SD_PBATCH_H
#define SD_PBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/buf.h"

typedef void (*pb_commit_cb)(void *arg, int err);

typedef struct pb_ops {
	const char *stmt;  /* prepared statement taking narrays array parameters */
	int narrays;
	/* The object leaves the "next" batch (clear its marked flag). */
	void (*taken)(void *item);
	/* Appends the object's row (db_array_add on the arrays it uses). */
	void (*add_row)(void *item, buf_t *arrays, int64_t now);
	/* The batch holding the object finished (err 0 or -errno): drop the
	 * reference pb_mark's caller gave. */
	void (*done)(void *item, int err);
} pb_ops_t;

typedef struct pb_waiter {
	struct pb_waiter *next;
	pb_commit_cb cb;
	void *arg;
} pb_waiter_t;

typedef struct pb_set {
	void **items;
	size_t n, cap;
	pb_waiter_t *waiters, **wtail;
} pb_set_t;

typedef struct pbatch {
	const pb_ops_t *ops;
	const char *what;
	size_t max_pending;
	pb_set_t next;
	pb_set_t *inflight;
} pbatch_t;

void pb_init(pbatch_t *b, const pb_ops_t *ops, const char *what, size_t max_pending);
/* Adds item (the caller holds a reference for the batch and guarantees
 * it is not in the next batch yet).  Returns 0 or -ENOMEM. */
int pb_mark(pbatch_t *b, void *item);
/* cb runs once, from the loop, when everything marked so far committed
 * (0) or failed.  Returns 0 or -ENOMEM (cb never runs). */
int pb_commit(pbatch_t *b, pb_commit_cb cb, void *arg);
/* Sends the next batch unless one is in flight. */
void pb_flush(pbatch_t *b);
bool pb_overloaded(const pbatch_t *b);
bool pb_idle(const pbatch_t *b);
/* Fails waiters with -ECANCELED and releases items (shutdown). */
void pb_shutdown(pbatch_t *b);

#endif
