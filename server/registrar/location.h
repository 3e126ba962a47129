/* Location service (RFC 3261 §10): the bindings of every address-of-record
 * in memory, written through to PostgreSQL in batches.
 *
 * Memory is the hot copy and PostgreSQL the durable truth.  Changes are
 * applied to memory at once (so a second REGISTER in the same loop turn
 * sees the first) and marked dirty; once per loop turn, just before the
 * loop sleeps, every dirty (aor, contact) is written in ONE statement
 * (upserts and deletes through unnest arrays) and the waiters of that
 * batch are answered when it commits.  Only one batch is in flight at a
 * time, so writes to the same row can never commit out of order; a batch
 * simply grows while the previous one commits.  Coalescing is free: a
 * dirty key is written with whatever memory holds at flush time.
 *
 * If a batch fails, its waiters get the error (503) and the affected AORs
 * are reloaded from the database, so memory never keeps what the database
 * refused. */
#ifndef SD_LOCATION_H
#define SD_LOCATION_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "server/base/htable.h"
#include "server/transport/tp.h"

typedef struct loc_binding {
	struct loc_binding *next;
	char *contact;      /* the Contact URI as registered */
	int64_t expires_at; /* absolute, seconds since the epoch */
	float q;            /* 0..1; 1 when the contact gave none */
	char *call_id;
	uint32_t cseq;
	tp_peer_t source;   /* where the REGISTER came from (TCP: its connection) */
	char *user_agent;   /* may be NULL */
	char *instance;     /* +sip.instance, may be NULL */
	char *path;         /* Path header values joined by ", ", may be NULL */
	int64_t updated_at;
} loc_binding_t;

typedef struct loc_aor {
	hnode_t node;
	char *aor;
	loc_binding_t *bindings; /* ordered by q descending, then newest first */
	unsigned count;
} loc_aor_t;

typedef struct loc_options {
	const char *node_name;
	unsigned max_pending;    /* dirty rows beyond which writes are refused (-EAGAIN) */
} loc_options_t;

/* Loads every unexpired binding with a synchronous query (start-up only,
 * before the loop serves) and starts the flush and expiry machinery. */
int loc_init(uv_loop_t *loop, const loc_options_t *opts, const char *conninfo);
void loc_shutdown(void);

/* Bindings of an AOR (borrowed, valid until the next change), or NULL. */
const loc_aor_t *loc_find(const char *aor);

/* Inserts or replaces the binding (aor, b->contact).  Takes ownership of
 * b.  Marks the row dirty. */
int loc_put(const char *aor, loc_binding_t *b);
/* Removes a binding; marks the row dirty.  Returns 0 or -ENOENT. */
int loc_remove(const char *aor, const char *contact);

/* Called when the current batch (holding every change made so far)
 * commits (err 0) or fails (negative errno).  Called exactly once, from
 * the loop, never from inside loc_commit. Returns 0 or -EAGAIN when too
 * many writes are pending (cb never runs). */
typedef void (*loc_commit_cb)(void *arg, int err);
int loc_commit(loc_commit_cb cb, void *arg);
/* Whether a new write would be refused right now. */
bool loc_overloaded(void);

/* Announces binding changes (registration, removal, expiry, reload) to
 * other modules: presence shows registered users as open, messaging
 * delivers stored messages on registration.  `now` is NULL when the AOR
 * has no bindings left.  Called after the change is in memory; for a
 * REGISTER, after it committed. */
typedef void (*loc_change_cb)(void *arg, const char *aor, const loc_aor_t *now);
int loc_on_change(loc_change_cb cb, void *arg);
/* Announces a change (the registrar calls it once its batch committed). */
void loc_announce(const char *aor);

void loc_binding_free(loc_binding_t *b);

/* Counts for logs and benchmarks. */
unsigned long loc_aor_count(void);
unsigned long loc_binding_count(void);

/* "udp:1.2.3.4:5060" / "tcp:[::1]:5070" <-> tp_peer_t */
int loc_source_format(const tp_peer_t *p, char *out, size_t len);
int loc_source_parse(const char *s, tp_peer_t *out);

#endif
