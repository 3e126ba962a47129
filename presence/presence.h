/* The presence server: the RFC 6665 event framework (event.h), RFC 3903
 * publications (publish.h), the presence and presence.winfo packages and
 * the authorization rules (rules.h), started and stopped as one module.
 *
 * Wiring (server/server.c), in this order:
 *   start:  after loc_init and authn_init, before the listeners open:
 *           presence_init(loop, &opts)  -- registers SUBSCRIBE and PUBLISH
 *           with the router, the events in Allow-Events, the types in
 *           Accept, loads publications and subscriptions (synchronously,
 *           like loc_init) and LISTENs on 'simpled_rules'.
 *   stop:   presence_stop() just before db_shutdown(), so the last writes
 *           are queued and committed; presence_shutdown() after
 *           txn_shutdown() (client transactions report to it) and before
 *           loc_shutdown(). */
#ifndef SD_PRESENCE_H
#define SD_PRESENCE_H

#include <stdbool.h>
#include <uv.h>

typedef struct presence_options {
	const char *conninfo;          /* for the start-up load (synchronous) */
	unsigned min_expires;          /* SUBSCRIBE and PUBLISH: shorter -> 423 (default 60) */
	unsigned max_expires;          /* longer are capped (default 3600) */
	unsigned default_expires;      /* PUBLISH without Expires (default 3600) */
	unsigned max_subscriptions_per_watcher;   /* default 200; beyond -> 403 */
	unsigned max_publications_per_presentity; /* default 16; beyond -> 403 */
	const char *default_policy;    /* watchers without a rule: "allow" (default) or "pending" */
	unsigned retry_after;          /* Retry-After of 503 (default 5) */
	bool auth;                     /* authenticate local users (authn_check, 407); also
					* governed by authn's own enabled flag */
	bool (*is_local_domain)(const char *host);
	unsigned notify_interval_ms;   /* NOTIFY rate control per dialog; 0 = per loop turn */
	const char *node_name;
	const char *advertised_host;   /* host in our Via/Contact; NULL = listener address */
	unsigned cc_queue_expires;     /* call-completion queue entry lifetime, s (default 3600) */
} presence_options_t;

/* Returns 0 or -errno (logged). */
int presence_init(uv_loop_t *loop, const presence_options_t *opts);
void presence_stop(void);
void presence_shutdown(void);

#endif
