/* Instant messages (RFC 3428 MESSAGE) for local users, with store and
 * forward for recipients that are offline, and mailbox counts for the
 * message-summary event package (RFC 3842).
 *
 *   sender --MESSAGE--> simpled --MESSAGE (our Via on top)--> every contact
 *          <--200------          <--200 (first 2xx wins)----
 *
 *   no contact, or every contact failed (408, 480, 5xx, transport):
 *   sender --MESSAGE--> simpled --INSERT (batched)--> PostgreSQL
 *          <--202------ (after the commit)
 *   REGISTER committed (loc_on_change): stored messages go out in arrival
 *   order, each a new MESSAGE with the original From and Date; a row is
 *   deleted only after a contact answered 2xx.
 *
 * Everything runs on the loop; see docs/ARCHITECTURE.md "Messaging". */
#ifndef SD_MESSAGING_H
#define SD_MESSAGING_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "server/sip/txn.h"

typedef struct msg_options {
	uv_loop_t *loop;
	const char *conninfo;        /* start-up only: the synchronous mailbox count load */
	const char *node_name;
	size_t max_size;             /* body bytes; 0 = 65536; larger -> 413 */
	bool relay;                  /* MESSAGE to other domains: forwarded (numeric hosts) or 403 */
	unsigned store_ttl_s;        /* 0 = 7 days */
	unsigned retry_after_s;      /* Retry-After of a 503 */
	unsigned deliver_window;     /* stored messages in flight per user; 0 = 1 (strict order) */
	unsigned fork_timeout_ms;    /* give up on silent contacts (store); 0 = 4000 */
	bool (*is_local_domain)(const char *host);
	bool (*is_local_address)(const char *host);
	const char *default_domain;  /* for Request-URIs naming one of our addresses */
} msg_options_t;

/* Prepares statements, loads the mailbox counts (synchronously: start-up
 * only), registers with the location service and LISTENs on channel
 * simpled_messages (simplectl announces purges there).  Returns 0 or
 * -errno.  The caller adds the router row: router_add("MESSAGE",
 * msg_handle_message). */
int msg_init(const msg_options_t *opts);

/* Closes the timers; requests in flight are dropped quietly (their
 * server transactions end with the transaction layer).  Call before
 * txn_shutdown(). */
void msg_shutdown(void);

/* The router callback for MESSAGE. */
void msg_handle_message(txn_t *t, sipmsg_t *req);

/* Stored (not yet delivered) messages of an AOR ("sip:user@domain"):
 * *new_count; *old_count is always 0 (a delivered message is deleted).
 * Returns 0, or -ENOENT when there are none (both set to 0). */
int msg_mailbox_count(const char *aor, unsigned *new_count, unsigned *old_count);

/* Called after the count of an AOR changed (a stored message committed,
 * was delivered, expired or was purged).  At most 8 callbacks. */
typedef void (*msg_mailbox_cb)(void *arg, const char *aor, unsigned new_count, unsigned old_count);
int msg_on_mailbox_change(msg_mailbox_cb cb, void *arg);

/* Counts for logs and benchmarks. */
typedef struct msg_stats {
	unsigned long relayed, stored, delivered, store_failed, expired;
} msg_stats_t;
void msg_get_stats(msg_stats_t *out);

#endif
