/* The SIP proxy (RFC 3261 §16): INVITE and in-dialog routing, parallel
 * forking to the contacts of a local AOR (q-value groups tried one after
 * the other), CANCEL, redirect mode (§8.3), loose routing (§16.12), and
 * the caller's asserted identity (RFC 3325) from the user directory.
 *
 *   caller --INVITE--> simpled --INVITE (our Via, R-URI = contact, RR)--> contact 1
 *                              --INVITE ...-------------------------------> contact 2
 *          <--100-----  (the transaction layer)
 *          <--180-----         <--180-- (relayed, our Via removed)
 *          <--200-----         <--200-- contact 1;  CANCEL --> contact 2 (487, ACKed by txn)
 *          --ACK (Route: us)-> stray ACK, loose routing, stateless --> contact 1
 *          --BYE (Route: us)-> stateful forward by the Route set only   --> contact 1
 *
 * State: one call context per forwarded request, alive only while its
 * client transactions run, and (with dialog_tracking) the dialog records
 * of dlgtrack.h that the dialog package shows; routing never reads
 * them, so in-dialog requests (ACK, BYE, re-INVITE, UPDATE, PRACK, INFO,
 * REFER) route by their Route headers alone and a restart mid-call does
 * not break BYE. */
#ifndef SD_PROXY_H
#define SD_PROXY_H

#include <stdbool.h>

#include <uv.h>

#include "server/sip/txn.h"

typedef struct proxy_options {
	bool redirect;              /* answer INVITE to a local AOR with 302 + contacts */
	const char *conninfo;       /* start-up loads of aliases and users (synchronous); NULL: none */
	bool (*is_local_domain)(const char *host);
	bool (*is_local_address)(const char *host);
	const char *default_domain; /* for Request-URIs naming one of our addresses */
	bool dialog_tracking;       /* keep dialog records (dlgtrack.h) for the dialog package */
	uv_loop_t *loop;            /* for the dialog records' expiry timer (with dialog_tracking) */
} proxy_options_t;

/* Loads the alias table and the user directory (alias.h, directory.h)
 * and prepares their refresh.  Call after db_init, before the loop
 * serves.  Returns 0 or -errno.  The caller adds the router rows (see
 * docs/ARCHITECTURE.md "Proxy"). */
int proxy_init(const proxy_options_t *opts);
/* Frees the tables.  Call after txn_shutdown() (which ends every call
 * context through its client transactions) and after the database pool
 * closed. */
void proxy_shutdown(void);

/* Router callback for INVITE, BYE, UPDATE, PRACK, INFO, REFER (and any
 * other method whose request carries a Route naming us: see
 * proxy_routes_to_us). */
void proxy_handle_request(txn_t *t, sipmsg_t *req);
/* Router callback for CANCEL (§16.10): 200 to the CANCEL, CANCEL on every
 * pending branch, 487 to the INVITE; 481 when no INVITE matches. */
void proxy_handle_cancel(txn_t *t, sipmsg_t *req);
/* router_set_stray_ack() callback: the ACK of a 2xx, forwarded
 * statelessly by its Route set.  Takes ownership of ack. */
void proxy_stray_ack(sipmsg_t *ack);
/* For server.c: a response no client transaction took.  A 2xx to INVITE
 * whose top Via is ours (a retransmission after our client transaction
 * ended) is relayed statelessly upstream (RFC 6026 §7.2); returns true
 * when it was.  Borrows resp. */
bool proxy_stray_response(const sipmsg_t *resp);

/* Whether the top Route of req names us (so the request is to be loose
 * routed here whatever its method). */
bool proxy_routes_to_us(const sipmsg_t *req);

/* Counts for logs and benchmarks. */
typedef struct proxy_stats {
	unsigned long calls_live, forwarded, redirected, cancelled, stray_acks, stray_2xx;
} proxy_stats_t;
void proxy_get_stats(proxy_stats_t *out);

#endif
