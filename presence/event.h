/* The RFC 6665 event framework: SUBSCRIBE handling, subscription dialogs,
 * the NOTIFY queue with rate control, and their persistence in
 * PostgreSQL (table presence_subscriptions, schema/002_presence.sql).
 *
 * The framework knows event packages only through a table of callbacks
 * (ev_package_t).  Adding a package (message-summary, dialog,
 * call-completion) is one pkg_*.c file defining its table and one
 * ev_register_package() call in presence.c.
 *
 *   subscriber                  simpled
 *      |--- SUBSCRIBE ------------>|  489/406/423/403/481 checks, authn (407)
 *      |                           |  row written (batched), commit
 *      |<-- 200 (Expires, Contact)-|  to-tag = txn_to_tag(): the dialog
 *      |<-- NOTIFY (current state)-|  own client transaction per NOTIFY
 *      |--- 200 ------------------>|
 *      |        ... state changes: one NOTIFY per watcher per loop turn,
 *      |        coalesced while one is outstanding ...
 *      |--- SUBSCRIBE Expires: 0 ->|
 *      |<-- 200 -------------------|
 *      |<-- NOTIFY terminated -----|  Subscription-State: terminated;reason=timeout
 *
 * Ownership: a subscription (ev_sub_t) is reference counted; callbacks
 * receive borrowed pointers valid for the duration of the call. */
#ifndef SD_EVENT_H
#define SD_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "server/base/buf.h"
#include "server/sip/txn.h"

/* What a package's authorize() decides for a watcher (RFC 3856 §6.6,
 * RFC 5025 sub-handling). */
typedef enum ev_auth {
	EV_AUTH_ALLOW = 0, /* active, real state */
	EV_AUTH_BLOCK,     /* SUBSCRIBE -> 403; existing -> terminated;reason=rejected */
	EV_AUTH_POLITE,    /* active, but a neutral (closed) document */
	EV_AUTH_PENDING,   /* Subscription-State: pending, no state */
} ev_auth_t;

typedef enum ev_state {
	EV_STATE_PENDING = 0,
	EV_STATE_ACTIVE,
	EV_STATE_TERMINATED,
} ev_state_t;

typedef struct ev_sub ev_sub_t;

typedef struct ev_package {
	const char *name;                 /* Event token, e.g. "presence" */
	const char *const *notify_types;  /* NULL-terminated; [0] is what body_for produces */
	const char *const *publish_types; /* NULL-terminated, or NULL: no PUBLISH */
	unsigned default_expires;         /* SUBSCRIBE without Expires */
	bool self_only;                   /* only the resource itself may subscribe */
	/* Decides for watcher -> resource (both AORs).  NULL = always allow.
	 * The framework calls it for new subscriptions and on
	 * ev_reauthorize(). */
	ev_auth_t (*authorize)(const char *watcher, const char *resource);
	/* Appends the body of the NOTIFY being built for sub (which is
	 * active or terminating with state) and sets *ctype (static).  An
	 * empty out means "no body".  Returns 0 or -errno (NOTIFY sent
	 * without a body). */
	int (*body_for)(ev_sub_t *sub, buf_t *out, const char **ctype);
	/* Validates a PUBLISH body for resource.  Returns 0, or a SIP status
	 * (400, 403, 413, 415) with a short reason in why. */
	int (*on_publish)(const char *resource, const char *ctype, const char *body, size_t len,
			  char *why, size_t whylen);
	/* The state of resource changed (publication, registration): drop
	 * cached documents.  May be NULL. */
	void (*changed)(const char *resource);
	/* Frees the package data of a subscription (ev_sub_set_data).  May be
	 * NULL. */
	void (*sub_free)(ev_sub_t *sub, void *data);
	/* True while a change of resource is applied in memory but not yet
	 * committed: its NOTIFYs wait, so a watcher never sees state that a
	 * 503 later takes back.  The package calls ev_resource_changed() when
	 * the resource settles.  May be NULL. */
	bool (*hold_notify)(const char *resource);
	/* PUBLISHes come from watchers, not from the resource (RFC 6910 §7:
	 * the caller suspends its own call-completion request at the
	 * callee): the authenticated user must be the From user, and
	 * on_publish_by (instead of on_publish) gets the publisher's AOR. */
	bool publish_by_watcher;
	int (*on_publish_by)(const char *publisher, const char *resource, const char *ctype,
			     const char *body, size_t len, char *why, size_t whylen);
	/* Extra header lines ("Require: eventlist\r\n") for this package's
	 * NOTIFYs and its 200s to SUBSCRIBE, or NULL. */
	const char *extra_headers;
} ev_package_t;

typedef struct ev_options {
	unsigned min_expires, max_expires;
	unsigned max_subs_per_watcher; /* 0 = unlimited */
	unsigned retry_after;
	unsigned notify_interval_ms;   /* min gap between NOTIFYs of one dialog; 0 = one per loop turn */
	unsigned notify_max_failures;  /* consecutive 408/timeouts that end a subscription */
	bool auth;                     /* authenticate local watchers (with authn enabled) */
	bool (*is_local_domain)(const char *host);
	const char *node_name;
	const char *advertised_host;   /* Via/Contact host; NULL = the listener address */
} ev_options_t;

/* Loads unexpired subscriptions with a synchronous query (start-up only,
 * before the loop serves; packages must be registered first) and starts
 * the NOTIFY and persistence machinery.  Returns 0 or -errno. */
int ev_init(uv_loop_t *loop, const ev_options_t *opts, const char *conninfo);
/* Stop sending NOTIFYs and queue the last writes (call before
 * db_shutdown, so they are committed). */
void ev_stop(void);
/* Frees everything (after txn_shutdown). */
void ev_shutdown(void);

/* Registers a package (borrowed; must outlive the module).  Adds it to
 * Allow-Events and its types to Accept.  Returns 0, -EEXIST, -ENOSPC. */
int ev_register_package(const ev_package_t *pkg);
const ev_package_t *ev_find_package(const char *name);

/* Router handler for SUBSCRIBE. */
void ev_handle_subscribe(txn_t *t, sipmsg_t *req);

/* The state of (pkg, resource) changed: pkg->changed(resource), then one
 * NOTIFY to each of its active subscriptions at the end of this loop
 * turn (or when the outstanding one completes). */
void ev_resource_changed(const ev_package_t *pkg, const char *resource);
/* Re-runs authorize() for every subscription to resource (rules
 * changed) and applies the differences at once. */
void ev_reauthorize(const char *resource);

/* Calls fn for every live subscription of package pkg_name to resource. */
void ev_foreach(const char *pkg_name, const char *resource, void (*fn)(ev_sub_t *sub, void *arg),
		void *arg);

/* Resource lists (RFC 4662, presence/rls.c): for an initial SUBSCRIBE of
 * package pkg (and for every stored subscription at start-up) the
 * resolver says whether resource names a list service; if so it returns
 * the package that serves list subscriptions (same event name), which the
 * subscription then uses.  SUBSCRIBEs to a list without "Supported:
 * eventlist" are answered 421.  One resolver; NULL removes it. */
typedef const ev_package_t *(*ev_list_resolver)(const ev_package_t *pkg, const char *resource);
void ev_set_list_resolver(ev_list_resolver fn);

/* Observers of state changes: called at the end of ev_resource_changed()
 * (pkg as given) and of ev_reauthorize() (pkg NULL: rules changed), so a
 * list service can follow the resources it aggregates.  At most 4. */
typedef void (*ev_change_cb)(void *arg, const ev_package_t *pkg, const char *resource);
int ev_on_resource_change(ev_change_cb cb, void *arg);

/* Observers of subscription life (presence.winfo): called when a
 * subscription is created, changes state, or ends.  event is the RFC
 * 3857 §3.3 watcher event ("subscribe", "approved", "deactivated",
 * "timeout", "rejected", "giveup", "noresource").  At most 4. */
typedef void (*ev_watch_cb)(void *arg, ev_sub_t *sub, const char *event);
int ev_on_subscription(ev_watch_cb cb, void *arg);

/* Ends a subscription from the package's side (RFC 6665 §4.2.2: the
 * notifier terminates it); the last NOTIFY says terminated;reason=reason
 * (a static string, e.g. "noresource", "timeout"). */
void ev_sub_end(ev_sub_t *sub, const char *reason);

/* Queues a NOTIFY for one subscription (package data changed). */
void ev_sub_schedule(ev_sub_t *sub);

/* Accessors (borrowed strings, valid while the subscription lives). */
const ev_package_t *ev_sub_package(const ev_sub_t *s);
const char *ev_sub_id(const ev_sub_t *s);
const char *ev_sub_resource(const ev_sub_t *s);
const char *ev_sub_watcher(const ev_sub_t *s);
/* The watcher's URI as it appeared in From (for winfo). */
const char *ev_sub_watcher_uri(const ev_sub_t *s);
ev_state_t ev_sub_state(const ev_sub_t *s);
ev_auth_t ev_sub_auth(const ev_sub_t *s);
/* Reason of a terminated subscription ("timeout", ...), or NULL. */
const char *ev_sub_reason(const ev_sub_t *s);
/* CSeq of the NOTIFY being built (inside body_for: the version of a
 * winfo document). */
uint32_t ev_sub_cseq(const ev_sub_t *s);
/* Whether the NOTIFY being built must carry full state (first NOTIFY,
 * refresh, or after a NOTIFY that failed). */
bool ev_sub_full_state(const ev_sub_t *s);
int64_t ev_sub_created(const ev_sub_t *s);
int64_t ev_sub_expires_at(const ev_sub_t *s);
void *ev_sub_data(const ev_sub_t *s);
void ev_sub_set_data(ev_sub_t *s, void *data);

/* --- pure helpers (unit-tested) ---------------------------------------- */

/* Appends the Subscription-State value (RFC 6665 §8.2.3):
 * "active;expires=N", "pending;expires=N", "terminated;reason=R". */
int ev_format_substate(ev_state_t st, const char *reason, int64_t expires_in, buf_t *out);

/* Parses an Event header value: the package token (lower-cased) into
 * pkg and the id parameter (or "") into id.  Returns 0 or -EINVAL. */
int ev_parse_event(const char *value, char *pkg, size_t pkglen, char *id, size_t idlen);

/* Whether one Accept header value (a comma-separated list, possibly with
 * parameters and wildcards) admits mime. */
bool ev_accept_allows(const char *accept_value, const char *mime);

/* The RFC 3857 watcher event for a state change. */
const char *ev_auth_name(ev_auth_t a);

#endif
